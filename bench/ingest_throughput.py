"""End-to-end ingestion throughput (chunks/s) against the bare embedder on the same chunks.

What it does
------------
1. Reads the first N documents of SciFact (``--corpus``, read in place) and, on a fresh database
   (SQLite file in a temp dir, or ``--backend postgres``: a fresh database on an embedded
   PostgreSQL 18 + pgvector), creates a workspace, a bot and one text source per document through
   the services.
2. Builds the knowledge runtime exactly as the server does (``build_knowledge``; the embedding
   cache lives in the fresh temp data dir, so it is empty and every chunk is a miss), warms the
   model up (its load time is reported, not counted), then runs the real worker path:
   ``IngestionWorker(ingestor, concurrency=settings.ingestion_concurrency)``, ``start()``,
   ``idle()``. That wall time is the pipeline time.
3. Reads the chunk texts back from the ``chunks`` table (``heading + "\\n\\n" + text``) and embeds
   exactly those with a bare ``MiniLMOnnxEmbedder`` in batches of 32 and 64.
4. Prints chunks, seconds and chunks/s for both, the ratio pipeline/raw, and where the pipeline
   time goes (timing wrappers around the embedder layers, the ONNX session, the loader, the
   splitter and the database write transactions), then one JSON line.

Not a test: nothing is asserted. Example::

    .venv/bin/python bench/ingest_throughput.py --docs 300 --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEFAULT_CORPUS,
    Clock,
    cpu_seconds,
    json_line,
    loadavg,
    machine_info,
    open_database,
    postgres_server,
    read_corpus,
    table,
    temp_dir,
)

# ------------------------------------------------------------------------------- instrumentation


class OnnxProbe:
    """Wraps ``InferenceSession.run`` of every session it is installed on (runs of several
    sessions may overlap: the clock's union counts their wall time once) to time it and record
    batch shape and padding."""

    def __init__(self, clock: Clock, label: str = "onnx_run"):
        self.clock = clock
        self.label = label
        self.batch_sizes: Counter[int] = Counter()
        self.real_tokens = 0
        self.padded_tokens = 0
        self._lock = threading.Lock()  # sessions run on several threads at once

    def install(self, session: Any) -> None:
        original = session.run

        def run(output_names: Any, feeds: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            mask = feeds.get("attention_mask")
            if mask is not None:
                with self._lock:
                    self.batch_sizes[int(mask.shape[0])] += 1
                    self.real_tokens += int(mask.sum())
                    self.padded_tokens += int(mask.size)
            start = time.perf_counter()
            try:
                return original(output_names, feeds, *args, **kwargs)
            finally:
                self.clock.add(self.label, start, time.perf_counter())

        session.run = run

    def install_on_model(self, model: Any) -> None:
        """On a loaded ``MiniLMOnnxEmbedder``'s all-threads session, and on the one-thread
        sessions its large calls run on side by side, as they are made."""
        self.install(model._session)
        new_session = model._new_session

        def probed_session(*args: Any, **kwargs: Any) -> Any:
            session = new_session(*args, **kwargs)
            self.install(session)
            return session

        model._new_session = probed_session

    @property
    def padding_efficiency(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else float("nan")

    @property
    def mean_batch(self) -> float:
        n = sum(self.batch_sizes.values())
        return sum(k * v for k, v in self.batch_sizes.items()) / n if n else float("nan")


def _timed_sync(clock: Clock, label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clock.measure(label):
            return fn(*args, **kwargs)

    return wrapper


def _timed_async(clock: Clock, label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            clock.add(label, start, time.perf_counter())

    return wrapper


def _timed_cm(clock: Clock, label: str, factory: Any) -> Any:
    @contextlib.asynccontextmanager
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            async with factory(*args, **kwargs) as value:
                yield value
        finally:
            clock.add(label, start, time.perf_counter())

    return wrapper


def instrument(knowledge: Any, db: Any, clock: Clock) -> dict[str, Any]:
    """Install timing wrappers on this run's objects (instances only; no product file changes)."""
    import chatwell.ingestion.extraction as extraction
    from chatwell.embedders.cache import CachedEmbedder
    from chatwell.embedders.minilm import MiniLMOnnxEmbedder
    from chatwell.retrieval.batching import BatchingEmbedder

    cached = knowledge.embedder
    layers: dict[str, Any] = {"cached": None, "batching": None, "model": None}
    node = cached
    while node is not None:
        if isinstance(node, CachedEmbedder):
            layers["cached"] = node
        elif isinstance(node, BatchingEmbedder):
            layers["batching"] = node
        elif isinstance(node, MiniLMOnnxEmbedder):
            layers["model"] = node
        node = getattr(node, "inner", None)
    model = layers["model"]
    if model is None:
        raise SystemExit(
            "this benchmark needs the offline MiniLM embedder (unset CHATWELL_EMBEDDING_BASE_URL)"
        )

    # Load the model now (its load time is reported separately), then probe the ONNX session.
    start = time.perf_counter()
    model.warm_up()
    load_seconds = time.perf_counter() - start
    probe = OnnxProbe(clock)
    probe.install_on_model(model)
    model._embed_blocking = _timed_sync(
        clock, "model_embed", model._embed_blocking
    )  # tokenize+run+pool

    ingestor = knowledge.ingestor
    # What the ingestor awaits: cache lookup + batching window + queueing + model + cache store.
    ingestor.embedder = _EmbedProbe(ingestor.embedder, clock)
    if layers["cached"] is not None:
        layers["cached"]._plan = _timed_sync(clock, "cache_lookup", layers["cached"]._plan)
        layers["cached"]._store = _timed_sync(clock, "cache_store", layers["cached"]._store)
    ingestor._extract = _timed_async(clock, "load", ingestor._extract)
    ingestor.claim_next = _timed_async(clock, "claim", ingestor.claim_next)
    ingestor._progress = _timed_async(clock, "progress_write", ingestor._progress)
    ingestor.index.store_vectors = _timed_async(
        clock, "store_vectors", ingestor.index.store_vectors
    )
    extraction.split_document = _timed_sync(
        clock, "split", extraction.split_document
    )  # inline sources
    # db.write = (SQLite: in-process writer lock) + transaction; _write_transaction = transaction.
    db.write = _timed_cm(clock, "db_write_total", db.write)
    db._write_transaction = _timed_cm(clock, "db_write_txn", db._write_transaction)
    return {"model": model, "probe": probe, "model_load_seconds": load_seconds, "layers": layers}


def _chain(embedder: Any) -> str:
    names = []
    node = embedder
    while node is not None:
        names.append(type(node).__name__)
        node = getattr(node, "inner", None)
    return " > ".join(names)


class _EmbedProbe:
    """Stands in for the ingestor's embedder; times each ``embed`` and counts texts per call."""

    def __init__(self, inner: Any, clock: Clock):
        self.inner = inner
        self.clock = clock
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.calls: list[int] = []

    async def embed(self, texts: Any) -> Any:
        self.calls.append(len(texts))
        start = time.perf_counter()
        try:
            return await self.inner.embed(texts)
        finally:
            self.clock.add("embed_call", start, time.perf_counter())


# ------------------------------------------------------------------------------- pipeline


async def run_pipeline(
    args: argparse.Namespace,
    docs: list[dict[str, str]],
    workdir: Path,
    pg_server: Any,
    round_no: int = 0,
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from chatwell.domain.bots import BotCreate
    from chatwell.domain.sources import TextSourceIn
    from chatwell.ingestion.splitter import embedding_text
    from chatwell.ingestion.worker import IngestionWorker
    from chatwell.knowledge import build_knowledge
    from chatwell.services.bots import create_bot
    from chatwell.services.principals import owner_principal
    from chatwell.services.sources import add_text_source
    from chatwell.services.workspaces import create_workspace
    from chatwell.settings import Settings
    from chatwell.storage.tables import Chunk, Source

    async with open_database(args.backend, workdir, pg_server, name=f"ingest{round_no}") as (
        db,
        url,
    ):
        overrides: dict[str, Any] = {"data_dir": workdir / "data", "database_url": url}
        if args.concurrency:
            overrides["ingestion_concurrency"] = args.concurrency
        settings = Settings(**overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        cache_file = settings.data_dir / "cache" / "embeddings.sqlite3"
        assert not cache_file.exists(), "the embedding cache must start empty"

        setup_start = time.perf_counter()
        workspace, _ = await create_workspace(db, name="Bench workspace")
        bot = await create_bot(db, workspace_id=workspace.id, data=BotCreate(name="Bench bot"))
        principal = owner_principal(workspace.id)
        for doc in docs:
            await add_text_source(
                db,
                principal=principal,
                bot_ref=str(bot.id),
                data=TextSourceIn(type="text", title=doc["title"][:500], text=doc["text"]),
            )
        setup_seconds = time.perf_counter() - setup_start

        knowledge = build_knowledge(db, settings)
        clock = Clock()
        probes = instrument(knowledge, db, clock)
        worker = IngestionWorker(knowledge.ingestor, concurrency=settings.ingestion_concurrency)

        load_before = loadavg()
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        worker.start()
        await worker.idle()
        end = time.perf_counter()
        cpu = cpu_seconds() - cpu_start
        await worker.stop()

        async with db.read() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(Source.status, func.count())
                        .where(Source.bot_id == bot.id)
                        .group_by(Source.status)
                    )
                ).all()
            )
            reclaimed = await session.scalar(
                select(func.count()).where(Source.bot_id == bot.id, Source.attempts > 1)
            )
            rows = (
                await session.execute(
                    select(Chunk.heading, Chunk.text, Chunk.token_count)
                    .where(Chunk.bot_id == bot.id)
                    .order_by(Chunk.id)
                )
            ).all()
        texts = [embedding_text(h, t) for h, t, _ in rows]
        cached = probes["layers"]["cached"]
        result = {
            "backend": args.backend,
            "docs": len(docs),
            "concurrency": settings.ingestion_concurrency,
            "sources_by_status": statuses,
            "sources_claimed_more_than_once": reclaimed,
            "model": f"{probes['model']!r}, threads={probes['model'].threads}",
            "chain": _chain(knowledge.embedder),
            "chunks": len(texts),
            "mean_chunk_tokens": (sum(r[2] for r in rows) / len(rows)) if rows else 0.0,
            "seconds": end - start,
            "cpu_seconds": cpu,
            "loadavg": (load_before, loadavg()),
            "setup_seconds": setup_seconds,
            "model_load_seconds": probes["model_load_seconds"],
            "cache_hits": getattr(cached, "hits", None),
            "cache_misses": getattr(cached, "misses", None),
            "window": (start, end),
            "clock": clock,
            "probe": probes["probe"],
            "embed_calls": knowledge.ingestor.embedder.calls,
            # texts per batch the BatchingEmbedder sent to the model (continuous batching)
            "batcher_batches": dict(getattr(probes["layers"]["batching"], "batch_sizes", {}) or {}),
        }
        if cached is not None:
            cached.close()
        return result | {"texts": texts}


