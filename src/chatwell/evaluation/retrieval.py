"""``chatwell eval retrieval``: index a BEIR-layout dataset with the server's ingestion code and
score its queries with the server's retrieval code, hybrid and each side alone.

A corpus document becomes a text source (title + text) of one bot in a throwaway SQLite data
dir (or the given database); ingestion runs through the same worker the server runs; a query's
document ranking is its chunks' ranking, each document scored by its best chunk.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from chatwell.domain.bots import BotCreate
from chatwell.domain.sources import TextSourceIn
from chatwell.evaluation.metrics import ndcg_at_k, percentile, recall_at_k
from chatwell.ingestion.worker import ingest_pending
from chatwell.knowledge import build_embedder, build_knowledge
from chatwell.retrieval.fusion import max_per_group, ranked
from chatwell.retrieval.service import RetrievalConfig
from chatwell.services import bots, sources, workspaces
from chatwell.services.principals import owner_principal
from chatwell.settings import Settings
from chatwell.storage import migrate
from chatwell.storage.database import Database
from chatwell.storage.tables import Chunk

EVAL_DEPTH = 300  # chunk candidates per index, enough for recall@100 at document level


@dataclass(slots=True)
class Dataset:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)


def load_beir(folder: Path, split: str) -> Dataset:
    corpus: dict[str, tuple[str, str]] = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                doc = json.loads(line)
                corpus[str(doc["_id"])] = (doc.get("title") or "", doc.get("text") or "")
    queries: dict[str, str] = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (n == 0 and not parts[2].strip().lstrip("-").isdigit()):
                continue  # header
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return Dataset(corpus, {qid: queries[qid] for qid in qrels if qid in queries}, qrels)


async def evaluate(
    dataset: Dataset,
    *,
    settings: Settings | None = None,
    cache_dir: Path | None = None,
    alpha: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Index ``dataset`` and score its queries; returns the metrics (hybrid, bm25, dense)."""
    say = progress or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="chatwell-eval-") as tmp:
        settings = settings or Settings(data_dir=Path(tmp))
        db = Database(settings.resolved_database_url)
        try:
            await migrate.upgrade(db)
            embedder = (
                build_embedder(settings.model_copy(update={"data_dir": cache_dir}))
                if cache_dir
                else None
            )
            retrieval = (
                RetrievalConfig() if alpha is None else replace(RetrievalConfig(), alpha=alpha)
            )
            knowledge = build_knowledge(db, settings, embedder=embedder, retrieval=retrieval)
            workspace, _ = await workspaces.create_workspace(db, name="eval")
            bot = await bots.create_bot(
                db,
                workspace_id=workspace.id,
                data=BotCreate(name="eval", slug=f"eval-{uuid.uuid4().hex[:8]}"),
            )
            principal = owner_principal(workspace.id)
            started = time.perf_counter()
            source_doc: dict[uuid.UUID, str] = {}
            for doc_id, (title, text) in dataset.corpus.items():
                body = text if text.strip() else title
                if not body.strip():
                    continue
                source = await sources.add_text_source(
                    db,
                    principal=principal,
                    bot_ref=str(bot.id),
                    data=TextSourceIn(type="text", title=title or doc_id, text=body),
                )
                source_doc[source.id] = doc_id
            say(f"added {len(source_doc)} documents; ingesting")
            await ingest_pending(knowledge.ingestor, concurrency=settings.ingestion_concurrency)
            index_seconds = time.perf_counter() - started
            async with db.read() as session:
                chunk_doc = {
                    cid: source_doc[sid]
                    for cid, sid in (
                        await session.execute(
                            select(Chunk.id, Chunk.source_id).where(Chunk.bot_id == bot.id)
                        )
                    ).all()
                }
            say(
                f"indexed {len(chunk_doc)} chunks in {index_seconds:.1f}s; running {len(dataset.queries)} queries"
            )
            runs: dict[str, list[tuple[str, list[str]]]] = {"hybrid": [], "bm25": [], "dense": []}
            latencies: list[float] = []
            for qid, text in dataset.queries.items():
                t0 = time.perf_counter()
                ranking = await knowledge.retriever.rank(
                    bot_id=bot.id, query=text, depth=EVAL_DEPTH
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                for name, scores in (
                    ("hybrid", ranking.fused),
                    ("bm25", ranking.lexical),
                    ("dense", ranking.dense),
                ):
                    docs = max_per_group(scores, chunk_doc.__getitem__)
                    runs[name].append((qid, [doc for doc, _ in ranked(docs)[:100]]))
        finally:
            await db.dispose()

    def score(run: list[tuple[str, list[str]]]) -> dict[str, float]:
        return {
            "ndcg@10": round(
                statistics.fmean(ndcg_at_k(r, dataset.qrels[q], 10) for q, r in run), 4
            ),
            "recall@5": round(
                statistics.fmean(recall_at_k(r, dataset.qrels[q], 5) for q, r in run), 4
            ),
            "recall@10": round(
                statistics.fmean(recall_at_k(r, dataset.qrels[q], 10) for q, r in run), 4
            ),
            "recall@100": round(
                statistics.fmean(recall_at_k(r, dataset.qrels[q], 100) for q, r in run), 4
            ),
        }

    result: dict[str, Any] = score(runs["hybrid"]) if runs["hybrid"] else {}
    result |= {
        "queries": len(runs["hybrid"]),
        "docs": len(source_doc),
        "chunks": len(chunk_doc),
        "index_seconds": round(index_seconds, 2),
        "query_p50_ms": round(percentile(latencies, 50), 2),
        "query_p95_ms": round(percentile(latencies, 95), 2),
        "alpha": knowledge.retriever.config.alpha,
        "baselines": {name: score(runs[name]) for name in ("bm25", "dense") if runs[name]},
    }
    return result
