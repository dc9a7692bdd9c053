"""``Database.read_now`` and ``Database.write_now``: the short reads and writes on every chat
turn's path."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError

from chatwell.services.workspaces import create_workspace
from chatwell.storage import migrate
from chatwell.storage.database import INLINE_BUSY_TIMEOUT_MS, Database, unavailable_reason
from chatwell.storage.tables import Workspace


@pytest.fixture
async def db(empty_database_url: str) -> Database:
    database = Database(empty_database_url)
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def test_reads_what_was_committed_and_detaches_rows(db: Database) -> None:
    workspace, _ = await create_workspace(db, name="Acme")
    async with db.write() as session:
        await session.execute(
            update(Workspace).where(Workspace.id == workspace.id).values(name="Renamed")
        )
    row = await db.read_now(lambda session: session.get(Workspace, workspace.id))
    assert row is not None and row.name == "Renamed"  # loaded attributes stay usable afterwards
    assert (
        await db.read_now(
            lambda session: session.scalar(
                select(Workspace.name).where(Workspace.id == workspace.id)
            )
        )
        == "Renamed"
    )


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_reads_on_the_calling_thread_and_can_not_write(db: Database) -> None:
    workspace, _ = await create_workspace(db, name="Acme")
    threads: list[int] = []

    def read(session):  # type: ignore[no-untyped-def]
        threads.append(threading.get_ident())
        return session.scalar(select(Workspace.name).where(Workspace.id == workspace.id))

    assert await db.read_now(read) == workspace.name
    assert threads == [threading.get_ident()]  # no trip to a driver thread
    with pytest.raises(Exception, match="readonly|read-only|attempt to write"):
        await db.read_now(
            lambda session: session.execute(
                update(Workspace).where(Workspace.id == workspace.id).values(name="Written")
            )
        )
    assert await db.read_now(read) == workspace.name


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_read_locked_out_is_done_again_without_blocking_the_loop(db: Database) -> None:
    """A connection holding an exclusive lock shuts WAL readers out: the inline read gives up after
    ``INLINE_BUSY_TIMEOUT_MS`` and waits in the driver's thread instead, while the loop runs on."""
    workspace, _ = await create_workspace(db, name="Acme")
    path = db.url.database
    await db.dispose()  # an exclusive lock on a WAL database needs every other connection closed
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE workspaces SET name = 'Locked' WHERE 1 = 0")
    holder.execute("COMMIT")  # in EXCLUSIVE locking mode the lock stays after the commit
    release = threading.Timer(
        0.6,
        lambda: (
            holder.execute("PRAGMA locking_mode=NORMAL"),
            holder.execute("SELECT 1").fetchall(),
            holder.close(),
        ),
    )
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    release.start()
    try:
        started = time.monotonic()
        name = await db.read_now(
            lambda session: session.scalar(
                select(Workspace.name).where(Workspace.id == workspace.id)
            )
        )
        waited = time.monotonic() - started
    finally:
        ticker.cancel()
        release.join()
    assert name == workspace.name
    assert waited >= 0.5  # it did wait for the lock ...
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert (
        max(gaps) < INLINE_BUSY_TIMEOUT_MS / 1000 + 0.25
    )  # ... but the loop was never held for long


