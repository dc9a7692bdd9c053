"""Dependencies point one way (doors -> services -> domain): the import-linter contracts hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_the_app_does_no_work() -> None:
    # Nothing happens at import time: no settings read, no database, no model loaded.
    code = (
        "import sys, chatwell.app, chatwell.cli; "
        "assert 'onnxruntime' not in sys.modules and 'openai' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        timeout=60,
        env={"CHATWELL_DATA_DIR": "/nonexistent/never-created", "PATH": ""},
    )
    assert not Path("/nonexistent/never-created").exists()
