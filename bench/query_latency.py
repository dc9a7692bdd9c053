"""Hybrid query latency (p50/p95) for a bot of 100k chunks, on SQLite and on PostgreSQL.

Embedding 100k real chunks would take most of an hour on this CPU, so the index is built
synthetically but through the product's own write path:

* chunk texts of ~200 words made of sentences sampled from SciFact (``--corpus``, read in
  place), headings ``<paper title> > <section>``, grouped into sources of ~50 chunks;
* random unit-norm float32 vectors of 384 dimensions, written with the same
  ``SearchIndex.store_vectors`` call the ingestor makes, in batched write transactions
  (``--batch`` chunks each), each bumping the bot's index version;
* a second bot (``--other-chunks``), its sources interleaved with the main bot's, so the bot
  filter has something to filter out.

On PostgreSQL the HNSW index is dropped for the bulk load and rebuilt afterwards (its build time
is reported; ``--pg-index-mode incremental`` keeps it during the load instead), then
``VACUUM ANALYZE``.

Then ~200 SciFact test queries run through ``Retriever.search(bot_id=..., query=..., k=8)`` as
built by ``build_knowledge`` (the production embedder chain; the vector cache starts empty and
every query is distinct, so each one is really embedded). Reported separately, p50/p95:

  (a) full search, (b) query embedding only (bare model, and the production chain),
  (c) keyword-only, vector-only and vector_scores (the index methods called directly), also on
      the small bot, where the bot filter matters most,
  cold-load: the first search on a fresh index (SQLite loads the bot's vector matrix then),
  PostgreSQL: EXPLAIN ANALYZE of the product's vector query (is HNSW used?), the generic-plan
  variant, plan-cache counters, HNSW build time and index sizes, and recall@k of HNSW
  against the exact top-k.

Not a test: nothing is asserted. Example::

    .venv/bin/python bench/query_latency.py --chunks 100000 --backend both
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import random
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DEFAULT_SCIFACT,
    json_line,
    latency_summary,
    loadavg,
    machine_info,
    open_database,
    postgres_server,
    read_corpus,
    read_queries,
    table,
    temp_dir,
)

DIM = 384


def query_terms(question: str) -> list[str]:
    from chatwell.retrieval.text_search import query_terms as terms

    return terms(question)


SECTIONS = [
    "Abstract",
    "Background",
    "Introduction",
    "Methods",
    "Results",
    "Discussion",
    "Conclusions",
    "Limitations",
    "Supplementary material",
]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")


# ------------------------------------------------------------------------------- synthetic data


@dataclass
class Dataset:
    """What gets inserted: sources (bot, title, [chunk indexes]) and chunk rows + vectors."""

    headings: list[str]
    texts: list[str]
    token_counts: list[int]
    vectors: np.ndarray
    sources: list[tuple[str, str, list[int]]]  # (bot label "main"/"other", title, chunk indexes)
    bots: dict[int, str] = field(default_factory=dict)  # chunk index -> bot label


def build_dataset(
    corpus: Path, main_chunks: int, other_chunks: int, per_source: int, words: int, seed: int
) -> Dataset:
    rng = random.Random(seed)
    docs = read_corpus(corpus)
    sentences: list[str] = []
    for doc in docs:
        for sentence in _SENTENCE_END.split(doc["text"]):
            if len(sentence.split()) >= 5:
                sentences.append(sentence.strip())
    titles = [d["title"] for d in docs if d["title"]]
    lengths = [len(s.split()) for s in sentences]

    plan: list[tuple[str, int]] = []  # (bot label, chunk count) per source
    for label, total in (("main", main_chunks), ("other", other_chunks)):
        left = total
        while left > 0:
            n = min(left, max(1, int(rng.gauss(per_source, per_source / 4))))
            plan.append((label, n))
            left -= n
    rng.shuffle(plan)  # interleave the two bots' sources (and so their chunk ids)

    headings: list[str] = []
    texts: list[str] = []
    token_counts: list[int] = []
    sources: list[tuple[str, str, list[int]]] = []
    bots: dict[int, str] = {}
    for label, n in plan:
        title = rng.choice(titles)[:400]
        indexes = []
        for _ in range(n):
            target = int(rng.uniform(0.8, 1.2) * words)
            parts: list[str] = []
            count = 0
            while count < target:
                i = rng.randrange(len(sentences))
                parts.append(sentences[i])
                count += lengths[i]
            text = " ".join(parts)
            heading = f"{title} > {rng.choice(SECTIONS)}"
            indexes.append(len(texts))
            bots[len(texts)] = label
            headings.append(heading)
            texts.append(text)
            token_counts.append(int(count * 1.35))
        sources.append((label, title, indexes))
    nprng = np.random.default_rng(seed)
    vectors = nprng.standard_normal((len(texts), DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Dataset(headings, texts, token_counts, vectors, sources, bots)


# ------------------------------------------------------------------------------- loading


async def load(db: Any, index: Any, data: Dataset, batch: int) -> dict[str, Any]:
    """Workspace + two bots through the services, sources and chunks through the ORM and
    ``index.store_vectors`` in write transactions of ``batch`` chunks. Returns ids and timings."""
    from chatwell.domain.bots import BotCreate
    from chatwell.domain.models import SourceStatus, SourceType
    from chatwell.retrieval.index import bump_index_version
    from chatwell.services.bots import create_bot
    from chatwell.services.workspaces import create_workspace
    from chatwell.storage.tables import Chunk, Source, utcnow

    workspace, _ = await create_workspace(db, name="Bench workspace")
    bots = {
        "main": await create_bot(db, workspace_id=workspace.id, data=BotCreate(name="Main bot")),
        "other": await create_bot(db, workspace_id=workspace.id, data=BotCreate(name="Other bot")),
    }
    source_ids: list[uuid.UUID] = []
    async with db.write() as session:
        rows = []
        for label, title, indexes in data.sources:
            rows.append(
                Source(
                    workspace_id=workspace.id,
                    bot_id=bots[label].id,
                    type=SourceType.TEXT,
                    title=title,
                    mime_type="text/plain",
                    status=SourceStatus.READY,
                    chunk_count=len(indexes),
                    progress=1.0,
                    options={},
                    synced_at=utcnow(),
                )
            )
        session.add_all(rows)
        await session.flush()
        source_ids = [s.id for s in rows]

    # Chunks in source order, cut into transactions of ~``batch`` chunks (whole sources).
    chunk_ids = np.zeros(len(data.texts), dtype=np.int64)
    started = time.perf_counter()
    transactions = 0
    pending: list[tuple[int, int]] = []  # (source number, chunk index)

    async def flush(items: list[tuple[int, int]]) -> None:
        nonlocal transactions
        async with db.write() as session:
            chunks = []
            for source_no, i in items:
                label = data.bots[i]
                chunks.append(
                    Chunk(
                        workspace_id=workspace.id,
                        bot_id=bots[label].id,
                        source_id=source_ids[source_no],
                        position=len(chunks),
                        text=data.texts[i],
                        heading=data.headings[i],
                        page=None,
                        token_count=data.token_counts[i],
                        content_hash=hashlib.sha256(data.texts[i].encode()).hexdigest(),
                        embedding_model="all-MiniLM-L6-v2-onnx-int8",
                    )
                )
            session.add_all(chunks)
            await index.store_vectors(session, chunks, data.vectors[[i for _, i in items]])
            for label in {data.bots[i] for _, i in items}:
                await bump_index_version(session, bots[label].id)
        for chunk, (_, i) in zip(chunks, items):
            chunk_ids[i] = chunk.id
        transactions += 1

    last_report = time.perf_counter()
    for source_no, (_, _, indexes) in enumerate(data.sources):
        pending.extend((source_no, i) for i in indexes)
        if len(pending) >= batch:
            await flush(pending)
            pending = []
            if time.perf_counter() - last_report > 30:
                last_report = time.perf_counter()
                done = int((chunk_ids != 0).sum())
                print(f"  ... {done} chunks loaded in {last_report - started:.0f}s", flush=True)
    if pending:
        await flush(pending)
    seconds = time.perf_counter() - started
    return {
        "bots": {k: b.id for k, b in bots.items()},
        "chunk_ids": chunk_ids,
        "load_seconds": seconds,
        "transactions": transactions,
    }


# ------------------------------------------------------------------------------- PostgreSQL


class PgAdmin:
    """A raw asyncpg connection to the bench database (DDL, sizes, notices)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn: Any = None
        self.notices: list[str] = []

    async def __aenter__(self) -> PgAdmin:  # noqa: PYI034
        import asyncpg

        self.conn = await asyncpg.connect(self.dsn, ssl=False)
        self.conn.add_log_listener(lambda _c, msg: self.notices.append(str(msg)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.conn.close()

    async def vector_indexes(self) -> list[tuple[str, str]]:
        rows = await self.conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks'"
            " AND indexdef ILIKE '%USING hnsw%'"
        )
        return [(r["indexname"], r["indexdef"]) for r in rows]

    async def settings(self) -> dict[str, str]:
        names = [
            "maintenance_work_mem",
            "max_parallel_maintenance_workers",
            "shared_buffers",
            "work_mem",
            "server_version",
        ]
        return {n: await self.conn.fetchval(f"SHOW {n}") for n in names}

    async def sizes(self) -> dict[str, str]:
        rows = await self.conn.fetch(
            "SELECT c.relname, pg_size_pretty(pg_relation_size(c.oid)) AS size FROM pg_class c"
            " WHERE c.relname IN ('chunks', 'ix_chunks_search_vector', 'ix_chunks_embedding_384')"
            "   OR c.relname LIKE 'ix_chunks_embedding%'"
        )
        out = {r["relname"]: r["size"] for r in rows}
        out["chunks (total, incl. TOAST and indexes)"] = await self.conn.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size('chunks'))"
        )
        return out


