"""``chatwell backup`` and ``chatwell restore`` on the embedded SQLite database.

A real ``chatwell serve`` process keeps writing (a bot per request, from another thread) while
``chatwell backup`` copies its database; the copy is then restored into a fresh data dir and read
back through a new app: the seeded bot answers from its restored sources, and the written bots are
exactly a prefix of those created (a consistent instant, no torn transaction). Restoring over the
running server's database is refused unless ``--force``. Files that are not a chatwell database at
this migration are refused before anything is touched.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chatwell.cli import app as cli
from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app

runner = CliRunner()
HOURS = "The Lighthouse museum opens at ten and closes at six; the lamp room is closed in winter."


def chatwell(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


class Writer(threading.Thread):
    """Creates bots ``w0``, ``w1``, ... one request at a time until stopped."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.created: list[str] = []
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
        ) as c:
            for i in range(2000):  # bounded
                if self.stop.is_set():
                    return
                response = c.post(
                    "/v1/bots", json={"name": f"w{i}", "slug": f"w{i}", "instructions": "x" * 2000}
                )
                if response.status_code != 201:
                    self.errors.append(response.text)
                    return
                self.created.append(f"w{i}")


def wait_ready(client: httpx.Client, bot: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sources = client.get(f"/v1/bots/{bot}/sources").json()["data"]
        if sources and all(s["status"] == "ready" for s in sources):
            return
        time.sleep(0.05)
    raise AssertionError("the source was not ingested")


@pytest.mark.slow
def test_backup_while_writing_then_restore_elsewhere(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    live_dir, fresh_dir, copy = (
        tmp_path / "live",
        tmp_path / "fresh",
        tmp_path / "backups" / "chatwell.bak",
    )
    binary = str(Path(sys.executable).parent / "chatwell")
    base = live_server.start_process(
        [binary, "serve", "--host", "127.0.0.1", "--port", "{port}", "--data-dir", str(live_dir)],
        env={"CHATWELL_ADMIN_KEY": ADMIN_KEY},
    )
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as admin:
        assert admin.post("/v1/bots", json={"name": "Museum", "slug": "museum"}).status_code == 201
        added = admin.post(
            "/v1/bots/museum/sources", json={"type": "text", "title": "Hours", "text": HOURS}
        )
        assert added.status_code == 202
        wait_ready(admin, "museum")

        writer = Writer(base)
        writer.start()
        while len(writer.created) < 5 and writer.is_alive():
            time.sleep(0.01)
        code, output = chatwell("backup", str(copy), "--data-dir", str(live_dir), "--json")
        written_at_backup = len(writer.created)
        time.sleep(0.2)  # more writes after the copy
        writer.stop.set()
        writer.join(30)
        assert code == 0, output
        assert not writer.errors, writer.errors
        info = json.loads(output)
        assert info["bytes"] > 0 and Path(info["path"]) == copy
        assert len(writer.created) > written_at_backup, (
            "the server stopped writing during the backup"
        )

        # Writing over an existing backup needs --force.
        again, message = chatwell("backup", str(copy), "--data-dir", str(live_dir))
        assert again == 1 and "file_exists" in message

        # The copy restores into a fresh data dir and reads back through a new app.
        code, output = chatwell("restore", str(copy), "--data-dir", str(fresh_dir))
        assert code == 0, output
        restored_slugs = read_back(fresh_dir)
        written = [s for s in restored_slugs if s.startswith("w")]
        assert written == writer.created[: len(written)], (
            "the backup is not one instant of the database"
        )
        assert len(written) >= 5 and len(written) < len(writer.created)

        # The running server's database is not replaced under it without --force.
        code, output = chatwell("restore", str(copy), "--data-dir", str(live_dir))
        assert code == 1 and "database_in_use" in output, output
        assert len(admin.get("/v1/bots", params={"limit": 100}).json()["data"]) > 0
        code, output = chatwell("restore", str(copy), "--data-dir", str(live_dir), "--force")
        assert code == 0, output
        after = {b["slug"] for b in admin.get("/v1/bots", params={"limit": 100}).json()["data"]}
        assert after == set(restored_slugs), "the server does not read the restored database"
    assert "Traceback" not in live_server.log(base)


def read_back(data_dir: Path) -> list[str]:
    """The restored bots' slugs, oldest first, after checking the seeded bot still answers."""
    import asyncio

    async def read() -> list[str]:
        app = build_app(Settings(data_dir=data_dir, admin_key=ADMIN_KEY), announce=lambda _: None)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://testserver",
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ) as client:
                sources = (await client.get("/v1/bots/museum/sources")).json()["data"]
                assert [(s["title"], s["status"]) for s in sources] == [("Hours", "ready")]
                found = (
                    await client.post(
                        "/v1/bots/museum/search", json={"query": "When does the museum open?"}
                    )
                ).json()
                assert found["data"] and "opens at ten" in found["data"][0]["text"]
                answer = (
                    await client.post(
                        "/v1/bots/museum/chat",
                        json={"message": "When does it open?", "stream": False},
                    )
                ).json()
                assert "ten" in answer["answer"], answer
                slugs, cursor = [], None
                while True:
                    page = (
                        await client.get(
                            "/v1/bots",
                            params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                        )
                    ).json()
                    slugs += [b["slug"] for b in page["data"]]
                    if not page["has_more"]:
                        break
                    cursor = page["next_cursor"]
        return sorted(
            slugs, key=lambda s: (not s.startswith("w"), int(s[1:]) if s[1:].isdigit() else 0)
        )

    return asyncio.run(read())


def test_restore_refuses_what_is_not_a_current_chatwell_database(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "target")]
    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"not a database at all" * 100)
    code, output = chatwell("restore", str(junk), *data)
    assert code == 1 and "not_a_chatwell_backup" in output
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    code, output = chatwell("restore", str(other), *data)
    assert code == 1 and "not_a_chatwell_backup" in output
    missing = chatwell("restore", str(tmp_path / "nothing.bak"), *data)
    assert missing[0] == 1 and "not_a_chatwell_backup" in missing[1]

    # A real backup at another migration is refused too.
    source = ["--data-dir", str(tmp_path / "source")]
    assert chatwell("migrate", *source)[0] == 0
    good = tmp_path / "good.bak"
    assert chatwell("backup", str(good), *source)[0] == 0
    old = tmp_path / "old.bak"
    old.write_bytes(good.read_bytes())
    with sqlite3.connect(old) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0001'")
    code, output = chatwell("restore", str(old), *data)
    assert code == 1 and "backup_revision_mismatch" in output
    assert not (tmp_path / "target" / "chatwell.db").exists()

    # An existing database (no server holds it) is replaced only with --force.
    assert chatwell("restore", str(good), *data)[0] == 0
    code, output = chatwell("restore", str(good), *data)
    assert code == 1 and "database_exists" in output
    assert chatwell("restore", str(good), *data, "--force")[0] == 0


def test_postgres_is_left_to_its_own_tools(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://user:pass@127.0.0.1:1/db"
    code, output = chatwell("backup", str(tmp_path / "x.bak"), "--database-url", url)
    assert code == 1 and "pg_dump" in output
