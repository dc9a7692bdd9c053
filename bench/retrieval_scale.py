"""Hybrid retrieval latency with many bots on PostgreSQL/pgvector: 1M chunks across 1,000 bots.

The schema is the product's (``migrate.upgrade``); the data is synthetic but realistic in size:
chunk texts of ~``--words`` words sampled from SciFact sentences, headings, random unit vectors
of 384 dimensions, one source per bot. Chunks are written with ``COPY`` (the ORM path of
``query_latency.py`` runs at ~800 chunks/s, 20 minutes per million); ``search_vector`` is the
table's generated column, computed by PostgreSQL as in production.

The HNSW index is dropped before the load and, by default, not rebuilt: a bot of ~1,000 chunks is
searched by the exact per-bot scan (``PostgresSearchIndex.vector_search`` uses HNSW only for bots
above ``EXACT_SCAN_MAX_CHUNKS``), so the index would not be read by these queries, and building it
over 1M vectors takes hours on 2 cores. ``--hnsw`` builds it anyway (timed).

Then ``--queries`` SciFact test queries, each against a random bot, through
``Retriever.search(k=8)`` with the query's vector precomputed (so the figure is the index's, not
the embedding model's; ``query_latency.py`` reports the model's ~10–40 ms separately), and the
keyword and vector halves on their own, plus EXPLAIN ANALYZE of both for one bot.

    .venv/bin/python bench/retrieval_scale.py --bots 1000 --chunks 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import (  # noqa: E402
    DEFAULT_SCIFACT,
    json_line,
    latency_summary,
    machine_info,
    postgres_server,
    read_corpus,
    read_queries,
    table,
)

DIM = 384
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


class FixedVectors:
    """An embedder that hands back precomputed query vectors (the index is what is measured)."""

    model_id = "bench-fixed"

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    async def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])


def sentences_of(corpus: Path) -> tuple[list[str], list[str]]:
    docs = read_corpus(corpus)
    sentences = [
        s.strip() for d in docs for s in _SENTENCE_END.split(d["text"]) if len(s.split()) >= 5
    ]
    return sentences, [d["title"] for d in docs if d["title"]]


async def load(
    dsn: str, db: Any, bots: int, chunks: int, words: int, seed: int, corpus: Path
) -> dict[str, Any]:
    import asyncpg

    from chatwell.domain.bots import BotCreate
    from chatwell.services.bots import create_bot
    from chatwell.services.workspaces import create_workspace

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    sentences, titles = sentences_of(corpus)
    lengths = [len(s.split()) for s in sentences]
    workspace, _ = await create_workspace(db, name="Scale bench")
    started = time.perf_counter()
    bot_ids = [
        (await create_bot(db, workspace_id=workspace.id, data=BotCreate(name=f"Bot {i}"))).id
        for i in range(bots)
    ]
    bots_seconds = time.perf_counter() - started
    per_bot = chunks // bots
    from pgvector.asyncpg import register_vector

    conn = await asyncpg.connect(dsn, ssl=False)
    await register_vector(conn)  # vectors go over COPY in binary
    try:
        await conn.execute("DROP INDEX IF EXISTS ix_chunks_embedding_384")
        source_ids = [uuid.uuid4() for _ in bot_ids]
        await conn.copy_records_to_table(
            "sources",
            columns=[
                "id",
                "workspace_id",
                "bot_id",
                "type",
                "title",
                "mime_type",
                "status",
                "chunk_count",
                "progress",
                "options",
                "attempts",
                "created_at",
                "updated_at",
            ],
            records=[
                (
                    sid,
                    workspace.id,
                    bid,
                    "text",
                    rng.choice(titles)[:400],
                    "text/plain",
                    "ready",
                    per_bot,
                    1.0,
                    "{}",
                    1,
                    _now(),
                    _now(),
                )
                for sid, bid in zip(source_ids, bot_ids)
            ],
        )
        started = time.perf_counter()
        done = 0
        batch_bots = max(1, 20_000 // per_bot)
        for first in range(0, bots, batch_bots):
            records = []
            for b in range(first, min(bots, first + batch_bots)):
                vectors = nprng.standard_normal((per_bot, DIM), dtype=np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                for position in range(per_bot):
                    parts, count = [], 0
                    target = int(rng.uniform(0.8, 1.2) * words)
                    while count < target:
                        i = rng.randrange(len(sentences))
                        parts.append(sentences[i])
                        count += lengths[i]
                    text = " ".join(parts)
                    records.append(
                        (
                            workspace.id,
                            bot_ids[b],
                            source_ids[b],
                            position,
                            text,
                            f"{rng.choice(titles)[:200]} > Section",
                            int(count * 1.35),
                            hashlib.sha256(text.encode()).hexdigest(),
                            "bench",
                            DIM,
                            vectors[position],
                            _now(),
                        )
                    )
            await conn.copy_records_to_table(
                "chunks",
                columns=[
                    "workspace_id",
                    "bot_id",
                    "source_id",
                    "position",
                    "text",
                    "heading",
                    "token_count",
                    "content_hash",
                    "embedding_model",
                    "embedding_dim",
                    "embedding_vec",
                    "created_at",
                ],
                records=records,
            )
            done += len(records)
            print(f"  ... {done} chunks in {time.perf_counter() - started:.0f}s", flush=True)
        load_seconds = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE chunks")
        await conn.execute("ANALYZE sources")
        await conn.execute("ANALYZE bots")
        analyze_seconds = time.perf_counter() - started
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('chunks'))")
    finally:
        await conn.close()
    return {
        "bot_ids": bot_ids,
        "bots_seconds": round(bots_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "chunks_per_s": round(done / load_seconds, 1),
        "analyze_seconds": round(analyze_seconds, 1),
        "chunks_table": size,
        "chunks": done,
    }


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in vector) + "]"


async def measure(
    db: Any, bot_ids: list[uuid.UUID], queries: list[str], seed: int
) -> dict[str, Any]:
    from chatwell.retrieval.index.postgres import PostgresSearchIndex
    from chatwell.retrieval.service import Retriever

    rng = random.Random(seed + 1)
    nprng = np.random.default_rng(seed + 1)
    embedder = FixedVectors()
    for q in queries:
        v = nprng.standard_normal(DIM).astype(np.float32)
        embedder.vectors[q.strip()[:2000]] = v / np.linalg.norm(v)
    index = PostgresSearchIndex()
    retriever = Retriever(db, index, embedder)  # type: ignore[arg-type]
    for q in queries[:10]:  # warm the pool, the plan cache and the statistics cache
        await retriever.search(bot_id=rng.choice(bot_ids), query=q, k=8)
    full, keyword, vector = [], [], []
    for q in queries:
        bot = rng.choice(bot_ids)
        started = time.perf_counter()
        await retriever.search(bot_id=bot, query=q, k=8)
        full.append(time.perf_counter() - started)
        vec = embedder.vectors[q.strip()[:2000]]
        async with db.read() as session:
            started = time.perf_counter()
            await index.keyword_search(session, bot, q, 100)
            keyword.append(time.perf_counter() - started)
            started = time.perf_counter()
            await index.vector_search(session, bot, vec, 100)
            vector.append(time.perf_counter() - started)
    return {
        "search": latency_summary(full),
        "keyword": latency_summary(keyword),
        "vector": latency_summary(vector),
    }


async def explain(dsn: str, bot: uuid.UUID, query: str) -> dict[str, str]:
    import asyncpg

    from chatwell.retrieval.text_search import postgres_tsquery

    vector = np.random.default_rng(3).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    conn = await asyncpg.connect(dsn, ssl=False)
    try:
        keyword = await conn.fetch(
            "EXPLAIN ANALYZE SELECT id, ts_rank_cd(search_vector, q, 1) AS score FROM chunks,"
            " to_tsquery('english', $1) AS q WHERE bot_id = $2 AND search_vector @@ q ORDER BY score DESC LIMIT 100",
            postgres_tsquery(query),
            bot,
        )
        dense = await conn.fetch(
            "EXPLAIN ANALYZE SELECT id, embedding_vec <=> $1::vector AS d FROM chunks"
            " WHERE bot_id = $2 AND embedding_dim = 384 ORDER BY d LIMIT 100",
            _vector_text(vector),
            bot,
        )
    finally:
        await conn.close()

    def shown(rows: list[Any]) -> str:  # the query vector's 384 numbers say nothing
        return re.sub(r"'\[[-0-9.,e]+\]'", "'[...]'", "\n".join(r[0] for r in rows))

    return {"keyword": shown(keyword), "vector": shown(dense)}


async def main_async(args: argparse.Namespace) -> None:
    from chatwell.storage import migrate
    from chatwell.storage.database import Database

    queries = read_queries(args.scifact)[: args.queries]
    with postgres_server() as server:
        name = server.create_database("scale_bench")
        db = Database(server.url(name))
        await migrate.upgrade(db)
        print(f"loading {args.chunks} chunks into {args.bots} bots ...", flush=True)
        loaded = await load(
            server.dsn(name),
            db,
            args.bots,
            args.chunks,
            args.words,
            args.seed,
            args.scifact / "corpus.jsonl",
        )
        bot_ids = loaded.pop("bot_ids")
        hnsw_seconds = None
        if args.hnsw:
            import asyncpg

            started = time.perf_counter()
            conn = await asyncpg.connect(server.dsn(name), ssl=False)
            await conn.execute("SET maintenance_work_mem = '1GB'")
            await conn.execute(
                "CREATE INDEX ix_chunks_embedding_384 ON chunks USING hnsw"
                " ((embedding_vec::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384"
            )
            await conn.close()
            hnsw_seconds = round(time.perf_counter() - started, 1)
        results = await measure(db, bot_ids, queries, args.seed)
        plans = await explain(server.dsn(name), bot_ids[0], queries[0])
        await db.dispose()
    rows = [
        (label, r["n"], r["p50_ms"], r["p95_ms"], r["mean_ms"], r["max_ms"])
        for label, r in results.items()
    ]
    print(
        f"\n== retrieval at scale (PostgreSQL {args.chunks} chunks, {args.bots} bots, "
        f"{args.chunks // args.bots} chunks per bot; HNSW built: {args.hnsw})"
    )
    print(f"load: {loaded}")
    if hnsw_seconds is not None:
        print(f"HNSW build: {hnsw_seconds}s")
    print(
        table(
            [
                "operation (k=8 search; 100 candidates per side)",
                "n",
                "p50 ms",
                "p95 ms",
                "mean ms",
                "max ms",
            ],
            rows,
        )
    )
    print("\nEXPLAIN ANALYZE keyword query (one bot):\n" + plans["keyword"])
    print("\nEXPLAIN ANALYZE vector query (one bot):\n" + plans["vector"])
    print(
        json_line(
            {
                "benchmark": "retrieval_scale",
                "chunks": args.chunks,
                "bots": args.bots,
                "hnsw": args.hnsw,
                "hnsw_seconds": hnsw_seconds,
                "load": loaded,
                "latency": results,
                "machine": machine_info(),
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument(
        "--chunks", type=int, default=1_000_000, help="chunks in all, spread evenly over the bots"
    )
    parser.add_argument("--words", type=int, default=150, help="mean words per chunk")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--hnsw", action="store_true", help="build the HNSW index after the load (timed)"
    )
    parser.add_argument("--scifact", type=Path, default=DEFAULT_SCIFACT)
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