DF_CACHE: dict[str, int] = {}


async def _sqlite_postings(db: Any, bot_id: uuid.UUID | None) -> Any:
    """SQLite: the in-memory keyword index (``retrieval.keyword_index``) of one bot's chunks, or
    of every chunk when ``bot_id`` is None, built from the terms stored with each chunk."""
    from sqlalchemy import select

    from chatwell.retrieval.keyword_index import KeywordIndex
    from chatwell.storage.tables import Chunk

    query = select(Chunk.terms).where(Chunk.terms.is_not(None))
    if bot_id is not None:
        query = query.where(Chunk.bot_id == bot_id)
    async with db.read() as session:
        encoded = list(await session.scalars(query))
    return KeywordIndex.build(encoded)


def _chunks_matching(index: Any, terms: list[str]) -> int:
    """How many chunks of ``index`` hold any of ``terms``."""
    from chatwell.retrieval.keyword_index import term_keys

    wanted = np.asarray(term_keys(terms), dtype=np.uint32)
    slots = np.searchsorted(index.keys, wanted)
    found = [
        int(s) for s, key in zip(slots, wanted) if s < index.keys.size and index.keys[s] == key
    ]
    docs = [index.docs[index.starts[s] : index.starts[s + 1]] for s in found]
    return int(np.unique(np.concatenate(docs)).size) if docs else 0


