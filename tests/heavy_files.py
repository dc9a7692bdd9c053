"""Files that look ordinary and expand enormously, generated on the spot (none is committed).

``heavy_docx`` is a valid Word file whose ``word/document.xml`` holds ``text_bytes`` of plain
paragraphs: within the DOCX loader's zip-bomb limits (a compression ratio around 10-20, as
ordinary prose has), yet a 10 MB file holds about 185 MiB of text. Used by the heavy-file tests
and by ``bench/heavy_file.py``, with the /proc readers both use to watch a server ingest one.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import zipfile
from pathlib import Path

_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def paragraphs(text_bytes: int, *, seed: int = 7, pool_size: int = 40) -> list[str]:
    """Plain sentences, about ``text_bytes`` of them, drawn from a pool of ``pool_size`` (so they
    compress like a long repetitive report, not like a run of one letter)."""
    rng = random.Random(seed)
    syllables = [
        "ka",
        "lo",
        "mi",
        "ren",
        "to",
        "sa",
        "vel",
        "qui",
        "dor",
        "an",
        "es",
        "ul",
        "bri",
        "po",
    ]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    pool = [
        " ".join(rng.choice(words) for _ in range(rng.randint(20, 90))).capitalize() + "."
        for _ in range(pool_size)
    ]
    out: list[str] = []
    size = 0
    while size < text_bytes:
        paragraph = rng.choice(pool)
        out.append(paragraph)
        size += len(paragraph) + 1
    return out


def heavy_docx(text_bytes: int, *, seed: int = 7, pool_size: int = 40) -> bytes:
    """A Word document of about ``text_bytes`` of paragraph text (its XML a little larger)."""
    body = "".join(
        f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>"
        for p in paragraphs(text_bytes, seed=seed, pool_size=pool_size)
    )
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {_NS}><w:body>{body}'
            "</w:body></w:document>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text.encode())
    return out.getvalue()


# -- watching a server process through /proc (Linux) ------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()  # the fields after "pid (name)"


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` now (0 when it is gone)."""
    fields = _stat(pid)
    return int(fields[21]) * _PAGE if fields else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used (0 when it is gone)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def extraction_processes(server_pid: int) -> list[int]:
    """The server's extraction processes: the children of its forkserver (a child of the server
    whose command line names the forkserver)."""
    found = []
    for child in children(server_pid):
        with contextlib.suppress(OSError):
            if b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.extend(children(child))
    return found
