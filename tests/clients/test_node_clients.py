"""The Node clients: the Vercel AI SDK (``ai`` + ``@ai-sdk/openai``: the default provider, which
uses the Responses API, and ``.chat``) with ``streamText``, and ``@modelcontextprotocol/sdk``'s
client over streamable HTTP. Their packages (pinned in ``node/package-lock.json``) are installed
by ``npm ci`` into a cache folder named by the lock file's hash, once per machine."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import Served
from tests.conftest import ADMIN_KEY

HERE = Path(__file__).parent / "node"
FILES = ("package.json", "package-lock.json", "clients.mjs")


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """A folder with the pinned Node clients installed and the script beside them."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the Node client tests")
        pytest.skip("node and npm are not installed")
    lock = (HERE / "package-lock.json").read_bytes()
    folder = (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "chatwell-tests"
        / ("node-clients-" + hashlib.sha256(lock).hexdigest()[:16])
    )
    if not (folder / "node_modules" / ".package-lock.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name in FILES[:2]:
            shutil.copy(HERE / name, folder / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=600,
            capture_output=True,
        )
    shutil.copy(HERE / "clients.mjs", folder / "clients.mjs")
    return folder


def test_vercel_ai_sdk_and_the_mcp_sdk(node_clients: Path, offline: Served) -> None:
    question = "How long do parcels to Norway take?"
    run = subprocess.run(
        ["node", "clients.mjs", offline.base, ADMIN_KEY, "support-bot", question],
        cwd=node_clients,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    for way in ("responses", "chat"):
        assert "four days" in got[way]["text"] and got[way]["finishReason"] == "stop"
        assert got[way]["usage"]["outputTokens"] > 0
    assert "four days" in got["generated"]
    assert got["tools"] == ["ask", "list_bots", "search_knowledge"]
    assert "four days" in got["ask"]["answer"] and got["ask"]["citations"][0]["title"] == "Shipping"
    assert got["progress"] > 2
    assert got["search"]["passages"][0]["title"] == "Shipping"