async def document_frequencies(
    db: Any, backend: str, queries: list[str], cache: dict[str, int]
) -> dict[str, int]:
    """Chunks (all bots) containing each query term, counted by the backend's own index. The
    data is the same on every backend, so counts are shared between them."""
    from sqlalchemy import text

    from chatwell.retrieval.text_search import postgres_tsquery

    terms = sorted({t for q in queries for t in query_terms(q)} - set(cache))
    if backend == "sqlite":
        index = await _sqlite_postings(db, None)
        for term in terms:
            cache[term] = _chunks_matching(index, [term])
        return cache
    async with db.read() as session:
        for term in terms:
            tsq = postgres_tsquery(term, drop_stopwords=False)
            cache[term] = int(
                await session.scalar(
                    text(
                        "SELECT count(*) FROM chunks WHERE search_vector @@ to_tsquery('english', :q)"
                    ),
                    {"q": tsq},
                )
                or 0
            )
    return cache


def prune_query(question: str, dfs: dict[str, int], total: int, max_fraction: float) -> str:
    """EXPERIMENT: the question's terms minus those in more than ``max_fraction`` of the chunks
    (their BM25 IDF is ~0: they cost the most and rank the least); the rarest term survives."""
    terms = query_terms(question)
    kept = [t for t in terms if dfs.get(t, 0) <= max_fraction * total]
    if not kept and terms:
        kept = [min(terms, key=lambda t: dfs.get(t, 0))]
    return " ".join(kept)


async def rows_matched(
    db: Any, backend: str, bot_id: uuid.UUID, queries: list[str]
) -> dict[str, float]:
    """How many of the bot's chunks the OR query matches (all of them get ranked)."""
    from sqlalchemy import text

    from chatwell.retrieval.text_search import postgres_tsquery

    counts = []
    if backend == "sqlite":
        index = await _sqlite_postings(db, bot_id)
        counts = [_chunks_matching(index, query_terms(q)) for q in queries if query_terms(q)]
    else:
        async with db.read() as session:
            for q in queries:
                tsq = postgres_tsquery(q)
                if not tsq:
                    continue
                n = await session.scalar(
                    text(
                        "SELECT count(*) FROM chunks WHERE bot_id = :bot"
                        " AND search_vector @@ to_tsquery('english', :q)"
                    ),
                    {"q": tsq, "bot": bot_id},
                )
                counts.append(int(n or 0))
    return {
        "queries": len(counts),
        "mean_rows": round(float(np.mean(counts)), 1) if counts else 0.0,
        "max_rows": max(counts, default=0),
    }


def explain_uses(plan: str, index_name: str) -> bool:
    return index_name in plan


async def capture_statements(db: Any, coro_factory: Any) -> list[tuple[str, Any]]:
    """The (statement, parameters) the product code sends for one call."""
    from sqlalchemy import event

    captured: list[tuple[str, Any]] = []

    def before(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        captured.append((statement, parameters))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        async with db.read() as session:
            await coro_factory(session)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)
    return captured


