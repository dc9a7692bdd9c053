"""Extraction under bounds: a source's bytes become chunk drafts within caps on text, chunks,
memory, CPU time and wall-clock time.

A small file of ordinary size can expand enormously (a 10 MB DOCX holds 185 MiB of paragraphs,
a PDF's streams inflate a thousandfold), so the work that turns bytes into drafts — loading and
splitting — runs in an extraction process of its own for every archive format (DOCX, PDF) and
every text larger than ``INLINE_MAX_BYTES``: the process gets an address-space limit
(``RLIMIT_AS``) and a CPU-time limit, and the server kills it at a wall-clock deadline, when the
source is deleted or re-synced meanwhile (``still_wanted`` turns false), or when the task is
cancelled. Processes fork from a forkserver that has already imported the loaders and the
tokenizer (``_extraction_child``), so starting one costs milliseconds, not an interpreter start.
Small texts (typed text, Q&A pairs, short pages) are extracted inline: their output can not
outgrow their input by much, and a process per tweet-sized source would slow ingestion down.

Both paths apply the same caps: more text than ``max_text_chars`` or more chunks than
``max_chunks`` fails the source with ``source_too_large``, so what the server embeds and stores
afterwards is bounded too. Failures are :class:`LoaderError` with a stable code
(``source_too_large``, ``extraction_timeout``, ``extraction_failed``); this module never touches
the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from chatwell.domain.documents import ChunkDraft, LoadedDocument, LoaderError
from chatwell.ingestion.loaders import BUILTIN_LOADERS, detect_loader, load_document
from chatwell.ingestion.loaders._text import text_budget, too_much_text
from chatwell.ingestion.splitter import split_document

log = logging.getLogger("chatwell.ingestion")

INLINE_MAX_BYTES = 256 * 1024
WATCH_SECONDS = 0.5  # how often a running extraction asks whether its source is still wanted
CHILD_MODULE = "chatwell.ingestion._extraction_child"


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    max_text_chars: int = 10_000_000
    max_chunks: int = 10_000
    memory_bytes: int = 1024 * 1024 * 1024
    cpu_seconds: int = 120
    timeout_seconds: float = 300.0
    concurrency: int = 2


@dataclass(frozen=True, slots=True)
class ExtractionJob:
    """What extraction needs of a source, and nothing of the database."""

    source_type: str
    source_title: str | None
    source_url: str | None  # as the source was added (a fetched page's final URL may differ)
    url: str | None
    filename: str | None
    declared_type: str | None
    max_bytes: int
    chunk_tokens: int
    overlap_tokens: int
    data: bytes = b""
    document: LoadedDocument | None = None  # already loaded (Q&A pairs): only split


@dataclass(frozen=True, slots=True)
class Extracted:
    title: str
    drafts: list[ChunkDraft]


class ExtractionCancelled(Exception):
    """The source was deleted or re-synced while it was extracted; its process is gone."""


def extract(job: ExtractionJob, limits: ExtractionLimits) -> Extracted:
    """Load, check the text cap, split, check the chunk cap (in whatever process runs it)."""
    from chatwell.embedders.tokenizer import count_tokens

    document = job.document
    if document is None:
        budget = text_budget.set(limits.max_text_chars)
        try:
            document = load_document(
                job.data,
                filename=job.filename,
                declared_type=job.declared_type,
                max_bytes=job.max_bytes,
                url=job.url,
            )
        finally:
            text_budget.reset(budget)
    chars = sum(len(section.text) for section in document.sections)
    if chars > limits.max_text_chars:
        raise too_much_text(chars, limits.max_text_chars)
    title = display_title(job, document)
    drafts = split_document(
        document,
        count_tokens=count_tokens,
        heading_prefix=title,
        chunk_tokens=job.chunk_tokens,
        overlap_tokens=job.overlap_tokens,
    )
    if len(drafts) > limits.max_chunks:
        raise LoaderError(
            "source_too_large",
            f"The document makes {len(drafts):,} chunks; the limit is "
            f"{limits.max_chunks:,} (CHATWELL_INGESTION_MAX_CHUNKS).",
        )
    return Extracted(title, drafts)


def display_title(job: ExtractionJob, document: LoadedDocument) -> str:
    """The source's title for citations: the caller's, else the document's, else the file/URL."""
    generic = {None, "", job.source_url, job.filename}
    if job.source_type in ("text", "qa") or job.source_title not in generic:
        return job.source_title or ""
    return (document.title or job.source_title or job.source_url or job.filename or "Untitled")[
        :500
    ]


