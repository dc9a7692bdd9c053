"""What the answer-quality steps add to a chat turn, p50/p95, question embedding excluded.

The steps act on the question and the k=6 retrieved passages, never on the whole index, so a
bot's size does not change them; passages here are six chunks of ~200 words from SciFact:

* the retrieval query: is the question a follow-up (``chat.service.retrieval_query``);
* the verdict on a model's stream: is the answer NOT_IN_SOURCES (``chat.service._Verdict``),
  over a 400-character answer in 4-character deltas;
* the offline answerer's sentence-level judgement (``OfflineAnswerer.judge``) with the sentences'
  vectors already embedded (their embedding is the answerer's old cost, unchanged).

    .venv/bin/python bench/answer_steps.py [--scifact ../shared/eval/scifact] [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import numpy as np

from chatwell.chat.service import _Verdict, retrieval_query
from chatwell.domain.events import HistoryTurn
from chatwell.llm.base import Grounding
from chatwell.llm.extractive import OfflineAnswerer


class Precomputed:
    """Vectors of texts seen before (what the embedding cache returns after the first time)."""

    model_id = "precomputed"
    dimensions = 384

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(7)

    async def embed(self, texts: list[str]) -> np.ndarray:
        for text in texts:
            if text not in self.vectors:
                v = self.rng.standard_normal(384).astype(np.float32)
                self.vectors[text] = v / np.linalg.norm(v)
        return np.stack([self.vectors[t] for t in texts])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, default=Path("/work/shared/eval/scifact"))
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    docs = [
        json.loads(line)
        for _, line in zip(range(args.runs * 6 + 6), open(args.scifact / "corpus.jsonl"))
    ]
    queries = [
        json.loads(line)["text"]
        for _, line in zip(range(args.runs), open(args.scifact / "queries.jsonl"))
    ]
    answerer = OfflineAnswerer(Precomputed())
    history = [
        HistoryTurn("user", "What causes the disease?"),
        HistoryTurn("assistant", "A virus [1]."),
    ]
    timings: dict[str, list[float]] = {"retrieval_query": [], "verdict": [], "judgement": []}
    answer = "The treatment reduced mortality in adults with severe disease [1]. " * 6
    for n, question in enumerate(queries):
        grounding = [
            Grounding(
                i + 1,
                d["title"],
                " ".join(d["text"].split()[:200]),
                heading=d["title"],
                score=1.0 - 0.05 * i,
                similarity=0.6,
            )
            for i, d in enumerate(docs[n * 6 : n * 6 + 6])
        ]
        await answerer.judge(question, grounding)  # embed once: the cache's second time
        t0 = time.perf_counter()
        retrieval_query(question, history)
        retrieval_query("and in children?", history)
        t1 = time.perf_counter()
        verdict = _Verdict()
        for i in range(0, len(answer), 4):
            verdict.feed(answer[i : i + 4])
        verdict.abstained()
        t2 = time.perf_counter()
        await answerer.judge(question, grounding)
        t3 = time.perf_counter()
        timings["retrieval_query"].append((t1 - t0) * 1000)
        timings["verdict"].append((t2 - t1) * 1000)
        timings["judgement"].append((t3 - t2) * 1000)
    for name, values in timings.items():
        print(f"{name:16s} p50 {statistics.median(values):.3f} ms  p95 {pct(values, 0.95):.3f} ms")
    total = [sum(v) for v in zip(*timings.values())]
    print(f"{'all steps':16s} p50 {statistics.median(total):.3f} ms  p95 {pct(total, 0.95):.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