async def replay_explain(
    db: Any, statements: list[tuple[str, Any]], prefix: str, extra_set: str | None = None
) -> str:
    """Re-run the captured statements in one transaction, the last one under ``prefix``."""
    async with db.read() as session:
        conn = await session.connection()
        if extra_set:
            await conn.exec_driver_sql(extra_set)
        for statement, params in statements[:-1]:
            await conn.exec_driver_sql(statement, params)
        statement, params = statements[-1]
        result = await conn.exec_driver_sql(f"{prefix} {statement}", params)
        plan = "\n".join(str(r[0]) for r in result.all())
    # The 384-float query literal makes plans unreadable.
    return _LONG_VECTOR.sub("'[...vector...]'", plan)


_LONG_VECTOR = re.compile(r"'\[[-0-9.e,]{200,}\]'")


# ------------------------------------------------------------------------------- measuring


async def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = await fn(*args)
    return time.perf_counter() - start, value


async def measure_backend(
    backend: str,
    args: argparse.Namespace,
    data: Dataset,
    queries: list[str],
    warmups: list[str],
    workdir: Path,
    pg: Any,
) -> dict[str, Any]:
    from chatwell.knowledge import build_embedder, build_knowledge
    from chatwell.retrieval.index.sqlite import SqliteSearchIndex
    from chatwell.settings import Settings

    out: dict[str, Any] = {"backend": backend}
    async with open_database(backend, workdir, pg, name="query") as (db, url):
        settings = Settings(data_dir=workdir / f"data-{backend}", database_url=url)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        knowledge = build_knowledge(db, settings)
        index = knowledge.index
        admin: PgAdmin | None = None
        dropped: list[tuple[str, str]] = []
        if backend == "postgres":
            admin = await PgAdmin(pg.dsn(url.rsplit("/", 1)[1])).__aenter__()
            out["pg_settings"] = await admin.settings()
            if args.pg_index_mode == "rebuild":
                dropped = await admin.vector_indexes()
                for name, _ in dropped:
                    await admin.conn.execute(f'DROP INDEX "{name}"')

        # ---- load
        print(
            f"[{backend}] loading {len(data.texts)} chunks "
            f"({args.chunks} main + {args.other_chunks} other) ...",
            flush=True,
        )
        loaded = await load(db, index, data, args.batch)
        bots = loaded["bots"]
        out["load_seconds"] = round(loaded["load_seconds"], 2)
        out["load_transactions"] = loaded["transactions"]
        out["load_chunks_per_s"] = round(len(data.texts) / loaded["load_seconds"], 1)
        print(
            f"[{backend}] loaded in {loaded['load_seconds']:.1f}s "
            f"({out['load_chunks_per_s']} chunks/s, {loaded['transactions']} transactions)",
            flush=True,
        )

        if admin is not None:
            start = time.perf_counter()
            await admin.conn.execute("VACUUM ANALYZE chunks")
            out["vacuum_analyze_seconds"] = round(time.perf_counter() - start, 2)
            builds = {}
            # Build with the server's maintenance_work_mem (what a migration gets), then, if asked,
            # drop and build again with a larger one; the queries use the last build.
            variants: list[str | None] = [None]
            if args.pg_maintenance_work_mem:
                variants.append(args.pg_maintenance_work_mem)
            for setting in variants:
                if setting is not None:
                    await admin.conn.execute(f"SET maintenance_work_mem = '{setting}'")
                mem = await admin.conn.fetchval("SHOW maintenance_work_mem")
                for name, ddl in dropped:
                    await admin.conn.execute(f'DROP INDEX IF EXISTS "{name}"')
                    admin.notices.clear()
                    start = time.perf_counter()
                    await admin.conn.execute(ddl)
                    key = f"{name} (maintenance_work_mem={mem})"
                    builds[key] = {
                        "seconds": round(time.perf_counter() - start, 2),
                        "ddl": ddl,
                        "notices": list(admin.notices),
                        "loadavg_after": loadavg(),
                    }
                    print(
                        f"[{backend}] built {key} in {builds[key]['seconds']}s "
                        f"{admin.notices or ''}",
                        flush=True,
                    )
            await admin.conn.execute("ANALYZE chunks")
            out["hnsw_build"] = builds
            out["pg_sizes"] = await admin.sizes()

        # ---- warm the model, then the cold first search
        await knowledge.embedder.embed(["warm up the model"])
        model = _find_model(knowledge.embedder)
        if isinstance(index, SqliteSearchIndex):
            # Cold: a fresh index loads the bot's vectors and keyword postings on its first query.
            warm_vector = (await knowledge.embedder.embed([warmups[0]]))[0]
            for label in ("main", "other"):
                async with db.read() as session:
                    seconds, _ = await timed(
                        SqliteSearchIndex(db).candidates,
                        session,
                        bots[label],
                        warmups[0],
                        warm_vector,
                        knowledge.retriever.config.candidates,
                    )
                out[f"index_load_seconds_{label}"] = round(seconds, 3)
            out["matrix_load_experiment"] = await matrix_load_experiment(db, bots["main"])
        seconds, _ = await timed(_search, knowledge.retriever, bots["main"], warmups[0])
        out["first_search_seconds"] = round(seconds, 3)
        for q in warmups[1:]:
            await _search(knowledge.retriever, bots["main"], q)
            await _search(knowledge.retriever, bots["other"], q)

        # ---- (a) full search, with the time of each step inside the same calls
        full = []
        stages = StageTimer()
        stages.install(knowledge.retriever)
        for q in queries:
            stages.start()
            seconds, _ = await timed(_search, knowledge.retriever, bots["main"], q)
            stages.stop(seconds)
            full.append(seconds)
        stages.uninstall(knowledge.retriever)
        out["search"] = latency_summary(full)
        out["search_breakdown"] = stages.summary()
        out["loadavg_search"] = loadavg()

        # ---- (b) embedding only, paired per query (same moment, same load): the bare model and
        # the production chain (build_embedder, fresh cache, same model instance; its
        # BatchingEmbedder does continuous batching)
        chain = build_embedder(Settings(data_dir=workdir / f"chain-{backend}", database_url=url))
        _share_model(chain, model)
        await chain.embed(["warm up the chain"])
        bare, chained = [], []
        for q in queries:
            bare.append((await timed(model.embed, [q]))[0])
            chained.append((await timed(chain.embed, [q]))[0])
        out["embed_bare"] = latency_summary(bare)
        out["embed_chain"] = latency_summary(chained)
        out["embedder_chain"] = _chain_names(chain)
        if hasattr(chain, "close"):
            chain.close()

        # ---- (c) the index methods directly
        vectors = await model.embed(queries)
        depth = knowledge.retriever.config.candidates
        full_lexical: dict[str, list[dict[int, float]]] = {"main": [], "other": []}
        for label in ("main", "other"):
            kw, vec, scores, matched = [], [], [], []
            for q, v in zip(queries, vectors):
                async with db.read() as session:
                    s1, lexical = await timed(index.keyword_search, session, bots[label], q, depth)
                full_lexical[label].append(lexical)
                async with db.read() as session:
                    s2, dense = await timed(index.vector_search, session, bots[label], v, depth)
                missing = [cid for cid in lexical if cid not in dense]
                async with db.read() as session:
                    s3, _ = await timed(index.vector_scores, session, bots[label], v, missing)
                kw.append(s1)
                vec.append(s2)
                scores.append(s3)
                matched.append(len(lexical))
            out[f"keyword_{label}"] = latency_summary(kw)
            out[f"vector_{label}"] = latency_summary(vec)
            out[f"vector_scores_{label}"] = latency_summary(scores)
            out[f"keyword_hits_mean_{label}"] = round(float(np.mean(matched)), 1)

        # ---- why keyword search is slow: rows the OR query matches; and the term-pruning experiment
        out["keyword_rows_matched"] = await rows_matched(db, backend, bots["main"], queries[:20])
        if args.prune_df:
            dfs = await document_frequencies(db, backend, queries, DF_CACHE)
            total_rows = len(data.texts)
            pruned_queries = [prune_query(q, dfs, total_rows, args.prune_df) for q in queries]
            out["prune_experiment"] = {
                "max_df_fraction": args.prune_df,
                "terms_before_mean": round(
                    float(np.mean([len(query_terms(q)) for q in queries])), 2
                ),
                "terms_after_mean": round(
                    float(np.mean([len(query_terms(q)) for q in pruned_queries])), 2
                ),
            }
            out["keyword_rows_matched_pruned"] = await rows_matched(
                db, backend, bots["main"], pruned_queries[:20]
            )
            for label in ("main", "other"):
                lat, overlap = [], []
                for q, full_result in zip(pruned_queries, full_lexical[label]):
                    async with db.read() as session:
                        seconds, lexical = await timed(
                            index.keyword_search, session, bots[label], q, depth
                        )
                    lat.append(seconds)
                    if full_result:
                        overlap.append(len(set(lexical) & set(full_result)) / len(full_result))
                    top = [c for c, _ in sorted(full_result.items(), key=lambda kv: -kv[1])[:8]]
                    if top:
                        overlap8 = len(set(top) & set(lexical)) / len(top)
                        out.setdefault(f"_o8_{label}", []).append(overlap8)
                out[f"keyword_pruned_{label}"] = latency_summary(lat)
                out["prune_experiment"][f"overlap_at_{depth}_{label}"] = round(
                    float(np.mean(overlap)), 4
                )
                out["prune_experiment"][f"full_top8_kept_{label}"] = round(
                    float(np.mean(out.pop(f"_o8_{label}", [0.0]))), 4
                )

        # ---- recall of the vector index against the exact top-k (SQLite: of the int8 pre-scan on 20k+ chunks)
        out["vector_recall"] = await vector_recall(
            db, index, bots, loaded["chunk_ids"], data, vectors[: args.recall_queries], depth
        )

        # ---- PostgreSQL plans
        if admin is not None:
            out["explain"] = await pg_plans(db, index, bots, vectors[0], depth, queries[0])
            async with db.read() as session:
                rows = (await session.execute(_pg_prepared_sql())).all()
            out["pg_prepared_statements_one_connection"] = [
                {"statement": r[0][:120], "generic_plans": r[1], "custom_plans": r[2]} for r in rows
            ]
            await admin.__aexit__()
    return out


