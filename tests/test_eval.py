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
QUERIES = {"q1": "how do solar cells make electricity", "q2": "what makes sourdough rise",
           "q3": "which insects make honey", "q9": "unjudged query"}
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
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in DOCS.items()))
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": i, "text": q}) + "\n" for i, q in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS))
    return folder


def test_eval_command_prints_the_contract_fields(beir_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "retrieval", str(beir_dir), "--split", "test", "--json",
                                      "--cache-dir", str(tmp_path / "cache")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    for field in ("ndcg@10", "recall@10", "recall@100", "queries", "docs", "index_seconds", "query_p50_ms"):
        assert field in report
    assert report["queries"] == 3 and report["docs"] == 5
    # Each query has one clearly matching document: every run must put it first.
    assert report["ndcg@10"] == pytest.approx(1.0)
    assert set(report["baselines"]) == {"bm25", "dense"}
    assert report["baselines"]["dense"]["recall@10"] == 1.0


def test_eval_command_refuses_a_folder_without_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "retrieval", str(tmp_path), "--json"])
    assert result.exit_code == 2 and "corpus.jsonl" in result.output