# ------------------------------------------------------------------------------- raw embedder


def run_raw(texts: list[str], batch_size: int, repeat: int) -> dict[str, Any]:
    from chatwell.embedders.minilm import MiniLMOnnxEmbedder

    embedder = MiniLMOnnxEmbedder(batch_size=batch_size)
    embedder.warm_up()
    clock = Clock()
    probe = OnnxProbe(clock)
    probe.install_on_model(embedder)
    best = float("inf")
    best_cpu = float("inf")
    load_before = loadavg()
    for _ in range(repeat):
        cpu_start = cpu_seconds()
        start = time.perf_counter()
        embedder._embed_blocking(texts)
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, cpu_seconds() - cpu_start)
    return {
        "batch_size": batch_size,
        "chunks": len(texts),
        "seconds": best,
        "cpu_seconds": best_cpu,
        "loadavg": (load_before, loadavg()),
        "onnx_seconds": clock.total("onnx_run") / repeat,
        "padding_efficiency": probe.padding_efficiency,
    }


# ------------------------------------------------------------------------------- report


def longest_gap(
    intervals: list[tuple[float, float]], window: tuple[float, float]
) -> tuple[float, float]:
    """The longest stretch of ``window`` covered by none of ``intervals``."""
    best = (window[0], window[0])
    cursor = window[0]
    for s, e in sorted(intervals) + [(window[1], window[1])]:
        if s > cursor and s - cursor > best[1] - best[0]:
            best = (cursor, min(s, window[1]))
        cursor = max(cursor, e)
    return best