async def test_write_now_commits_whole_or_not_at_all(db: Database) -> None:
    workspace, _ = await create_workspace(db, name="Acme")

    def rename(name: str, *, fail: bool = False):  # type: ignore[no-untyped-def]
        def write(session):  # type: ignore[no-untyped-def]
            session.execute(update(Workspace).where(Workspace.id == workspace.id).values(name=name))
            session.add(Workspace(name="Second", is_default=False, settings={}))
            session.flush()
            if fail:
                raise ValueError("changed my mind")
            return name

        return write

    assert await db.write_now(rename("Renamed")) == "Renamed"
    with pytest.raises(ValueError):
        await db.write_now(rename("Half", fail=True))
    async with db.read() as session:
        names = sorted(await session.scalars(select(Workspace.name)))
    assert names == ["Renamed", "Second"]  # the failed transaction left nothing behind


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_write_now_runs_in_one_worker_thread_behind_the_writer_lock(
    db: Database,
) -> None:
    workspace, _ = await create_workspace(db, name="Acme")
    threads: set[int] = set()

    def bump(session):  # type: ignore[no-untyped-def]
        threads.add(threading.get_ident())
        name = session.scalar(select(Workspace.name).where(Workspace.id == workspace.id))
        time.sleep(0.01)  # a read-modify-write that interleaving writers would break
        session.execute(
            update(Workspace).where(Workspace.id == workspace.id).values(name=name + "+")
        )

    async def bump_async() -> None:  # the async write path shares the lock
        async with db.write() as session:
            name = await session.scalar(select(Workspace.name).where(Workspace.id == workspace.id))
            await asyncio.sleep(0.01)
            await session.execute(
                update(Workspace).where(Workspace.id == workspace.id).values(name=name + "+")
            )

    await asyncio.gather(
        *(db.write_now(bump) for _ in range(10)), *(bump_async() for _ in range(5))
    )
    assert threading.get_ident() not in threads
    assert (
        await db.read_now(
            lambda session: session.scalar(
                select(Workspace.name).where(Workspace.id == workspace.id)
            )
        )
        == "Acme" + "+" * 15
    )


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_write_now_calls_that_queue_up_share_a_transaction(db: Database) -> None:
    """Group commit: writes that arrive together are committed in a few transactions, each call's
    own changes whole; one that raises leaves nothing and gets its own exception."""
    writer = db._sync_engines[1]  # noqa: SLF001 - the engine the thread writes on
    begins: list[int] = []

    def count(conn):  # type: ignore[no-untyped-def]
        begins.append(1)

    event.listen(writer, "begin", count)

    def add(name: str, *, fail: bool = False):  # type: ignore[no-untyped-def]
        def write(session):  # type: ignore[no-untyped-def]
            session.add(Workspace(name=name, is_default=False, settings={}))
            session.flush()
            if fail:
                raise ValueError(name)
            return name

        return write

    try:
        results = await asyncio.gather(
            *(db.write_now(add(f"w{i}", fail=i % 10 == 7)) for i in range(50)),
            return_exceptions=True,
        )
    finally:
        event.remove(writer, "begin", count)
    failed = [r for r in results if isinstance(r, Exception)]
    assert [str(e) for e in failed] == ["w7", "w17", "w27", "w37", "w47"]
    assert all(isinstance(e, ValueError) for e in failed)
    names = set(await db.read_now(lambda session: list(session.scalars(select(Workspace.name)))))
    assert names == {f"w{i}" for i in range(50) if i % 10 != 7}
    assert len(begins) <= 10  # one transaction for the first call, then the queue in groups


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_a_database_error_in_a_group_runs_each_call_alone(db: Database) -> None:
    """A database error may have ended the shared transaction: the group is rolled back and each
    call runs again alone, so only the faulty one fails."""
    workspace, _ = await create_workspace(db, name="Acme")

    def add(name: str):  # type: ignore[no-untyped-def]
        def write(session):  # type: ignore[no-untyped-def]
            session.add(Workspace(name=name, is_default=False, settings={}))
            return name

        return write

    def duplicate(session):  # type: ignore[no-untyped-def]
        session.add(Workspace(id=workspace.id, name="Clash", is_default=False, settings={}))
        session.flush()

    calls = (
        [db.write_now(add(f"w{i}")) for i in range(5)]
        + [db.write_now(duplicate)]
        + [db.write_now(add(f"v{i}")) for i in range(5)]
    )
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[5], IntegrityError)
    assert [r for i, r in enumerate(results) if i != 5] == [f"w{i}" for i in range(5)] + [
        f"v{i}" for i in range(5)
    ]
    names = set(await db.read_now(lambda session: list(session.scalars(select(Workspace.name)))))
    assert names == {"Acme", *(f"w{i}" for i in range(5)), *(f"v{i}" for i in range(5))}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_a_write_cancelled_while_it_waits_never_runs(db: Database) -> None:
    ran: list[str] = []

    def slow(session):  # type: ignore[no-untyped-def]
        time.sleep(0.2)  # holds the writer while the next call waits in the queue
        ran.append("slow")

    def second(session):  # type: ignore[no-untyped-def]
        ran.append("second")

    first = asyncio.ensure_future(db.write_now(slow))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(db.write_now(second))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await first
    await db.write_now(lambda session: ran.append("third"))
    assert ran == ["slow", "third"]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_a_locked_database_fails_a_group_once(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Locked by another process past the busy timeout: every call of the group gets the busy
    error after one wait, not one wait each."""
    fast = Database(str(db.url), busy_timeout_ms=200)
    locker = sqlite3.connect(db.url.database, isolation_level=None)
    try:

        def hold(session):  # type: ignore[no-untyped-def]
            session.execute(update(Workspace).values(name="held"))
            time.sleep(0.1)  # the lock's next holder waits for this one meanwhile

        def rename(session):  # type: ignore[no-untyped-def]
            session.execute(update(Workspace).values(name="renamed"))

        first = asyncio.ensure_future(fast.write_now(hold))
        await asyncio.sleep(0.02)
        locker.execute("BEGIN IMMEDIATE")  # another process takes the lock before the group begins
        started = time.monotonic()
        results = await asyncio.gather(
            *(fast.write_now(rename) for _ in range(10)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        await first
    finally:
        locker.close()
        await fast.dispose()
    assert all(unavailable_reason(r) == "database_busy" for r in results), (results, elapsed)
    assert elapsed < 1.5  # one busy timeout (0.2 s), not ten
