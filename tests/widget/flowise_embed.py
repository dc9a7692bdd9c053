"""Flowise's published chat widget, ``flowise-embed``, fetched from the npm registry once.

The package is pinned (version and the registry's sha1 of its tarball) and unpacked into a
cache directory the tests own (``CHATWELL_TEST_CACHE``, default ``~/.cache/chatwell-tests``);
nothing of it is committed. Without npm or the registry the test is skipped, or fails with
``CI=true`` (tests.services.service_unavailable).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from tests.services import service_unavailable

VERSION = "3.1.6"
TARBALL_SHA1 = (
    "d132c9a9a4e16bbc7280d33c3a329025bfe3d157"  # `npm view flowise-embed@3.1.6 dist.shasum`
)


def cache_dir() -> Path:
    return Path(os.environ.get("CHATWELL_TEST_CACHE", Path.home() / ".cache" / "chatwell-tests"))


def flowise_embed_web_js() -> Path:
    """The path of ``dist/web.js`` of flowise-embed ``VERSION`` (downloaded on first use)."""
    target = cache_dir() / f"flowise-embed-{VERSION}"
    web_js = target / "package" / "dist" / "web.js"
    if web_js.exists():
        return web_js
    npm = shutil.which("npm")
    if npm is None:
        service_unavailable(
            "npm not found (apt-get install npm): the flowise-embed widget comes from npm"
        )
    download = cache_dir() / f"download-{os.getpid()}"
    download.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            [npm, "pack", f"flowise-embed@{VERSION}", "--silent"],
            cwd=download,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            service_unavailable(
                f"npm pack flowise-embed@{VERSION} failed: {done.stderr.strip()[-300:]}"
            )
        tarball = download / done.stdout.strip().splitlines()[-1]
        digest = hashlib.sha1(tarball.read_bytes()).hexdigest()
        assert digest == TARBALL_SHA1, (
            f"flowise-embed-{VERSION}.tgz has sha1 {digest}, expected {TARBALL_SHA1}"
        )
        unpacked = download / "unpacked"
        with tarfile.open(tarball) as archive:
            archive.extractall(unpacked, filter="data")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            unpacked.rename(target)
        except OSError:  # another worker got there first
            pass
    finally:
        shutil.rmtree(download, ignore_errors=True)
    return web_js
