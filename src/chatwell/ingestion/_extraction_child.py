"""The extraction process (``chatwell.ingestion.extraction``): limits itself, extracts, replies once.

Importing this module loads everything an extraction needs — the loaders, their parsers and the
tokenizer — so the forkserver that imports it once hands each forked process a warm start.
The server process never imports it.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import docx  # noqa: F401  (warm: the DOCX loader imports it on first use)
import pypdf  # noqa: F401

from chatwell.domain.documents import LoaderError
from chatwell.embedders.tokenizer import count_tokens
from chatwell.ingestion.extraction import ExtractionJob, ExtractionLimits, extract

count_tokens("warm")  # loads the tokenizer once, in the forkserver


def main(sender: Connection, job: ExtractionJob, limits: ExtractionLimits) -> None:
    _limit(limits)
    try:
        reply: tuple[object, ...] = ("ok", extract(job, limits))
    except LoaderError as exc:
        reply = ("error", exc.code, exc.message) if not _out_of_memory(exc) else _too_large(limits)
    except MemoryError:
        reply = _too_large(limits)
    except Exception as exc:  # a parser crash is the file's problem, told the loaders' way
        reply = (
            _too_large(limits)
            if _out_of_memory(exc)
            else ("error", "malformed_file", "The file could not be read.")
        )
    try:
        sender.send(reply)
    except MemoryError:
        sender.send(_too_large(limits))
    finally:
        sender.close()


def _limit(limits: ExtractionLimits) -> None:
    try:
        import resource
    except ImportError:  # Windows: only the wall-clock deadline and the caps apply
        return
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    # SIGXCPU at the soft limit ends the process (the server reports extraction_timeout).
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # and leaves no core file behind


def _too_large(limits: ExtractionLimits) -> tuple[str, str, str]:
    return (
        "error",
        "source_too_large",
        f"Reading the document needs more than "
        f"{limits.memory_bytes // (1024 * 1024)} MiB of memory (CHATWELL_INGESTION_MEMORY_MB).",
    )


def _out_of_memory(exc: BaseException | None) -> bool:
    """A parser that ran out of memory often says so in its own error type (lxml: "Memory
    allocation failed"), which the loaders wrap as malformed_file."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, MemoryError) or "memory allocation failed" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
