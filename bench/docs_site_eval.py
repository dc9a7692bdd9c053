"""A documentation site as a support bot's knowledge: the Valgrind manual (40 HTML pages, Debian
package ``valgrind``, DocBook output with Prev/Up/Next navigation on every page) and 55 questions a
user would ask, each with the pages that answer it and the key term (an option, a command, a
tool's name) the answer must contain (``bench/data/valgrind_questions.jsonl``); with ``--follow-ups``,
42 two-turn exchanges whose second question leans on the first (``valgrind_followups.jsonl``),
asked as a conversation (the earlier turn is the history), or ``--without-history`` alone.

Every page is uploaded as an HTML file and every question asked through the chat engine, by
``chatwell eval answers`` on a documentation-site folder (``pages/`` + ``questions.jsonl``); it
prints recall@5 of a gold page among the citations and the key-term rate, among the rest.

    apt-get install -y valgrind
    .venv/bin/python bench/docs_site_eval.py [--manual /usr/share/doc/valgrind/html] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from chatwell.evaluation.answers import evaluate_answers
from chatwell.evaluation.datasets import load_answer_sets

QUESTIONS = Path(__file__).resolve().parent / "data" / "valgrind_questions.jsonl"
# 42 two-turn exchanges: an earlier question, then a follow-up that leans on it.
FOLLOW_UPS = Path(__file__).resolve().parent / "data" / "valgrind_followups.jsonl"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manual", type=Path, default=Path("/usr/share/doc/valgrind/html"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "chatwell")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--details", type=Path, default=None, help="one JSON line per question here"
    )
    parser.add_argument("--follow-ups", action="store_true", help="ask the follow-up set instead")
    parser.add_argument(
        "--without-history",
        action="store_true",
        help="ask follow-ups without their earlier turn (what ignoring the conversation gives)",
    )
    args = parser.parse_args()
    if not (args.manual / "index.html").is_file():
        raise SystemExit(f"{args.manual} has no index.html: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="chatwell-docs-site-") as tmp:
        folder = Path(tmp) / "valgrind"
        shutil.copytree(
            args.manual, folder / "pages", ignore=shutil.ignore_patterns("images", "*.css")
        )
        rows = [
            json.loads(line)
            for line in (FOLLOW_UPS if args.follow_ups else QUESTIONS).read_text().splitlines()
        ]
        if args.without_history:
            rows = [{k: v for k, v in row.items() if k != "history"} for row in rows]
        (folder / "questions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        records: list[dict] = []
        result = await evaluate_answers(
            load_answer_sets(folder),
            cache_dir=args.cache_dir,
            limit=args.limit,
            details=records.append,
            progress=print,
        )
    if args.details:
        args.details.write_text("".join(json.dumps(r) + "\n" for r in records))
    print(
        f"gold page in top-5 citations {result['recall@5']}, retrieved top 5 {result['retrieval_recall@5']}, "
        f"answer has the key term {result['key_term_rate']}, answered {1 - result['false_abstention_rate']:.3f}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
