"""Which ONNX session runs each of a call's batches, for the MiniLM embedder (``minilm``).

Two kinds of session: ``main`` using every thread (the model's own, made on first use), and
``parallel`` one-thread sessions made by the first call of more than ``batch_size`` texts
(ingestion) or by the first two calls at once. A large call takes one of them and any other free
at that moment, and runs side by side on them. A small call (a question, an answer's sentences)
runs on ``main`` while the others do not exist and it is free. Once they exist, a small call runs
on ``main`` only when it is one run made alone (a question); otherwise on a free one-thread
session, or, every session busy, on ``main``: it never waits for ingestion.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

#: Runs one batch (rows of a call's texts) on a session.
RunBatch = Callable[[Any, list[int]], None]


class SessionScheduler:
    """The one-thread sessions (made by ``new_bulk_session``), the threads that drive them side
    by side, and the lock of the main session."""

    def __init__(self, *, parallel: int, new_bulk_session: Callable[[], Any]) -> None:
        self.parallel = parallel
        self._new_bulk_session = new_bulk_session
        self.bulk: queue.SimpleQueue[Any] | None = None  # the free one-thread sessions
        self._lane_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._init_lock = threading.Lock()
        self.run_lock = threading.Lock()  # held while a call runs on the main session

    def run(self, run: RunBatch, main: Any, batches: list[list[int]], *, small: bool) -> None:
        """Run ``batches`` (a call's ONNX runs) with ``run``, on ``main`` (the session with every
        thread) or the one-thread sessions, as the class docstring says; ``small``: a call of at
        most ``batch_size`` texts."""
        if self.parallel == 1:
            for rows in batches:
                with self.run_lock:
                    run(main, rows)
        elif small and self.bulk is None and self.run_lock.acquire(blocking=False):
            try:
                for rows in batches:
                    run(main, rows)
            finally:
                self.run_lock.release()
        elif small:
            self._run_small(run, main, batches)
        else:
            self._run_side_by_side(run, batches)

    def bulk_sessions(self) -> queue.SimpleQueue[Any]:
        """The free sessions of the calls of several batches (one call holds one)."""
        if self.bulk is None:
            with self._init_lock:
                if self.bulk is None:
                    free: queue.SimpleQueue[Any] = queue.SimpleQueue()
                    for _ in range(self.parallel):
                        free.put(self._new_bulk_session())
                    self.bulk = free
        return self.bulk

    def _lanes(self) -> concurrent.futures.ThreadPoolExecutor:
        """Threads for the extra sessions of a large call (the call's own thread runs one)."""
        if self._lane_pool is None:
            with self._init_lock:
                if self._lane_pool is None:
                    self._lane_pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=max(1, self.parallel - 1), thread_name_prefix="minilm-lane"
                    )
        return self._lane_pool

    def _run_small(self, run: RunBatch, session: Any, batches: list[list[int]]) -> None:
        """A call of at most ``batch_size`` texts (a question, an answer's sentences, a page's
        chunks) once the one-thread sessions exist: one run made alone (a question) on the
        session with every thread; otherwise on a free one-thread session rather than split an
        operator over threads other calls may be using (ingestion's batcher keeps ``parallel``
        in flight); every session busy, on the first one: it never waits."""
        free = self.bulk_sessions()
        taken = None
        alone = len(batches) == 1 and free.qsize() == self.parallel
        if not alone or not self.run_lock.acquire(blocking=False):
            try:
                taken = free.get_nowait()
            except queue.Empty:
                self.run_lock.acquire()  # every session busy: a question still runs now
        if taken is None:
            try:
                for rows in batches:
                    run(session, rows)
            finally:
                self.run_lock.release()
            return
        try:
            for rows in batches:
                run(taken, rows)
        finally:
            free.put(taken)

    def _run_side_by_side(self, run: RunBatch, batches: list[list[int]]) -> None:
        """A large call: on one one-thread session (waiting while ``parallel`` other calls hold
        them all) and any other free at this moment, so a lone large call uses every core too."""
        free = self.bulk_sessions()
        sessions = [free.get()]
        with contextlib.suppress(queue.Empty):
            while len(sessions) < min(self.parallel, len(batches)):
                sessions.append(free.get_nowait())
        pending = deque(batches)

        def lane(session: Any) -> None:
            try:
                while True:
                    try:
                        rows = pending.popleft()
                    except IndexError:
                        return
                    run(session, rows)
            except BaseException:
                pending.clear()  # the call fails: the other lanes stop after their batch
                raise

        helpers: list[concurrent.futures.Future[None]] = []
        try:
            helpers += [self._lanes().submit(lane, session) for session in sessions[1:]]
            lane(sessions[0])
        finally:
            concurrent.futures.wait(helpers)
            for session in sessions:
                free.put(session)
        for helper in helpers:
            helper.result()  # what a lane raised
