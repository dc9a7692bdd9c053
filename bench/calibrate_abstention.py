"""Calibrate the offline answerer's bar on TechQA: choose it on the calibration split, report on the rest.

Reads the per-question records of one ``chatwell eval answers ../shared/eval/techqa --details FILE``
run (split ``all``): each holds the offline judgement's support and the documents it would quote,
whatever the bar, so every bar can be scored without asking again. The calibration split is every
third question (``--split calibration``), the report split the others. For each strictness it
prints the bar that reaches the target abstention on calibration questions with the fewest false
abstentions, and what that bar gives on the report questions.

    .venv/bin/chatwell eval answers ../shared/eval/techqa --json --details techqa.jsonl
    .venv/bin/python bench/calibrate_abstention.py techqa.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def score(records: list[dict], bar: float) -> dict[str, float]:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    grounded = sum(
        r["support"] >= bar and bool(set(r["gold"]) & set(r["quoted"] or [])) for r in answerable
    )
    abstained = sum(r["support"] < bar for r in unanswerable)
    false = sum(r["support"] < bar for r in answerable)
    g = grounded / max(1, len(answerable))
    a = abstained / max(1, len(unanswerable))
    return {
        "bar": bar,
        "grounded_answer_rate": round(g, 4),
        "abstention_rate": round(a, 4),
        "answer_score": round((g + a) / 2, 4),
        "false_abstention_rate": round(false / max(1, len(answerable)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("details", type=Path)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.details.read_text().splitlines() if line.strip()]
    calibration = [r for n, r in enumerate(records) if n % 3 == 0]
    report = [r for n, r in enumerate(records) if n % 3 != 0]
    bars = [round(b * 0.005, 3) for b in range(0, 201)]
    print(f"{len(calibration)} calibration questions, {len(report)} report questions")
    best = max(bars, key=lambda b: (score(calibration, b)["answer_score"], -b))
    print(
        "best mean of grounded and abstention on calibration:",
        score(calibration, best),
        "-> report:",
        score(report, best),
    )
    for name, target in (("lenient", 0.25), ("balanced", 0.5), ("strict", 0.75)):
        reaching = [b for b in bars if score(calibration, b)["abstention_rate"] >= target]
        bar = min(reaching) if reaching else bars[-1]
        print(
            f"{name:8s} (abstain on >= {target:.0%} of calibration's unanswerable): bar {bar}",
            "calibration",
            score(calibration, bar),
            "report",
            score(report, bar),
        )


if __name__ == "__main__":
    main()