def report(pipe: dict[str, Any], raws: list[dict[str, Any]]) -> dict[str, Any]:
    clock: Clock = pipe["clock"]
    window = pipe["window"]
    wall = pipe["seconds"]
    n = pipe["chunks"]
    probe: OnnxProbe = pipe["probe"]
    pipe_rate = n / wall if wall else float("nan")

    print(
        f"\n== ingestion throughput: {pipe['docs']} SciFact docs -> {n} chunks "
        f"(mean {pipe['mean_chunk_tokens']:.0f} tokens), backend={pipe['backend']}, "
        f"concurrency={pipe['concurrency']}, cpus={os.cpu_count()}"
    )
    print(f"embedder chain: {pipe['chain']}; model: {pipe['model']}")
    print(
        f"sources by status: {pipe['sources_by_status']}; embedding cache hits/misses: "
        f"{pipe['cache_hits']}/{pipe['cache_misses']}; model load (excluded): "
        f"{pipe['model_load_seconds']:.2f}s; setup (excluded): {pipe['setup_seconds']:.2f}s\n"
    )

    rows = [
        [
            "pipeline (worker, end to end)",
            n,
            wall,
            pipe_rate,
            1.0,
            pipe["cpu_seconds"],
            "{:.2f}->{:.2f}".format(*pipe["loadavg"]),
        ]
    ]
    for raw in raws:
        rate = raw["chunks"] / raw["seconds"]
        rows.append(
            [
                f"raw MiniLMOnnxEmbedder batch={raw['batch_size']}",
                raw["chunks"],
                raw["seconds"],
                rate,
                pipe_rate / rate,
                raw["cpu_seconds"],
                "{:.2f}->{:.2f}".format(*raw["loadavg"]),
            ]
        )
    print(
        table(["run", "chunks", "seconds", "chunks/s", "pipeline/raw", "cpu s", "loadavg 1m"], rows)
    )
    print(
        "(cpu s = process user+sys CPU time; loadavg > cpus means other processes compete "
        "for the cores and wall-clock figures are inflated)"
    )

    print(
        "\nwhere the pipeline time goes (sum = total over concurrent sources; "
        "busy = wall time with at least one in progress; % of pipeline wall time)"
    )
    labels = [
        ("claim", "claim_next (write txn)"),
        ("load", "extract (parse and split, to_thread or a process)"),
        ("split", "split (within extract, inline sources)"),
        ("embed_call", "embed() as awaited by ingestor"),
        ("cache_lookup", "  cache lookup"),
        ("cache_store", "  cache store"),
        ("model_embed", "  model embedding (tokenize+run+pool)"),
        ("onnx_run", "    ONNX session.run"),
        ("progress_write", "progress updates (write txn)"),
        ("store_vectors", "store_vectors (inside final txn)"),
        ("db_write_total", "all db.write() incl. writer-lock wait"),
        ("db_write_txn", "  db write transactions (held)"),
    ]
    breakdown: dict[str, dict[str, float]] = {}
    out_rows = []
    for key, name in labels:
        count = clock.count(key)
        total = clock.total(key)
        busy = clock.union(key, window)
        breakdown[key] = {
            "count": count,
            "sum_s": round(total, 4),
            "busy_s": round(busy, 4),
            "busy_pct": round(100 * busy / wall, 2) if wall else 0.0,
        }
        out_rows.append([name, count, total, busy, 100 * busy / wall if wall else 0.0])
    print(table(["stage", "calls", "sum s", "busy s", "busy %"], out_rows))

    onnx_busy = clock.union("onnx_run", window)
    raw32 = next((r for r in raws if r["batch_size"] == 32), raws[0] if raws else None)
    calls = pipe["embed_calls"]
    print(
        f"\nmodel (ONNX) idle during the pipeline: {wall - onnx_busy:.2f}s of {wall:.2f}s "
        f"({100 * (wall - onnx_busy) / wall:.1f}%)"
    )
    print(
        f"pipeline ONNX batches: {sum(probe.batch_sizes.values())}, mean size "
        f"{probe.mean_batch:.1f}, sizes {dict(sorted(probe.batch_sizes.items()))}"
    )
    print(
        f"padding efficiency (real/padded tokens): pipeline {probe.padding_efficiency:.3f}"
        + "".join(f", raw b{r['batch_size']} {r['padding_efficiency']:.3f}" for r in raws)
    )
    if raw32:
        print(
            f"ONNX run time: pipeline {clock.total('onnx_run'):.2f}s vs raw b{raw32['batch_size']} "
            f"{raw32['onnx_seconds']:.2f}s for the same chunks"
        )
    print(
        f"ingestor embed() calls: {len(calls)}, texts per call mean "
        f"{(sum(calls) / len(calls)) if calls else 0:.2f}, max {max(calls) if calls else 0}"
    )
    batcher = pipe["batcher_batches"]
    batcher_n = sum(batcher.values())
    batcher_mean = sum(k * v for k, v in batcher.items()) / batcher_n if batcher_n else float("nan")
    print(
        f"BatchingEmbedder batches sent to the model: {batcher_n}, texts per batch mean "
        f"{batcher_mean:.1f}, sizes {dict(sorted(batcher.items()))}"
    )
    embed_spans = [e - s for s, e in clock.intervals.get("embed_call", [])]
    longest_embed = max(embed_spans, default=0.0)
    gap = longest_gap(clock.intervals.get("onnx_run", []), window)
    print(
        f"longest single embed() wait: {longest_embed:.2f}s; longest stretch with the model idle: "
        f"{gap[1] - gap[0]:.2f}s (from +{gap[0] - window[0]:.1f}s to +{gap[1] - window[0]:.1f}s); "
        f"sources claimed more than once (lease expired): {pipe['sources_claimed_more_than_once']}"
    )

    result = {
        "benchmark": "ingest_throughput",
        "backend": pipe["backend"],
        "docs": pipe["docs"],
        "chunks": n,
        "concurrency": pipe["concurrency"],
        "pipeline_seconds": round(wall, 3),
        "pipeline_chunks_per_s": round(pipe_rate, 2),
        "pipeline_cpu_seconds": round(pipe["cpu_seconds"], 3),
        "pipeline_loadavg": pipe["loadavg"],
        "raw": {
            str(r["batch_size"]): {
                "seconds": round(r["seconds"], 3),
                "cpu_seconds": round(r["cpu_seconds"], 3),
                "loadavg": r["loadavg"],
                "chunks_per_s": round(r["chunks"] / r["seconds"], 2),
                "padding_efficiency": round(r["padding_efficiency"], 4),
            }
            for r in raws
        },
        "ratio_vs_raw32": round(pipe_rate / (raw32["chunks"] / raw32["seconds"]), 3)
        if raw32
        else None,
        "ratio_vs_best_raw": round(pipe_rate / max(r["chunks"] / r["seconds"] for r in raws), 3)
        if raws
        else None,
        "model_idle_pct": round(100 * (wall - onnx_busy) / wall, 2) if wall else None,
        "longest_embed_wait_s": round(longest_embed, 3),
        "longest_model_idle_gap_s": round(gap[1] - gap[0], 3),
        "sources_claimed_more_than_once": pipe["sources_claimed_more_than_once"],
        "batcher_batches": dict(sorted(pipe["batcher_batches"].items())),
        "batcher_mean_batch": round(batcher_mean, 2) if batcher_n else None,
        "chain": pipe["chain"],
        "model": pipe["model"],
        "onnx_batches": dict(sorted(probe.batch_sizes.items())),
        "onnx_mean_batch": round(probe.mean_batch, 2),
        "padding_efficiency": round(probe.padding_efficiency, 4),
        "model_load_seconds": round(pipe["model_load_seconds"], 3),
        "sources_by_status": pipe["sources_by_status"],
        "breakdown": breakdown,
        "machine": machine_info(),
    }
    return result


