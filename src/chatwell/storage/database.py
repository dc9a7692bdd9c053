"""The database handle: one async engine, read sessions, and write transactions.

SQLite (the embedded default) runs in WAL mode and takes its write lock up front
(``BEGIN IMMEDIATE``) behind one in-process writer lock, so concurrent writers queue instead of
failing with "database is locked"; other processes wait on ``busy_timeout``. PostgreSQL needs none
of that. Services own transactions: ``async with db.write() as session`` commits on success and
rolls back on any exception, so no request leaves a half-written record.

``read_now(fn)`` and ``write_now(fn)`` are for the short reads and writes on every chat turn's
path, written as synchronous functions of a session. On SQLite a read runs at once on the calling
thread, on a read-only connection of its own (a point lookup takes tens of microseconds; aiosqlite's
four trips to its thread per statement took a millisecond and more), and a write transaction runs
whole in one worker thread. On PostgreSQL both run in the async session, unchanged.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 15_000
# A read on the event loop's thread waits at most this long for a lock (WAL readers almost never
# wait); past it the read is done again the ordinary way, where waiting blocks nobody else.
INLINE_BUSY_TIMEOUT_MS = 50
GROUP_COMMIT_MAX = 64  # write_now calls sharing one transaction at most
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create a missing database file readable by its owner only (0600), before SQLite creates it
    with the process umask (often 0644). SQLite gives the ``-wal`` and ``-shm`` files the database
    file's permissions, so they are owner-only too. An existing file keeps the operator's mode."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except (FileExistsError, FileNotFoundError):  # there already, or a folder that is not there
        pass


class Database:
    """An async engine plus the session discipline the services rely on."""

    def __init__(
        self, url: str, *, echo: bool = False, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
    ):
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_postgres:
            # A server that does not answer fails the request in seconds (503), not after minutes.
            kwargs |= {
                "pool_pre_ping": True,
                "pool_size": 10,
                "max_overflow": 20,
                "pool_timeout": 10,
                "connect_args": {"timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
            }
        if self.is_sqlite:
            # Sessions end their own transactions (commit, or rollback on close); the pool's extra
            # rollback on every check-in would be one more trip to the driver's thread per session.
            kwargs["pool_reset_on_return"] = None
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine.sync_engine, busy_timeout_ms)
        self._read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(
            self.engine.execution_options(chatwell_write=True), expire_on_commit=False
        )
        self._write_lock: asyncio.Lock | None = None
        self._group: deque[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = deque()
        self._group_drainer: asyncio.Task[None] | None = None
        self._sync_engines: list[Engine] = []
        self._inline_sessions: sessionmaker[Session] | None = None
        self._thread_write_sessions: sessionmaker[Session] | None = None
        if (
            self.is_sqlite
            and self.url.database
            and self.url.database != ":memory:"
            and not self.url.database.startswith("file:")
        ):
            create_private_file(self.url.database)
            sync_url = self.url.set(drivername="sqlite+pysqlite")
            inline = create_engine(
                sync_url,
                echo=echo,
                pool_reset_on_return=None,
                connect_args={"check_same_thread": False},
            )
            _configure_inline_sqlite(inline)
            writer = create_engine(
                sync_url,
                echo=echo,
                pool_reset_on_return=None,
                connect_args={"check_same_thread": False},
            )
            _configure_sqlite(writer, busy_timeout_ms)
            self._sync_engines = [inline, writer]
            self._inline_sessions = sessionmaker(inline, expire_on_commit=False)
            self._thread_write_sessions = sessionmaker(
                writer.execution_options(chatwell_write=True), expire_on_commit=False
            )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing it does is committed. Loaded rows stay usable after it
        closes (closing detaches them without expiring them)."""
        async with self._read_sessions() as session:
            yield session

    async def read_now(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` for a short read (a few indexed rows), written as plain synchronous code.

        SQLite: run at once on this thread (never suspending, so it must stay small: no scans,
        no bulk loads), on a connection that can not write; if the database is locked past
        :data:`INLINE_BUSY_TIMEOUT_MS` (another connection in exclusive locking mode, recovery
        after a crashed writer: WAL readers wait for nothing else), run again through the async
        engine, where waiting blocks nobody. PostgreSQL: in an async read session.
        Loaded rows stay usable afterwards, as with :meth:`read`.
        """
        if self._inline_sessions is not None:
            try:
                with self._inline_sessions() as session:
                    return fn(session)
            except sa_exc.OperationalError as exc:
                if unavailable_reason(exc) != "database_busy":
                    raise
        async with self.read() as session:
            return await session.run_sync(fn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One short write transaction: commit on success, roll back on error."""
        if self.is_sqlite:
            async with self._writer():
                async with self._write_transaction() as session:
                    yield session
        else:
            async with self._write_transaction() as session:
                yield session

    async def write_now(self, fn: Callable[[Session], T]) -> T:
        """One short write transaction written as synchronous code: ``fn(session)``, committed when
        it returns, rolled back when it raises (nothing half written). SQLite: the whole transaction
        runs in one worker thread, behind the same writer lock as :meth:`write` (one hand-over per
        transaction instead of four per statement); calls that queue up while it runs share the
        next transaction, each in its own savepoint (group commit: :meth:`_drain_group`), so
        ``fn`` must not commit or roll back itself. PostgreSQL: in an async write session.
        A caller cancelled meanwhile does not stop the thread: its transaction still ends whole,
        committed or rolled back, and the next writer waits for it on SQLite's own lock."""
        if self._thread_write_sessions is None:
            async with self.write() as session:
                return await session.run_sync(fn)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._group.append((fn, future))
        if self._group_drainer is None:
            self._group_drainer = loop.create_task(self._drain_group())
        return (
            await future
        )  # a caller cancelled while it waits is skipped; once taken, it runs whole

    async def _drain_group(self) -> None:
        """Group commit: the ``write_now`` calls that queued up while the previous transaction ran
        share the next one (each in its own savepoint), one thread hand-over and one commit for
        all. A lone call runs at once, alone. A thousand streams ending together each waited for
        the writer in turn (~20 ms a transaction with the event loop busy) before this."""
        assert self._thread_write_sessions is not None
        batch: list[tuple[Callable[[Session], Any], asyncio.Future[Any]]] = []
        try:
            while self._group:
                while self._group and len(batch) < GROUP_COMMIT_MAX:
                    item = self._group.popleft()
                    if not item[1].done():  # a caller cancelled while it waited is skipped
                        batch.append(item)
                if not batch:
                    continue
                async with self._writer():
                    outcomes = await asyncio.to_thread(
                        _write_group, self._thread_write_sessions, [fn for fn, _ in batch]
                    )
                for (_, future), (ok, value) in zip(batch, outcomes):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
                batch = []
        except BaseException:
            # Only when this task is cancelled (the loop shutting down): nobody is left waiting.
            for _, future in [*batch, *self._group]:
                future.cancel()
            self._group.clear()
            raise
        finally:
            self._group_drainer = None

    def _writer(self) -> asyncio.Lock:
        """This process's SQLite writers, one at a time (other processes wait on ``busy_timeout``)."""
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        return self._write_lock

    @asynccontextmanager
    async def _write_transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._write_sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
        for engine in self._sync_engines:
            engine.dispose()


def _write_one(sessions: sessionmaker[Session], fn: Callable[[Session], T]) -> T:
    with sessions() as session:
        try:
            result = fn(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return result


def _write_group(
    sessions: sessionmaker[Session], fns: list[Callable[[Session], Any]]
) -> list[tuple[bool, Any]]:
    """``fns`` in one transaction, each in a savepoint: one that raises leaves nothing behind and
    gets its exception; the others are committed together. A database error (the transaction
    itself may be gone) or a failed commit: everything is rolled back and each runs alone; but a
    locked or unreachable database fails them all at once (alone, each would wait it out again)."""

    def alone(fn: Callable[[Session], Any]) -> tuple[bool, Any]:
        try:
            return True, _write_one(sessions, fn)
        except Exception as exc:
            return False, exc

    if len(fns) == 1:
        return [alone(fns[0])]
    outcomes: list[tuple[bool, Any]] = []
    with sessions() as session:
        try:
            session.connection()  # BEGIN IMMEDIATE now: a busy database fails the group, not one savepoint
            for fn in fns:
                try:
                    with session.begin_nested():
                        outcomes.append((True, fn(session)))
                except sa_exc.DBAPIError:
                    raise
                except Exception as exc:
                    outcomes.append((False, exc))
            session.commit()
            return outcomes
        except Exception as exc:
            session.rollback()
            if unavailable_reason(exc) is not None:
                return [(False, exc)] * len(fns)
    return [alone(fn) for fn in fns]


def unavailable_reason(exc: BaseException) -> str | None:
    """``"database_busy"`` or ``"database_unavailable"`` when ``exc`` (or what it wraps) says the
    database could not be reached or locked us out — a fault that passes, worth a retry — else None.

    SQLite: "database is locked" / "busy" after ``busy_timeout``. PostgreSQL: a connection refused,
    lost or timed out, the server shutting down or starting up, the pool exhausted.
    """
    seen: set[int] = set()
    from_driver = isinstance(exc, sa_exc.SQLAlchemyError)
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if (
            "database is locked" in text
            or "database is busy" in text
            or "database table is locked" in text
        ):
            return "database_busy"
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return "database_unavailable"
        # asyncpg raises a refused connect as a bare ConnectionRefusedError; other OS errors count
        # only inside a database error (a file error elsewhere is not the database's).
        if isinstance(current, (sa_exc.TimeoutError, ConnectionError)) or (
            from_driver and isinstance(current, (TimeoutError, OSError))
        ):
            return "database_unavailable"
        if type(current).__module__.startswith("asyncpg") and any(
            base.__name__ in _ASYNCPG_CONNECTION_ERRORS for base in type(current).__mro__
        ):
            return "database_unavailable"
        if isinstance(current, sa_exc.InterfaceError) or (
            isinstance(current, sa_exc.OperationalError) and _CONNECTION_WORDS.search(text)
        ):
            return "database_unavailable"
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


# asyncpg's classes for a connection that failed, was lost, or whose server is going away.
_ASYNCPG_CONNECTION_ERRORS = frozenset(
    {
        "PostgresConnectionError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "InterfaceError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
        "ClientCannotConnectError",
        "InternalClientError",
    }
)
_CONNECTION_WORDS = re.compile(
    r"connection|connect|server closed|terminat|shutting down|starting up"
)


def _configure_inline_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = (
            None  # no implicit BEGIN: each statement its own snapshot
        )
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")  # this connection never writes, whatever runs on it
        cursor.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")
        cursor.close()


def _configure_sqlite(sync_engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN into our own hands (below) instead of the driver's implicit deferred BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writes take the write lock up front. Reads run without BEGIN: each statement reads its own
        # snapshot (WAL), which is all a read session's statements need, and it spares every read
        # session three trips to aiosqlite's thread (~0.3 ms each, on every request's key lookup).
        if conn.get_execution_options().get("chatwell_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
