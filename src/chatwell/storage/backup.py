"""Backups of the embedded SQLite database: consistent while the server runs, checked on restore.

``backup_sqlite`` copies the live database with SQLite's online backup API, in one step inside
one read transaction: in WAL mode the server keeps writing meanwhile, and the copy is the database
as it was at one instant (never half of a transaction). The copy is written beside its target,
checked (``integrity_check``, chatwell's tables, the migration) and only then renamed into place.

``restore_sqlite`` checks that a file is a chatwell database at this version's migration before
touching anything, refuses to replace an existing database (one a running server holds, above
all) unless forced, and then copies with the same backup API into the target: a forced restore
under a running server goes through SQLite's own locking, never underneath it (restart that
server afterwards: its in-memory caches still describe the old data).

PostgreSQL has its own tools (``pg_dump``, ``pg_restore``); these functions refuse its URLs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from chatwell.errors import Conflict, InvalidRequest
from chatwell.storage.database import create_private_file
from chatwell.storage.migrate import head_revision

SQLITE_HEADER = b"SQLite format 3\x00"
CORE_TABLES = ("workspaces", "bots", "api_keys", "sources", "chunks", "conversations", "messages")
BUSY_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class BackupInfo:
    path: Path
    bytes: int
    revision: str


def sqlite_path(database_url: str) -> Path:
    """The file of a SQLite database URL; anything else is refused."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise InvalidRequest(
            "backup and restore cover the embedded SQLite database; for PostgreSQL use "
            "pg_dump and pg_restore",
            code="not_sqlite",
        )
    return Path(url.database)


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    target = f"file:{path}?mode=ro" if read_only else str(path)
    connection = sqlite3.connect(
        target, uri=read_only, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
    )
    try:
        yield connection
    finally:
        connection.close()


def check_database(path: Path) -> str:
    """The migration of a chatwell database file, or ``not_a_chatwell_backup`` /
    ``backup_revision_mismatch`` (it must be at the migration this chatwell runs)."""
    not_ours = InvalidRequest(f"{path} is not a chatwell database", code="not_a_chatwell_backup")
    try:
        with path.open("rb") as file:
            if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise not_ours
    except OSError:
        raise InvalidRequest(f"cannot read {path}", code="not_a_chatwell_backup") from None
    try:
        with _connect(path, read_only=True) as connection:
            if connection.execute("PRAGMA integrity_check").fetchone() != ("ok",):
                raise InvalidRequest(
                    f"{path} is damaged (integrity check failed)", code="not_a_chatwell_backup"
                )
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not {"alembic_version", *CORE_TABLES} <= tables:
                raise not_ours
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        raise not_ours from None
    expected = head_revision()
    if revision is None or revision[0] != expected:
        found = revision[0] if revision else "none"
        raise InvalidRequest(
            f"{path} is at migration {found}, this chatwell at {expected}: restore it with the "
            "chatwell version that wrote it (then upgrade and migrate)",
            code="backup_revision_mismatch",
        )
    return expected or ""


def backup_sqlite(database_url: str, destination: Path, *, overwrite: bool = False) -> BackupInfo:
    source = sqlite_path(database_url)
    if not source.is_file():
        raise InvalidRequest(f"there is no database at {source}", code="database_not_found")
    if destination.exists() and not overwrite:
        raise Conflict(f"{destination} exists; use --force to replace it", code="file_exists")
    if destination.resolve() == source.resolve():
        raise InvalidRequest(
            "the backup can not replace the database itself", code="invalid_request"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    create_private_file(partial)  # a backup holds what the database does: owner-only like it
    try:
        with _connect(source) as live, _connect(partial) as copy:
            live.backup(copy)  # one step: one read transaction, one instant of the database
            copy.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
        revision = check_database(partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return BackupInfo(destination, destination.stat().st_size, revision)


def database_in_use(path: Path) -> bool:
    """Whether another connection (a running server) has the database open.

    A WAL database can leave WAL mode only when no other connection has it open, so asking it to
    is the test; a database nobody holds is switched to rollback mode, harmless for one about to
    be replaced (the server turns WAL on again when it opens it).
    """
    if not path.is_file():
        return False
    with _connect(path) as connection:
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            mode = connection.execute("PRAGMA journal_mode=DELETE").fetchone()
        except sqlite3.OperationalError:
            return True
    return bool(mode) and mode[0].lower() == "wal"


def restore_sqlite(database_url: str, backup: Path, *, force: bool = False) -> BackupInfo:
    target = sqlite_path(database_url)
    revision = check_database(backup)
    if target.is_file() and target.stat().st_size > 0 and not force:
        if database_in_use(target):
            raise Conflict(
                f"a running server holds {target}; stop it first, or use --force to restore under it "
                "(then restart it)",
                code="database_in_use",
            )
        raise Conflict(
            f"{target} already has a database; use --force to replace it", code="database_exists"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _connect(backup, read_only=True) as source, _connect(target) as live:
        source.backup(live)
        live.execute("PRAGMA journal_mode=WAL")
        if live.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            raise InvalidRequest(
                f"the restored database at {target} failed its integrity check",
                code="restore_failed",
            )
    return BackupInfo(target, target.stat().st_size, revision)
