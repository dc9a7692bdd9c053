"""scripts/system-deps.sh: what `make test` installs on a fresh machine, decided from what is there.

The script runs for real against a folder of stand-in tools: `apt-get` and `sudo` record their
calls instead of installing anything, `id` answers the user id the case needs.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "system-deps.sh"
ALL_TOOLS = ("make", "python3", "redis-server", "chromium", "nginx")


def _tool(folder: Path, name: str, body: str = "exit 0") -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(
    tmp_path: Path, *, present: tuple[str, ...], uid: int, sudo: str | None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "calls.log"
    for name in present:
        _tool(tools, name)
    _tool(tools, "id", f"echo {uid}")
    _tool(tools, "apt-get", f'echo "apt-get $*" >> {calls}')
    if sudo == "works":
        _tool(tools, "sudo", f'[ "$1" = -n ] || exit 9; shift; echo "sudo $1" >> {calls}; "$@"')
    elif sudo == "asks-password":
        _tool(tools, "sudo", "exit 1")
    work = tmp_path / "clone"
    work.mkdir()
    env = {**os.environ, "SYSTEM_DEPS_PATH": str(tools)}
    result = subprocess.run(
        ["bash", str(SCRIPT)], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_everything_present_installs_nothing(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, present=ALL_TOOLS, uid=0, sudo=None)
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert "all present" in result.stdout


def test_one_missing_as_root_installs_exactly_it(tmp_path: Path) -> None:
    present = tuple(t for t in ALL_TOOLS if t != "nginx")
    result, calls = _run(tmp_path, present=present, uid=0, sudo=None)
    assert result.returncode == 0, result.stderr
    installs = [c for c in calls if c.startswith("apt-get install")]
    assert len(installs) == 1
    assert installs[0].endswith(" nginx-light")
    assert [c for c in calls if c.startswith("apt-get")] == ["apt-get update -qq", installs[0]]


def test_missing_browser_and_redis_go_in_one_install(tmp_path: Path) -> None:
    result, calls = _run(tmp_path, present=("make", "python3", "nginx"), uid=0, sudo=None)
    assert result.returncode == 0, result.stderr
    (install,) = [c for c in calls if c.startswith("apt-get install")]
    assert install.split()[-3:] == ["redis-server", "chromium", "fonts-liberation"]


def test_not_root_with_passwordless_sudo_uses_it(tmp_path: Path) -> None:
    present = tuple(t for t in ALL_TOOLS if t != "redis-server")
    result, calls = _run(tmp_path, present=present, uid=1000, sudo="works")
    assert result.returncode == 0, result.stderr
    # `sudo -n true` proves no password is asked; update and install then run through it.
    assert calls[:3] == ["sudo true", "sudo apt-get", "apt-get update -qq"]
    assert calls.count("sudo apt-get") == 2
    assert calls[-1].endswith(" redis-server")


@pytest.mark.parametrize("sudo", [None, "asks-password"])
def test_not_root_without_sudo_stops_with_the_command(tmp_path: Path, sudo: str | None) -> None:
    present = tuple(t for t in ALL_TOOLS if t not in ("nginx", "chromium"))
    result, calls = _run(tmp_path, present=present, uid=1000, sudo=sudo)
    assert result.returncode == 1
    assert calls == []
    assert (
        "run: sudo apt-get install -y --no-install-recommends chromium fonts-liberation nginx-light"
        in result.stderr
    )


def test_python_without_venv_module_adds_python3_venv(tmp_path: Path) -> None:
    tools = ("make", "redis-server", "chromium", "nginx")
    result, calls = _run(tmp_path, present=tools, uid=0, sudo=None)
    assert result.returncode == 0
    (install,) = [c for c in calls if c.startswith("apt-get install")]
    assert install.endswith(" python3 python3-venv")
