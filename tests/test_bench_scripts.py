"""Every benchmark under ``bench/`` still imports against the current code.

Benchmarks are not run by the suite (they print figures; tests assert behaviour), so nothing else
notices when a refactor renames what one of them imports. One child process imports them all
(their ``main()`` runs only as ``__main__``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_ALL = """
import importlib.util, sys, traceback
failed = []
for path in sys.argv[1:]:
    name = "bench_" + path.rsplit("/", 1)[-1][:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    try:
        spec.loader.exec_module(module)
    except Exception:
        failed.append(path + ":\\n" + traceback.format_exc(limit=3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_benchmark_imports() -> None:
    scripts = sorted(
        str(p)
        for p in (ROOT / "bench").glob("*.py")
        if not p.name.startswith("_") and p.name != "locustfile.py"  # locust: not a dependency
    )
    assert len(scripts) >= 10
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, *scripts],
        cwd=ROOT / "bench",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
