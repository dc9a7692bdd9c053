"""Dependencies point one way (doors -> chat engine -> services -> storage -> domain): the
import-linter contracts hold, and an upward import breaks them."""

from __future__ import annotations

import os
import shutil
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


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    # A copy of the package where storage (low) imports the chat engine (high) must fail.
    shutil.copytree(ROOT / "src" / "chatwell", tmp_path / "chatwell")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    tables = tmp_path / "chatwell" / "storage" / "tables.py"
    tables.write_text(tables.read_text() + "\nimport chatwell.chat.service  # noqa\n")
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--config", str(tmp_path / "pyproject.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode != 0, result.stdout
    assert "layers: " in result.stdout and "BROKEN" in result.stdout
    assert "chatwell.storage.tables -> chatwell.chat.service" in result.stdout
