"""Retrieval on the support-bot samples: recall@5 of the gold article for WixQA and TechQA.

Each sample's gold articles (the union of every question's contexts) form the corpus; each
answerable question is a query judged by its own gold article. Indexing and ranking go through
``chatwell.evaluation.retrieval.evaluate``, the code ``chatwell eval retrieval`` runs.

    .venv/bin/python bench/eval_support.py [--data ../shared/eval] [--cache-dir ~/.cache/chatwell]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from chatwell.evaluation.retrieval import Dataset, evaluate


def wixqa(path: Path) -> Dataset:
    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for n, line in enumerate(path.read_text().splitlines()):
        row = json.loads(line)
        for ctx in row["contexts"]:
            corpus[ctx["id"]] = (ctx.get("title") or "", ctx["text"])
        qid = str(row.get("id") or n)
        queries[qid] = row["question"]
        qrels[qid] = {aid: 1 for aid in row["article_ids"]}
    return Dataset(corpus, queries, qrels)


def techqa(path: Path) -> Dataset:
    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for ctx in row["contexts"]:
            text = ctx["text"]
            title = ""
            if text.startswith("Title:"):
                title = text.split("\n", 1)[0].removeprefix("Title:").strip()
            corpus[ctx["filename"]] = (title, text)
        if row.get("is_impossible"):
            continue  # no gold article to find
        queries[row["id"]] = row["question"]
        qrels[row["id"]] = {ctx["filename"]: 1 for ctx in row["contexts"]}
    return Dataset(corpus, queries, qrels)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval"
    )
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "chatwell")
    args = parser.parse_args()
    results = {}
    for name, loader, file in (
        ("wixqa", wixqa, "wixqa/wixqa_public_rag_sample.jsonl"),
        ("techqa", techqa, "techqa/techqa_rag_eval_sample.jsonl"),
    ):
        dataset = loader(args.data / file)
        report = await evaluate(dataset, cache_dir=args.cache_dir)
        results[name] = report
        print(
            f"{name:7s} docs={report['docs']:4d} queries={report['queries']:4d} "
            f"recall@5={report['recall@5']:.4f} ndcg@10={report['ndcg@10']:.4f} "
            f"| bm25 recall@5={report['baselines']['bm25']['recall@5']:.4f} "
            f"| dense recall@5={report['baselines']['dense']['recall@5']:.4f} "
            f"| index {report['index_seconds']}s, query p50 {report['query_p50_ms']} ms"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
