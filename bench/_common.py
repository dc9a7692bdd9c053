"""Helpers shared by the benchmarks in ``bench/`` (not a test module; nothing here asserts).

* make the repository importable (``src/`` for chatwell, the root for ``tests.services``);
* read SciFact in place;
* open a fresh database (SQLite file in a temp dir, or a fresh database on an embedded
  PostgreSQL started with ``tests.services.start_postgres``) and migrate it;
* timing helpers: percentiles, interval unions, a plain text table and the final JSON line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

DEFAULT_SCIFACT = Path("/work/shared/eval/scifact")
DEFAULT_CORPUS = DEFAULT_SCIFACT / "corpus.jsonl"


# ------------------------------------------------------------------------------- SciFact


def read_corpus(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The first ``limit`` documents of a BEIR corpus.jsonl (``_id``, ``title``, ``text``)."""
    docs: list[dict[str, str]] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            if not (row.get("text") or "").strip():
                continue
            docs.append(
                {"id": str(row["_id"]), "title": row.get("title") or "", "text": row["text"]}
            )
            if limit is not None and len(docs) >= limit:
                break
    return docs


def read_queries(scifact_dir: Path, split: str = "test") -> list[str]:
    """Query texts of ``split`` (ids from qrels/<split>.tsv), in file order, de-duplicated."""
    wanted: set[str] = set()
    qrels = scifact_dir / "qrels" / f"{split}.tsv"
    if qrels.is_file():
        with open(qrels, encoding="utf-8") as fh:
            next(fh, None)
            wanted = {line.split("\t", 1)[0] for line in fh if line.strip()}
    out: list[str] = []
    with open(scifact_dir / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if (not wanted or str(row["_id"]) in wanted) and row["text"].strip():
                out.append(row["text"].strip())
    return list(dict.fromkeys(out))


# ------------------------------------------------------------------------------- databases


@contextlib.contextmanager
def postgres_server() -> Iterator[Any]:
    """An embedded PostgreSQL 18 + pgvector (``tests.services.start_postgres``)."""
    from tests.services import start_postgres

    with start_postgres() as server:
        yield server


@contextlib.asynccontextmanager
async def open_database(
    backend: str, workdir: Path, pg_server: Any = None, name: str = "bench"
) -> AsyncIterator[tuple[Any, str]]:
    """A migrated ``Database`` on a fresh SQLite file or a fresh PostgreSQL database."""
    from chatwell.storage import migrate
    from chatwell.storage.database import Database

    if backend == "postgres":
        assert pg_server is not None
        dbname = pg_server.create_database(f"{name}_{os.getpid()}")
        url = pg_server.url(dbname)
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'chatwell.db'}"
    db = Database(url)
    try:
        await migrate.upgrade(db)
        yield db, url
    finally:
        await db.dispose()


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


# ------------------------------------------------------------------------------- timing


class Clock:
    """Records (start, end) intervals per label; reports sums and wall-clock unions."""

    def __init__(self) -> None:
        self.intervals: dict[str, list[tuple[float, float]]] = {}

    def add(self, label: str, start: float, end: float) -> None:
        self.intervals.setdefault(label, []).append((start, end))

    @contextlib.contextmanager
    def measure(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(label, start, time.perf_counter())

    def count(self, label: str) -> int:
        return len(self.intervals.get(label, []))

    def total(self, label: str) -> float:
        return sum(e - s for s, e in self.intervals.get(label, []))

    def union(self, label: str, window: tuple[float, float] | None = None) -> float:
        return union_length(self.intervals.get(label, []), window)


def union_length(
    intervals: Iterable[tuple[float, float]], window: tuple[float, float] | None = None
) -> float:
    """Length of the union of intervals (optionally clipped to ``window``)."""
    spans = sorted(intervals)
    if window is not None:
        lo, hi = window
        spans = [(max(s, lo), min(e, hi)) for s, e in spans if e > lo and s < hi]
    total = 0.0
    cur_s = cur_e = None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s  # type: ignore[operator]
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s  # type: ignore[operator]
    return total


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "mean_ms": round(statistics.fmean(ms), 3) if ms else float("nan"),
        "max_ms": round(max(ms), 3) if ms else float("nan"),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain left/right aligned text table (numbers right-aligned)."""
    rows = [[_fmt(c) for c in row] for row in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(headers)
    ]
    numeric = [all(_is_num(r[i]) for r in rows) if rows else False for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric))

    out = [line([str(h) for h in headers]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def _is_num(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return text == "-"
    return True


def json_line(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=False, default=str)


def machine_info() -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)