async def matrix_load_experiment(db: Any, bot_id: uuid.UUID) -> dict[str, float]:
    """EXPERIMENT (SQLite): the vector rows ``SqliteSearchIndex`` loads, read through the raw
    aiosqlite cursor (no SQLAlchemy row processing), and the ids-only scan an incremental
    refresh (fetch only rows not in the cached matrix) would start with."""
    sql = "SELECT id, embedding FROM chunks WHERE bot_id = ? AND embedding_dim = ? ORDER BY id"
    out: dict[str, float] = {}
    async with db.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        start = time.perf_counter()
        async with driver.execute(sql, (bot_id.hex, DIM)) as cursor:
            rows = await cursor.fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(
            len(rows), DIM
        )
        out["raw_cursor_seconds"] = round(time.perf_counter() - start, 3)
        out["rows"] = int(matrix.shape[0]) if ids.size else 0
        start = time.perf_counter()
        async with driver.execute(
            "SELECT id FROM chunks WHERE bot_id = ? AND embedding_dim = ?", (bot_id.hex, DIM)
        ) as cursor:
            await cursor.fetchall()
        out["ids_only_seconds"] = round(time.perf_counter() - start, 3)
    return out


class StageTimer:
    """Times the steps of ``Retriever.search`` by wrapping its embedder and index methods
    (instance attributes, removed afterwards); "candidates" = the keyword and vector queries (run
    together: in parallel on SQLite), "rest" = session, hydration query, fusion. The halves on
    their own are timed by (c)."""

    STAGES = ("embed", "candidates")

    def __init__(self) -> None:
        self.per_query: list[dict[str, float]] = []
        self._current: dict[str, float] = {}

    def _wrap(self, name: str, fn: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._current[name] = self._current.get(name, 0.0) + time.perf_counter() - start

        return wrapper

    def install(self, retriever: Any) -> None:
        self._saved = (retriever.embedder, retriever.index)
        embedder, index = retriever.embedder, retriever.index
        timer = self

        class _Embedder:
            model_id = embedder.model_id
            dimension = embedder.dimension
            embed = staticmethod(timer._wrap("embed", embedder.embed))

        class _Index:
            candidates = staticmethod(timer._wrap("candidates", index.candidates))

        retriever.embedder = _Embedder()
        retriever.index = _Index()

    def uninstall(self, retriever: Any) -> None:
        retriever.embedder, retriever.index = self._saved

    def start(self) -> None:
        self._current = {}

    def stop(self, total: float) -> None:
        row = {name: self._current.get(name, 0.0) for name in self.STAGES}
        row["rest"] = max(0.0, total - sum(row.values()))
        row["search without embed"] = (
            total - row["embed"]
        )  # the index's part, the question's vector given
        self.per_query.append(row)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: latency_summary([r[name] for r in self.per_query])
            for name in (*self.STAGES, "rest", "search without embed")
        }


