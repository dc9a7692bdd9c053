"""Build the shipped widget (src/chatwell/web/widget/widget.js) from its ES modules in widget/src.

esbuild (pinned in widget/package-lock.json) bundles widget/src/main.js into one minified script,
an IIFE with the header comment of main.js on top. It is installed by ``npm ci`` into a cache
folder named by the lock file's hash, once per machine (``$XDG_CACHE_HOME`` or ~/.cache).

    python3 scripts/build_widget.py            # rewrite the shipped file (make widget)
    python3 scripts/build_widget.py --out F    # write the bundle to F instead (the test's check)

The shipped file stays committed, so ``pip install chatwell`` needs no Node; tests/widget/
test_widget_bundle.py rebuilds it and fails when the committed file is not the build of the sources.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "widget"
ENTRY = SOURCES / "src" / "main.js"
SHIPPED = ROOT / "src" / "chatwell" / "web" / "widget" / "widget.js"
TARGET = "es2017"  # what the widget's browsers run (Shadow DOM, fetch streams)


def esbuild() -> Path:
    """The pinned esbuild binary, installed into the cache on first use."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SystemExit("node and npm are needed to build the widget (Node 18 or later)")
    lock = (SOURCES / "package-lock.json").read_bytes()
    folder = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "chatwell-build"
        / ("widget-" + hashlib.sha256(lock).hexdigest()[:16])
    )
    binary = folder / "node_modules" / ".bin" / "esbuild"
    if not binary.exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(SOURCES / name, folder / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=600,
        )
    return binary


def banner() -> str:
    """main.js's leading /*! ... */ comment (what the widget is and its API), then strict mode."""
    found = re.match(r"/\*!.*?\*/", ENTRY.read_text(), re.S)
    if found is None:
        raise SystemExit(f"{ENTRY} must start with its /*! ... */ header comment")
    return found.group(0) + '\n"use strict";'


def build(out: Path) -> None:
    subprocess.run(
        [
            str(esbuild()),
            str(ENTRY),
            "--bundle",
            "--format=iife",
            "--minify",
            f"--target={TARGET}",
            "--charset=utf8",
            "--legal-comments=none",
            f"--banner:js={banner()}",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        cwd=SOURCES,
        check=True,
        timeout=120,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SHIPPED, help="where to write the bundle")
    args = parser.parse_args(argv)
    build(args.out.resolve())
    print(f"{args.out}: {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