async def main_async(args: argparse.Namespace) -> None:
    docs = read_corpus(Path(args.corpus), args.docs)
    if len(docs) < args.docs:
        print(f"note: corpus has only {len(docs)} documents", file=sys.stderr)
    rounds: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    texts: list[str] = []
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres_server()) if args.backend == "postgres" else None
        # Paired rounds (pipeline, then the raw runs on its chunks): on a shared machine the load
        # drifts, and a ratio is only meaningful between runs close in time.
        for round_no in range(args.rounds):
            with temp_dir("chatwell-bench-ingest-") as workdir:
                pipe = await run_pipeline(args, docs, workdir, pg, round_no)
            texts = pipe.pop("texts")
            raws = (
                []
                if args.skip_raw
                else [run_raw(texts, bs, args.raw_repeat) for bs in args.raw_batch_sizes]
            )
            rounds.append((pipe, raws))
    result = report(*rounds[0])
    if len(rounds) > 1:
        result["rounds"] = report_rounds(rounds)
    if args.batch_sweep:
        result["batch_sweep"] = batch_sweep(texts, args.batch_sweep)
    print(json_line(result))


def report_rounds(rounds: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> dict[str, Any]:
    import statistics

    print(
        f"\npaired rounds (the breakdown above is round 1): pipeline then raw, {len(rounds)} rounds"
    )
    sizes = [r["batch_size"] for r in rounds[0][1]]
    rows = []
    ratios: dict[int, list[float]] = {bs: [] for bs in sizes}
    pipe_rates = []
    for i, (pipe, raws) in enumerate(rounds, 1):
        rate = pipe["chunks"] / pipe["seconds"]
        pipe_rates.append(rate)
        row: list[Any] = [i, pipe["seconds"], rate]
        for raw in raws:
            raw_rate = raw["chunks"] / raw["seconds"]
            ratios[raw["batch_size"]].append(rate / raw_rate)
            row += [raw_rate, rate / raw_rate]
        row.append(
            "{:.2f}->{:.2f}".format(
                pipe["loadavg"][0], raws[-1]["loadavg"][1] if raws else pipe["loadavg"][1]
            )
        )
        rows.append(row)
    headers = ["round", "pipeline s", "pipeline chunks/s"]
    for bs in sizes:
        headers += [f"raw b{bs} chunks/s", f"ratio vs b{bs}"]
    headers.append("loadavg 1m")
    print(table(headers, rows))
    summary = {
        "pipeline_chunks_per_s": [round(r, 3) for r in pipe_rates],
        "pipeline_chunks_per_s_median": round(statistics.median(pipe_rates), 3),
    }
    for bs, values in ratios.items():
        summary[f"ratio_vs_raw{bs}"] = [round(v, 3) for v in values]
        summary[f"ratio_vs_raw{bs}_median"] = round(statistics.median(values), 3)
    print(
        "median ratio: "
        + ", ".join(f"vs b{bs} {statistics.median(v):.3f}" for bs, v in ratios.items())
    )
    return summary


def batch_sweep(texts: list[str], sizes: list[int]) -> dict[str, float]:
    """Bare-model throughput on the same chunks when they arrive in groups of ``size`` (each
    group embedded on its own, as the pipeline's small coalesced batches are)."""
    from chatwell.embedders.minilm import MiniLMOnnxEmbedder

    embedder = MiniLMOnnxEmbedder(batch_size=max(sizes))
    embedder.warm_up()
    out: dict[str, float] = {}
    rows = []
    for size in sizes:
        start = time.perf_counter()
        for i in range(0, len(texts), size):
            embedder._embed_blocking(texts[i : i + size])
        seconds = time.perf_counter() - start
        out[str(size)] = round(len(texts) / seconds, 2)
        rows.append([size, len(texts), seconds, len(texts) / seconds, loadavg()])
    print("\nbare model, chunks embedded in document order in groups of N (no global length sort)")
    print(table(["group N", "chunks", "seconds", "chunks/s", "loadavg 1m"], rows))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus", default=str(DEFAULT_CORPUS), help="BEIR corpus.jsonl (read in place)"
    )
    parser.add_argument(
        "--docs", "-n", type=int, default=300, help="documents to ingest (default 300)"
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="override CHATWELL_INGESTION_CONCURRENCY (default: from settings)",
    )
    parser.add_argument(
        "--raw-batch-sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[32, 64],
        help="comma-separated batch sizes for the bare embedder",
    )
    parser.add_argument(
        "--batch-sweep",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="also time the bare model on groups of these sizes, e.g. 1,2,4,8,16,32,64",
    )
    parser.add_argument("--skip-raw", action="store_true", help="pipeline only (no raw runs)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="paired rounds of (pipeline, raw) on fresh databases; the median ratio "
        "is printed (useful when the machine is shared)",
    )
    parser.add_argument(
        "--raw-repeat", type=int, default=1, help="raw runs per batch size (best kept)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