async def _search(retriever: Any, bot_id: uuid.UUID, query: str) -> Any:
    return await retriever.search(bot_id=bot_id, query=query, k=8)


def _pg_prepared_sql() -> Any:
    from sqlalchemy import text

    return text(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
        " WHERE statement LIKE '%<=>%' OR statement LIKE '%ts_rank_cd%' ORDER BY statement"
    )


def _share_model(embedder: Any, model: Any) -> None:
    """Make the chain's innermost model ``model`` (one ONNX session for every measurement)."""
    node = embedder
    while (
        getattr(node, "inner", None) is not None and getattr(node.inner, "inner", None) is not None
    ):
        node = node.inner
    node.inner = model


def _chain_names(embedder: Any) -> str:
    names = []
    node = embedder
    while node is not None:
        names.append(type(node).__name__)
        node = getattr(node, "inner", None)
    return " > ".join(names)


def _find_model(embedder: Any) -> Any:
    from chatwell.embedders.minilm import MiniLMOnnxEmbedder

    node = embedder
    while node is not None and not isinstance(node, MiniLMOnnxEmbedder):
        node = getattr(node, "inner", None)
    if node is None:
        raise SystemExit("this benchmark needs the offline MiniLM embedder")
    return node


async def vector_recall(
    db: Any,
    index: Any,
    bots: dict[str, uuid.UUID],
    chunk_ids: np.ndarray,
    data: Dataset,
    vectors: np.ndarray,
    depth: int,
) -> dict[str, float]:
    out = {}
    for label in ("main", "other"):
        mask = np.array([data.bots[i] == label for i in range(len(data.texts))])
        ids = chunk_ids[mask]
        matrix = data.vectors[mask]
        recalls = []
        for v in vectors:
            exact = set(ids[np.argsort(-(matrix @ v))[:depth]].tolist())
            async with db.read() as session:
                got = set((await index.vector_search(session, bots[label], v, depth)).keys())
            recalls.append(len(exact & got) / len(exact))
        if recalls:
            out[label] = round(float(np.mean(recalls)), 4)
            out[f"{label}_min"] = round(float(np.min(recalls)), 4)
    return out


