"""The shipped widget.js is the build of its ES modules (widget/src, bundled by esbuild through
``make widget``) and stays within its size budget. The bundle is committed so that ``pip install``
needs no Node; this test rebuilds it, so a source change without ``make widget`` fails CI."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SHIPPED = ROOT / "src" / "chatwell" / "web" / "widget" / "widget.js"
# What a page downloads. Before the split the hand-written file was 43,817 bytes (12.7 KB gzipped);
# the minified bundle is ~30.4 KB (~10.1 KB gzipped). Growing past these needs a reason.
MAX_BYTES = 32 * 1024
MAX_GZIP_BYTES = 11 * 1024


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed to build the widget")
        pytest.skip("node and npm are not installed")
    out = tmp_path_factory.mktemp("widget") / "widget.js"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_widget.py"), "--out", str(out)],
        check=True,
        timeout=900,
        capture_output=True,
    )
    return out.read_bytes()


def test_the_committed_widget_is_the_build_of_its_sources(built: bytes) -> None:
    assert SHIPPED.read_bytes() == built, (
        "src/chatwell/web/widget/widget.js is not the build of widget/src: run `make widget`"
    )


def test_the_widget_keeps_its_size_budget(built: bytes) -> None:
    for bundle in (built, SHIPPED.read_bytes()):
        assert len(bundle) <= MAX_BYTES, len(bundle)
        assert len(gzip.compress(bundle, 9)) <= MAX_GZIP_BYTES


def test_the_bundle_is_one_script_with_its_header() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    assert text.startswith("/*! chatwell widget")
    assert "import " not in text.split("*/", 1)[1][:200]  # bundled: no module syntax left
    assert text.rstrip().endswith("})();")