def runs_inline(job: ExtractionJob) -> bool:
    """Small text, or a document already loaded, or a loader a plugin registered in this process
    only (the extraction process knows the built-in ones)."""
    if job.document is not None:
        return True
    spec = detect_loader(job.data, filename=job.filename, declared_type=job.declared_type)
    if BUILTIN_LOADERS.get(spec.name) is not spec.load:
        return True
    return spec.sniff is None and len(job.data) <= INLINE_MAX_BYTES


class Extractor:
    """Runs extractions, at most ``limits.concurrency`` processes at once (one per CPU is plenty:
    the work is all CPU)."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self._slots = asyncio.Semaphore(limits.concurrency)

    async def run(
        self, job: ExtractionJob, still_wanted: Callable[[], Awaitable[bool]]
    ) -> Extracted:
        if len(job.data) > job.max_bytes:  # refused before any process starts
            raise LoaderError(
                "file_too_large",
                f"The file is {len(job.data)} bytes; the limit is {job.max_bytes} bytes.",
            )
        inline = await asyncio.to_thread(self._inline, job)
        if inline is not None:
            return inline
        async with self._slots:
            if not await still_wanted():
                raise ExtractionCancelled()
            return await self._in_process(job, still_wanted)

    def _inline(self, job: ExtractionJob) -> Extracted | None:
        return extract(job, self.limits) if runs_inline(job) else None  # one thread hop for both

    async def _in_process(
        self, job: ExtractionJob, still_wanted: Callable[[], Awaitable[bool]]
    ) -> Extracted:
        context = _context()
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=_child, args=(sender, job, self.limits), name="chatwell-extraction", daemon=True
        )
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] | None = None
        exitcode: int | None = None
        try:
            await asyncio.to_thread(process.start)  # the first start also starts the forkserver
            deadline = loop.time() + self.limits.timeout_seconds
            sender.close()
            reply = asyncio.ensure_future(asyncio.to_thread(_receive, receiver))
            while True:
                done, _ = await asyncio.wait(
                    {reply}, timeout=max(0.0, min(WATCH_SECONDS, deadline - loop.time()))
                )
                if done:
                    break
                if loop.time() >= deadline:
                    raise LoaderError(
                        "extraction_timeout",
                        f"Reading the document took longer than "
                        f"{self.limits.timeout_seconds:g} s (CHATWELL_INGESTION_TIMEOUT_SECONDS).",
                    )
                if not await still_wanted():
                    raise ExtractionCancelled()
            outcome = reply.result()
        finally:
            # Whatever happened (a deadline, a deleted source, a cancelled task), the process ends here.
            if process.pid is not None:
                with contextlib.suppress(Exception):
                    process.kill()
                await asyncio.to_thread(process.join)
                exitcode = process.exitcode
            if reply is not None:
                with contextlib.suppress(BaseException):
                    await reply
            receiver.close()
            with contextlib.suppress(Exception):
                process.close()
        if outcome is None:
            raise self._died(exitcode)
        if outcome[0] == "error":
            raise LoaderError(outcome[1], outcome[2])
        return outcome[1]

    def _died(self, exitcode: int | None) -> LoaderError:
        cpu_limit = getattr(signal, "SIGXCPU", None)  # none on Windows
        if cpu_limit is not None and exitcode == -cpu_limit:
            return LoaderError(
                "extraction_timeout",
                f"Reading the document used more than {self.limits.cpu_seconds} s "
                "of CPU time (CHATWELL_INGESTION_CPU_SECONDS).",
            )
        log.warning("an extraction process ended with code %s", exitcode)
        return LoaderError(
            "extraction_failed",
            "Reading the document stopped unexpectedly (it may need more "
            "memory than CHATWELL_INGESTION_MEMORY_MB allows).",
        )


def _receive(receiver: Connection) -> Any:
    """The child's one message, or None when it died without sending one."""
    try:
        return receiver.recv()
    except (EOFError, OSError):
        return None


def _child(sender: Connection, job: ExtractionJob, limits: ExtractionLimits) -> None:
    # Runs in the extraction process, where the forkserver has imported the module already.
    from chatwell.ingestion._extraction_child import main

    main(sender, job, limits)


_started: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    """A forkserver whose server process has imported the loaders and the tokenizer (spawn where
    there is no fork)."""
    global _started
    if _started is None:
        if sys.platform != "win32" and "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([CHILD_MODULE])
        else:
            context = multiprocessing.get_context("spawn")
        _started = context
    return _started