async def pg_plans(
    db: Any, index: Any, bots: dict[str, uuid.UUID], vector: np.ndarray, depth: int, query: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in ("main", "other"):
        statements = await capture_statements(
            db, lambda s, b=bots[label]: index.vector_search(s, b, vector, depth)
        )
        plan = await replay_explain(db, statements, "EXPLAIN (ANALYZE, BUFFERS)")
        generic = await replay_explain(
            db, statements, "EXPLAIN", extra_set="SET LOCAL plan_cache_mode = force_generic_plan"
        )
        out[f"vector_{label}"] = {
            "statement": statements[-1][0],
            "uses_hnsw": "ix_chunks_embedding" in plan,
            "plan": plan,
            "generic_plan_uses_hnsw": "ix_chunks_embedding" in generic,
            "generic_plan": generic,
        }
    statements = await capture_statements(
        db, lambda s: index.keyword_search(s, bots["main"], query, depth)
    )
    plan = await replay_explain(db, statements, "EXPLAIN (ANALYZE, BUFFERS)")
    out["keyword_main"] = {
        "statement": statements[-1][0],
        "plan": plan,
        "uses_gin": "ix_chunks_search_vector" in plan,
    }
    return out


# ------------------------------------------------------------------------------- report


def print_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    for r in results:
        b = r["backend"]
        print(
            f"\n== query latency, backend={b}: main bot {args.chunks} chunks, other bot "
            f"{args.other_chunks} chunks, {r['search']['n']} queries, k=8, candidates per index "
            f"{args.candidates_note}"
        )
        print(
            f"load: {r['load_seconds']}s ({r['load_chunks_per_s']} chunks/s, "
            f"{r['load_transactions']} write transactions through store_vectors)"
        )
        if b == "postgres":
            for name, build in r.get("hnsw_build", {}).items():
                print(
                    f"HNSW build {name}: {build['seconds']}s; notices: {build['notices'] or 'none'}"
                )
            print(
                f"VACUUM ANALYZE: {r.get('vacuum_analyze_seconds')}s; settings: {r.get('pg_settings')}"
            )
            print(f"sizes: {r.get('pg_sizes')}")
        else:
            print(
                f"cold load (fresh index, vectors + keyword postings, first query): main "
                f"{r['index_load_seconds_main']}s, other {r['index_load_seconds_other']}s"
            )
        if "matrix_load_experiment" in r:
            print(f"(e) EXPERIMENT matrix load: {r['matrix_load_experiment']}")
        print(f"first search on a fresh runtime (cold): {r['first_search_seconds'] * 1000:.1f} ms")
        rows = []
        for key, name in [
            ("search", "(a) Retriever.search, main bot"),
            ("embed_bare", "(b) embed query: bare MiniLM"),
            ("embed_chain", "(b) embed query: production chain"),
            ("keyword_main", "(c) keyword_search, main bot"),
            ("vector_main", "(c) vector_search, main bot"),
            ("vector_scores_main", "(c) vector_scores, main bot"),
            ("keyword_other", "(c) keyword_search, small bot"),
            ("vector_other", "(c) vector_search, small bot"),
            ("vector_scores_other", "(c) vector_scores, small bot"),
        ]:
            s = r[key]
            rows.append([name, s["n"], s["p50_ms"], s["p95_ms"], s["mean_ms"], s["max_ms"]])
        if "keyword_pruned_main" in r:
            for key, name in [
                ("keyword_pruned_main", "(d) EXPERIMENT keyword, pruned terms, main"),
                ("keyword_pruned_other", "(d) EXPERIMENT keyword, pruned terms, small"),
            ]:
                s = r[key]
                rows.append([name, s["n"], s["p50_ms"], s["p95_ms"], s["mean_ms"], s["max_ms"]])
        print(table(["operation", "n", "p50 ms", "p95 ms", "mean ms", "max ms"], rows))
        print(f"\nwhere (a) goes, measured inside the same {r['search']['n']} searches:")
        print(
            table(
                ["step", "p50 ms", "p95 ms", "mean ms"],
                [
                    [k, v["p50_ms"], v["p95_ms"], v["mean_ms"]]
                    for k, v in r["search_breakdown"].items()
                ],
            )
        )
        print(
            f"rows the OR keyword query matches in the main bot (first 20 queries): "
            f"{r['keyword_rows_matched']}"
        )
        if "prune_experiment" in r:
            print(
                f"(d) pruning experiment: {r['prune_experiment']}; rows matched after pruning: "
                f"{r['keyword_rows_matched_pruned']}"
            )
        print(
            f"keyword hits per query (capped at candidates): main {r['keyword_hits_mean_main']}, "
            f"small {r['keyword_hits_mean_other']}; vector recall@candidates vs exact: "
            f"{r['vector_recall']}; loadavg during search: {r['loadavg_search']}"
        )
        if b == "postgres":
            for label in ("main", "other"):
                e = r["explain"][f"vector_{label}"]
                print(
                    f"\nEXPLAIN ANALYZE vector query ({label} bot): HNSW used = {e['uses_hnsw']}; "
                    f"generic plan uses HNSW = {e['generic_plan_uses_hnsw']}"
                )
                print(e["plan"])
                if not e["generic_plan_uses_hnsw"]:
                    print("generic plan:\n" + e["generic_plan"])
            k = r["explain"]["keyword_main"]
            print(f"\nEXPLAIN ANALYZE keyword query (main bot): GIN used = {k['uses_gin']}")
            print(k["plan"])
            print(
                f"\nplan cache on one pooled connection: {r['pg_prepared_statements_one_connection']}"
            )


async def main_async(args: argparse.Namespace) -> None:
    scifact = Path(args.scifact)
    corpus = Path(args.corpus) if args.corpus else scifact / "corpus.jsonl"
    all_queries = read_queries(scifact, "test")
    if len(all_queries) < args.queries + args.warmup:
        all_queries += [q for q in read_queries(scifact, "train") if q not in all_queries]
    warmups = all_queries[: args.warmup]
    queries = all_queries[args.warmup : args.warmup + args.queries]
    start = time.perf_counter()
    data = build_dataset(
        corpus, args.chunks, args.other_chunks, args.per_source, args.words, args.seed
    )
    print(
        f"generated {len(data.texts)} chunks in {len(data.sources)} sources "
        f"(mean {np.mean([len(t.split()) for t in data.texts[:2000]]):.0f} words) in "
        f"{time.perf_counter() - start:.1f}s",
        flush=True,
    )
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        with contextlib.ExitStack() as stack:
            workdir = stack.enter_context(temp_dir(f"chatwell-bench-query-{backend}-"))
            pg = stack.enter_context(postgres_server()) if backend == "postgres" else None
            results.append(
                await measure_backend(backend, args, data, queries, warmups, workdir, pg)
            )
    print_report(results, args)
    print(
        json_line(
            {
                "benchmark": "query_latency",
                "chunks": args.chunks,
                "other_chunks": args.other_chunks,
                "queries": len(queries),
                "results": [_slim(r) for r in results],
                "machine": machine_info(),
            }
        )
    )


def _slim(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON line without the long plan texts (the tables above print them)."""
    out = dict(result)
    if "explain" in out:
        out["explain"] = {
            k: {kk: vv for kk, vv in v.items() if "plan" not in kk or "uses" in kk}
            for k, v in out["explain"].items()
        }
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="chunks of the measured bot")
    parser.add_argument("--other-chunks", type=int, default=20_000, help="chunks of the second bot")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--scifact", default=str(DEFAULT_SCIFACT), help="SciFact dir (queries, qrels)"
    )
    parser.add_argument("--corpus", default=None, help="corpus.jsonl for the chunk sentences")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--recall-queries", type=int, default=50)
    parser.add_argument("--batch", type=int, default=2000, help="chunks per write transaction")
    parser.add_argument("--per-source", type=int, default=50, help="mean chunks per source")
    parser.add_argument("--words", type=int, default=200, help="mean words per chunk")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--pg-index-mode",
        choices=["rebuild", "incremental"],
        default="rebuild",
        help="PostgreSQL: drop the HNSW index for the load and rebuild it (timed), "
        "or keep it during the load",
    )
    parser.add_argument(
        "--pg-maintenance-work-mem",
        default=None,
        help="PostgreSQL: after the build with the server's maintenance_work_mem "
        "(64MB on the embedded test server), drop the HNSW index and build it "
        "again with this one, e.g. 1GB; both times are reported",
    )
    parser.add_argument(
        "--prune-df",
        type=float,
        default=0.1,
        help="EXPERIMENT: also time keyword search with query terms that occur in "
        "more than this fraction of chunks dropped (0 to skip)",
    )
    args = parser.parse_args(argv)
    args.candidates_note = "100 (RetrievalConfig default)"
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
