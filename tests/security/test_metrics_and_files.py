"""``/metrics`` is not for everyone, and the database files are the owner's only (issue 19 item 15).

The metrics count requests, turns and sources of every workspace on the server: without
``CHATWELL_METRICS_TOKEN`` only loopback clients get them, with it only holders of the token. The
SQLite database, its WAL and shared-memory files and its backups are created 0600 whatever the
process umask (a 0644 database is every local user's copy of every key hash and transcript).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pydantic
import pytest

from chatwell.settings import Settings
from chatwell.storage.backup import backup_sqlite
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
TOKEN = "metrics-token-0123456789abcdef"


def _client(app, host: str) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(host, 40123)), base_url="http://testserver"
    )


async def test_metrics_are_refused_to_a_remote_client_without_a_token(
    make_settings: Callable[..., Settings], backend: str
) -> None:
    app = build_app(make_settings(), announce=lambda _: None)
    async with app.router.lifespan_context(app):
        async with (
            _client(app, "203.0.113.9") as remote,
            _client(app, "127.0.0.1") as local,
            _client(app, "::1") as local6,
        ):
            refused = await remote.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            assert refused.status_code == 403  # was 200 with every workspace's counts
            assert refused.json() == {
                "error": {
                    "code": "metrics_forbidden",
                    "message": refused.json()["error"]["message"],
                }
            }
            assert "chatwell_" not in refused.text
            for client in (local, local6):
                served = await client.get("/metrics")
                assert served.status_code == 200 and "chatwell_http_requests_total" in served.text


async def test_with_a_token_metrics_need_it_from_everywhere(
    make_settings: Callable[..., Settings], backend: str
) -> None:
    app = build_app(make_settings(metrics_token=TOKEN), announce=lambda _: None)
    async with app.router.lifespan_context(app):
        async with _client(app, "203.0.113.9") as remote, _client(app, "127.0.0.1") as local:
            for client in (remote, local):
                for headers in (
                    {},
                    {"Authorization": "Bearer wrong-token-0123456789abc"},
                    {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": f"Bearer {ADMIN_KEY}"},
                ):
                    response = await client.get("/metrics", headers=headers)
                    assert response.status_code == 401, headers
                    assert response.json()["error"]["code"] == "invalid_metrics_token"
                served = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                assert served.status_code == 200 and "chatwell_http_requests_total" in served.text


def test_a_short_metrics_token_is_refused(
    make_settings: Callable[..., Settings], backend: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match="at least 16"):
        make_settings(metrics_token="short")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_database_wal_shm_and_backup_files_are_created_owner_only(
    make_settings: Callable[..., Settings], empty_database_url: str, tmp_path: Path, backend: str
) -> None:
    settings = make_settings(database_url=empty_database_url)
    database = Path(settings.resolved_database_url.split("///", 1)[1])
    assert not database.exists()
    previous = os.umask(0o022)  # the usual umask, which made the files 0644
    try:
        app = build_app(settings, announce=lambda _: None)
        async with app.router.lifespan_context(app):
            async with _client(app, "127.0.0.1") as client:
                created = await client.post(
                    "/v1/bots",
                    json={"name": "Files"},
                    headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                )
                assert created.status_code == 201, created.text
                wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
                assert wal.exists() and shm.exists()
                assert {p.name: oct(_mode(p)) for p in (database, wal, shm)} == {
                    p.name: "0o600" for p in (database, wal, shm)
                }
        backup = backup_sqlite(
            settings.resolved_database_url, tmp_path / "copies" / "chatwell-backup.db"
        )
        assert oct(_mode(backup.path)) == "0o600"
    finally:
        os.umask(previous)
