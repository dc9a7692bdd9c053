"""``chatwell eval retrieval``: metrics are right, and a small BEIR dataset is scored end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatwell.cli import app
from chatwell.evaluation.metrics import ndcg_at_k, percentile, recall_at_k

DOCS = {
    "d1": ("Solar panels", "Photovoltaic cells convert sunlight into electricity for homes."),
    "d2": ("Bread baking", "Sourdough bread rises thanks to wild yeast and lactic acid bacteria."),
    "d3": ("Volcanoes", "Magma erupts through the crust and cools into basalt rock."),
    "d4": ("Honey bees", "Bees pollinate flowers and produce honey in their hives."),
    "d5": ("Chess", "The queen is the most powerful piece on the chessboard."),
}
QUERIES = {
    "q1": "how do solar cells make electricity",
    "q2": "what makes sourdough rise",
    "q3": "which insects make honey",
    "q9": "unjudged query",
}
QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d4", 2)]


def test_ndcg_and_recall_match_hand_computed_values() -> None:
    judged = {"a": 2, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], judged) == pytest.approx(1.0)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["b", "a"], judged) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["x", "y"], judged) == 0.0
    assert recall_at_k(["a", "x"], judged, 10) == 0.5
    assert recall_at_k(["x"] * 10 + ["a"], judged, 10) == 0.0
    assert percentile([5, 1, 3, 2, 4], 50) == 3


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in DOCS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": q}) + "\n" for i, q in QUERIES.items())
    )
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    return folder


def test_eval_command_prints_the_contract_fields(beir_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "retrieval",
            str(beir_dir),
            "--split",
            "test",
            "--json",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    for field in (
        "ndcg@10",
        "recall@10",
        "recall@100",
        "queries",
        "docs",
        "index_seconds",
        "query_p50_ms",
    ):
        assert field in report
    assert report["queries"] == 3 and report["docs"] == 5
    # Each query has one clearly matching document: every run must put it first.
    assert report["ndcg@10"] == pytest.approx(1.0)
    assert set(report["baselines"]) == {"bm25", "dense"}
    assert report["baselines"]["dense"]["recall@10"] == 1.0


def test_eval_command_refuses_a_folder_without_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "retrieval", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "corpus.jsonl" in result.output


TECHNOTES = {
    "swg1.txt": (
        "Title: Resetting the administrator password of the console\n\nText:\nTo reset the administrator "
        "password, stop the server and run the resetpw command with the new password."
    ),
    "swg2.txt": (
        "Title: Log files fill the disk\n\nText:\nThe trace log grows without limit when tracing is on. "
        "Turn tracing off in the logging settings to stop the disk from filling up."
    ),
    "swg3.txt": (
        "Title: Licence keys\n\nText:\nLicence keys are sent by email after purchase. "
        "Enter the licence key in the activation dialog."
    ),
}


@pytest.fixture
def techqa_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "techqa"
    folder.mkdir()

    def row(qid: str, question: str, gold: str | None, answer: str = "-") -> str:
        contexts = [{"filename": gold, "text": TECHNOTES[gold]}] if gold else []
        return (
            json.dumps(
                {
                    "id": qid,
                    "question": question,
                    "answer": answer,
                    "contexts": contexts,
                    "is_impossible": gold is None,
                }
            )
            + "\n"
        )

    (folder / "techqa_sample.jsonl").write_text(
        row(
            "Q1",
            "How do I reset the administrator password?",
            "swg1.txt",
            "Stop the server and run the resetpw command with the new password.",
        )
        + row(
            "Q2",
            "The trace log fills my disk, how do I stop it?",
            "swg2.txt",
            "Turn tracing off in the logging settings.",
        )
        + row("Q3", "Where do I enter the licence key?", "swg3.txt", "In the activation dialog.")
        + row("Q4", "Which Kubernetes operator version supports FIPS mode on z/OS?", None)
    )
    return folder


def test_eval_answers_scores_answers_citations_and_abstention(
    techqa_dir: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "answers",
            str(techqa_dir),
            "--json",
            "--details",
            str(tmp_path / "d.jsonl"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["questions"] == 4 and report["answerable"] == 3 and report["unanswerable"] == 1
    assert report["docs"] == 3 and report["model"] == "chatwell-offline"
    assert report["grounded_answer_rate"] == 1.0 and report["recall@5"] == 1.0
    assert report["abstention_rate"] == 1.0 and report["false_abstention_rate"] == 0.0
    assert report["answer_score"] == 1.0 and report["citation_precision"] == 1.0
    assert 0.3 < report["token_f1"] <= 1.0 and report["token_recall"] > 0.5
    assert report["latency_p95_ms"] >= report["latency_p50_ms"] > 0
    details = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [(d["id"], d["answered"]) for d in details] == [
        ("Q1", True),
        ("Q2", True),
        ("Q3", True),
        ("Q4", False),
    ]
    assert details[0]["cited"] == ["swg1.txt"] and "resetpw" in details[0]["answer"]
    assert min(d["support"] for d in details[:3]) > details[3]["support"]
    limited = CliRunner().invoke(
        app,
        [
            "eval",
            "answers",
            str(techqa_dir),
            "--json",
            "--limit",
            "1",
            "--split",
            "report",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        catch_exceptions=False,
    )
    assert json.loads(limited.output.strip().splitlines()[-1])["questions"] == 1


def test_eval_answers_reads_every_layout(techqa_dir: Path, beir_dir: Path, tmp_path: Path) -> None:
    from chatwell.evaluation.answers import token_f1
    from chatwell.evaluation.datasets import load_answer_sets

    (techqa_set,) = load_answer_sets(techqa_dir)
    assert [q.answerable for q in techqa_set.questions] == [True, True, True, False]
    assert techqa_set.docs[0].title == "Resetting the administrator password of the console"
    assert [q.id for q in load_answer_sets(techqa_dir, split="calibration")[0].questions] == [
        "Q1",
        "Q4",
    ]
    assert [q.id for q in load_answer_sets(techqa_dir, split="report")[0].questions] == ["Q2", "Q3"]
    (beir,) = load_answer_sets(beir_dir, split="test")
    assert {q.id: set(q.gold) for q in beir.questions}["q3"] == {"d4"}
    manual = tmp_path / "emanual"
    manual.mkdir()
    (manual / "tv_manual_corpus.json").write_text(
        json.dumps(
            {
                "section_0": {"title": "Picture", "text": ["Picture"]},
                "section_1": {
                    "title": "Adjusting the brightness",
                    "section_hierarchy": "section_0>section_1",
                    "text": ["Open Settings > Picture > Brightness and move the slider."],
                },
            }
        )
    )
    (manual / "tv_50_questions.csv").write_text(
        "question_id,question,section_path,section_link,answer\n"
        "7,How do I make the picture brighter?,Picture>Adjusting the brightness>Extra,,Move the slider.\n"
    )
    (tv,) = load_answer_sets(manual)
    assert [d.title for d in tv.docs] == [
        "Picture > Adjusting the brightness"
    ]  # a heading alone is no document
    assert tv.questions[0].gold == {"section_1"} and tv.questions[0].reference == "Move the slider."
    assert token_f1("Move the slider [1].", "move the slider") == (1.0, 1.0)
    bad = CliRunner().invoke(app, ["eval", "answers", str(tmp_path / "nothing-here"), "--json"])
    assert bad.exit_code == 2 and "holds none of" in " ".join(bad.output.split())
