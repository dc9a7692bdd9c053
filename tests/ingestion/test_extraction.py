"""Extraction under bounds (``chatwell.ingestion.extraction``): the caps on text and chunks, the
extraction process's memory, CPU and wall-clock limits, and cancellation (the process is killed).

The end-to-end proof against a running server (its memory while a heavy file is ingested, a
delete mid-extraction) is ``tests/security/test_heavy_files.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

import pytest

from chatwell.domain.documents import LoaderError
from chatwell.ingestion.extraction import (
    ExtractionCancelled,
    ExtractionJob,
    ExtractionLimits,
    Extractor,
    extract,
    runs_inline,
)
from tests.heavy_files import children, heavy_docx, paragraphs
from tests.knowledge.helpers import docx_bytes

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def job(data: bytes, filename: str = "report.docx", **fields: object) -> ExtractionJob:
    return replace(
        ExtractionJob(
            source_type="file",
            source_title=filename,
            source_url=None,
            url=None,
            filename=filename,
            declared_type=None,
            max_bytes=50_000_000,
            chunk_tokens=256,
            overlap_tokens=32,
            data=data,
        ),
        **fields,
    )


async def wanted() -> bool:
    return True


def vm_size(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def forkservers() -> list[int]:
    """This process's multiprocessing forkservers (an xdist worker also parents other tests'
    servers, e.g. embedded PostgreSQL, whose own children are not extraction processes)."""
    found = []
    for pid in children(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"multiprocessing.forkserver" in cmdline.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def forkserver_children() -> list[int]:
    return [pid for server in forkservers() for pid in children(server)]


async def test_a_small_text_is_read_inline_and_a_docx_in_a_process_with_the_same_result() -> None:
    text = "\n\n".join(paragraphs(20_000))
    assert runs_inline(job(text.encode(), "notes.md"))
    assert not runs_inline(job(text.encode() * 20, "notes.md"))  # over INLINE_MAX_BYTES
    document = docx_bytes("Shipping", paragraphs(20_000))
    assert not runs_inline(job(document))
    extractor = Extractor(ExtractionLimits())
    in_process = await extractor.run(job(document), wanted)
    inline = extract(job(document), ExtractionLimits())
    assert in_process == inline and len(inline.drafts) > 5
    assert in_process.title == "Shipping"  # the first heading: the file name says less


async def test_too_much_text_or_too_many_chunks_fail_as_source_too_large() -> None:
    text = "\n\n".join(paragraphs(50_000)).encode()
    with pytest.raises(LoaderError) as too_long:
        extract(job(text, "notes.txt"), ExtractionLimits(max_text_chars=10_000))
    assert (
        too_long.value.code == "source_too_large" and "10,000 characters" in too_long.value.message
    )
    with pytest.raises(LoaderError) as too_many:
        extract(job(text, "notes.txt"), ExtractionLimits(max_chunks=3))
    assert too_many.value.code == "source_too_large" and "chunks" in too_many.value.message


async def test_a_heavy_docx_is_refused_while_streaming_before_it_is_parsed_whole() -> None:
    heavy = heavy_docx(6 * 1024 * 1024)
    assert len(heavy) < 1_000_000  # a small file ...
    started = time.process_time()
    with pytest.raises(LoaderError) as refused:
        extract(job(heavy), ExtractionLimits(max_text_chars=500_000))
    assert (
        refused.value.code == "source_too_large" and "so far" in refused.value.message
    )  # ... cut short
    # Counting half a megabyte of text is quick; python-docx reading all six takes minutes.
    assert time.process_time() - started < 20


async def test_the_extraction_process_is_killed_at_its_deadline_memory_and_cpu_limits() -> None:
    heavy = heavy_docx(6 * 1024 * 1024)
    roomy = ExtractionLimits(max_text_chars=100_000_000, max_chunks=1_000_000)
    with pytest.raises(LoaderError) as slow:
        await Extractor(replace(roomy, timeout_seconds=1.5)).run(job(heavy), wanted)
    assert slow.value.code == "extraction_timeout" and "1.5 s" in slow.value.message
    with pytest.raises(LoaderError) as busy:
        await Extractor(replace(roomy, cpu_seconds=1)).run(job(heavy), wanted)
    assert busy.value.code == "extraction_timeout" and "CPU" in busy.value.message
    # A forked process starts with the forkserver's address space (interpreter, parsers,
    # tokenizer); 48 MiB on top of that is far too little for 24 MB of text.
    base = max(vm_size(pid) for pid in forkservers())
    tight = replace(roomy, memory_bytes=base + 48 * 1024 * 1024)
    with pytest.raises(LoaderError) as hungry:
        await Extractor(tight).run(job(b"many words here\n" * 1_500_000, "notes.txt"), wanted)
    assert hungry.value.code == "source_too_large" and "MiB of memory" in hungry.value.message
    assert forkserver_children() == []


async def test_cancelling_kills_the_process_at_once() -> None:
    heavy = heavy_docx(6 * 1024 * 1024)
    roomy = ExtractionLimits(max_text_chars=100_000_000, max_chunks=1_000_000)
    seen: list[list[int]] = []

    async def until_running() -> bool:
        seen.append(forkserver_children())
        return len(seen) < 4

    started = time.monotonic()
    with pytest.raises(ExtractionCancelled):
        await Extractor(roomy).run(job(heavy), until_running)
    assert time.monotonic() - started < 15
    assert seen[-1], "the extraction process was running when it was cancelled"
    assert forkserver_children() == []
    # A task cancelled from outside (the server shutting down) kills it as well.
    task = asyncio.ensure_future(Extractor(roomy).run(job(heavy), wanted))
    while not forkserver_children():
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert forkserver_children() == []
