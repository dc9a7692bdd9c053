"""Answer-level evaluation data: the layouts of ``../shared/eval/`` (TechQA, WixQA, E-Manual QA),
BEIR folders, and a documentation-site layout of HTML pages, read into one shape.

An ``AnswerSet`` is one bot's knowledge (``docs``) and the questions asked of it. A folder may
hold several (E-Manual QA: two manuals), each evaluated with a bot of its own. This module only
reads files; it never indexes or asks anything.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from chatwell.evaluation.retrieval import load_beir

SPLITS = ("all", "calibration", "report")


@dataclass(frozen=True, slots=True)
class Doc:
    """A corpus document: text (``title`` + ``text``) or a file (``filename`` + ``content``)."""

    id: str
    title: str = ""
    text: str = ""
    filename: str | None = None
    content: bytes | None = None


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: str
    gold: frozenset[
        str
    ]  # doc ids that answer it; empty: unanswerable (or not judged, see answerable)
    answerable: bool = True
    reference: str | None = None  # a reference answer, for token F1
    key_terms: tuple[
        str, ...
    ] = ()  # a user needs one of these in the answer (an option, a command)
    history: tuple[str, ...] = ()  # earlier user turns of the same conversation (follow-up sets)


@dataclass(slots=True)
class AnswerSet:
    name: str
    docs: list[Doc]
    questions: list[Question] = field(default_factory=list)


class DatasetError(ValueError):
    """The folder holds no layout this module reads."""


def load_answer_sets(folder: Path, *, split: str = "all") -> list[AnswerSet]:
    """Read ``folder`` in whichever layout it has; ``split`` keeps the calibration questions
    (every third by position in the file), the report questions (the others) or all."""
    if split not in SPLITS and not (folder / "qrels" / f"{split}.tsv").is_file():
        raise DatasetError(
            f"unknown split {split!r}: one of {', '.join(SPLITS)} (or a BEIR qrels name)"
        )
    if (folder / "corpus.jsonl").is_file():
        sets = [_beir(folder, split if (folder / "qrels" / f"{split}.tsv").is_file() else "test")]
    elif list(folder.glob("techqa*.jsonl")):
        sets = [_techqa(next(iter(sorted(folder.glob("techqa*.jsonl")))))]
    elif list(folder.glob("wixqa*.jsonl")):
        sets = [_wixqa(next(iter(sorted(folder.glob("wixqa*.jsonl")))))]
    elif list(folder.glob("*_manual_corpus.json")):
        sets = [_emanual(corpus) for corpus in sorted(folder.glob("*_manual_corpus.json"))]
    elif (folder / "questions.jsonl").is_file() and (folder / "pages").is_dir():
        sets = [_site(folder)]
    else:
        raise DatasetError(
            f"{folder} holds none of: corpus.jsonl (BEIR), techqa*.jsonl, wixqa*.jsonl, "
            "*_manual_corpus.json (E-Manual QA), questions.jsonl + pages/ (documentation site)"
        )
    if split in ("calibration", "report"):
        for answer_set in sets:
            keep = 0 if split == "calibration" else None
            answer_set.questions = [
                q for n, q in enumerate(answer_set.questions) if (n % 3 == 0) == (keep == 0)
            ]
    return sets


def _beir(folder: Path, split: str) -> AnswerSet:
    data = load_beir(folder, split)
    docs = [Doc(doc_id, title=title, text=text) for doc_id, (title, text) in data.corpus.items()]
    questions = [
        Question(qid, text, frozenset(d for d, g in data.qrels.get(qid, {}).items() if g > 0))
        for qid, text in data.queries.items()
    ]
    return AnswerSet(folder.name, docs, questions)


def _jsonl(path: Path) -> list[dict]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def _techqa(path: Path) -> AnswerSet:
    docs: dict[str, Doc] = {}
    questions = []
    for row in _jsonl(path):
        for ctx in row["contexts"]:
            text = ctx["text"]
            title = (
                text.split("\n", 1)[0].removeprefix("Title:").strip()
                if text.startswith("Title:")
                else ""
            )
            docs[ctx["filename"]] = Doc(ctx["filename"], title=title or ctx["filename"], text=text)
        impossible = bool(row.get("is_impossible"))
        questions.append(
            Question(
                row["id"],
                row["question"],
                frozenset(ctx["filename"] for ctx in row["contexts"]),
                answerable=not impossible,
                reference=None if impossible else row.get("answer"),
            )
        )
    return AnswerSet("techqa", list(docs.values()), questions)


def _wixqa(path: Path) -> AnswerSet:
    docs: dict[str, Doc] = {}
    questions = []
    for n, row in enumerate(_jsonl(path)):
        for ctx in row["contexts"]:
            docs[ctx["id"]] = Doc(ctx["id"], title=ctx.get("title") or "", text=ctx["text"])
        questions.append(
            Question(
                str(row.get("id") or n),
                row["question"],
                frozenset(row["article_ids"]),
                reference=row.get("answer"),
            )
        )
    return AnswerSet("wixqa", list(docs.values()), questions)


def _normal_title(title: str) -> str:
    return re.sub(r"\W+", " ", title.lower()).strip()


def _emanual(corpus_path: Path) -> AnswerSet:
    """One manual: each section with text is a document titled by its heading path; a question's
    gold section is found by its path's last title (the deepest title that exists, when the
    question names a section the corpus splits differently)."""
    name = corpus_path.name.removesuffix("_manual_corpus.json")
    sections: dict[str, dict] = json.loads(corpus_path.read_text(encoding="utf-8"))
    by_title: dict[str, set[str]] = {}
    docs = []
    for sid, section in sections.items():
        by_title.setdefault(_normal_title(section["title"]), set()).add(sid)
        path = [
            sections[p]["title"].strip()
            for p in (section.get("section_hierarchy") or "").split(">")
            if p in sections
        ] or [section["title"].strip()]
        text = "\n".join(line for line in section["text"] if line.strip())
        if len(text) - len(section["title"]) >= 20:  # a heading alone answers nothing
            docs.append(Doc(sid, title=" > ".join(path), text=text))
    questions_path = corpus_path.with_name(f"{name}_50_questions.csv")
    questions = []
    with open(questions_path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            gold: set[str] = set()
            for title in reversed(row["section_path"].split(">")):
                gold = by_title.get(_normal_title(title), set())
                if gold:
                    break
            questions.append(
                Question(
                    f"{name}-{row['question_id']}",
                    row["question"],
                    frozenset(gold),
                    reference=row.get("answer") or None,
                )
            )
    return AnswerSet(f"emanual_qa/{name}", docs, questions)


def _site(folder: Path) -> AnswerSet:
    """A documentation site: ``pages/`` (HTML files, each a document named by its path) and
    ``questions.jsonl`` (``id``, ``question``, ``gold``: page paths, ``key_terms``, ``answer``)."""
    pages = folder / "pages"
    docs = [
        Doc(str(p.relative_to(pages)), filename=p.name, content=p.read_bytes())
        for p in sorted(pages.rglob("*"))
        if p.is_file() and p.suffix.lower() in (".html", ".htm")
    ]
    questions = [
        Question(
            str(row["id"]),
            row["question"],
            frozenset(row.get("gold", [])),
            answerable=bool(row.get("gold", [])) or not row.get("unanswerable", False),
            reference=row.get("answer"),
            key_terms=tuple(row.get("key_terms", ())),
            history=tuple(row.get("history", ())),
        )
        for row in _jsonl(folder / "questions.jsonl")
    ]
    return AnswerSet(folder.name, docs, questions)
