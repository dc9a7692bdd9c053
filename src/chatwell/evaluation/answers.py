"""``chatwell eval answers``: build a bot with the server's ingestion, ask every question through
the chat engine (offline answerer or the configured model), and score the answers.

Each ``AnswerSet`` gets a bot of its own in a throwaway SQLite data dir; documents become text or
file sources and the ingestion worker the server runs indexes them; every question is a private
turn of ``ChatService`` (nothing stored), so an answer is exactly what a door would stream.
Whether the bot answered or abstained is the engine's own ``Done.answered`` flag.

Metrics (answerable questions have gold documents; unanswerable ones have none):

* ``grounded_answer_rate``: answerable questions answered with a gold document cited;
* ``abstention_rate``: unanswerable questions abstained on; ``answer_score`` is the mean of the two;
* ``false_abstention_rate``: answerable questions abstained on;
* ``citation_precision``: share of cited documents that are gold, over answered answerable questions;
* ``recall@5``: a gold document among the first five citations; ``retrieval_recall@5``: among the
  documents of the first five retrieved passages (what the answerer was given);
* ``token_f1`` / ``token_recall``: the answer against the reference answer (SQuAD normalisation),
  over answered questions that have one; ``key_term_rate``: answers containing a key term;
* ``latency_p50_ms`` / ``latency_p95_ms``: a whole turn, question embedding included.
"""

from __future__ import annotations

import re
import statistics
import string
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from chatwell.chat.prompts import grounding_of
from chatwell.chat.service import RETRIEVAL_K, ChatRequest
from chatwell.domain.bots import BotCreate
from chatwell.domain.events import Citations, Delta, Done, HistoryTurn, Replace
from chatwell.domain.models import ModelSettings
from chatwell.domain.sources import TextSourceIn
from chatwell.evaluation.datasets import AnswerSet, Doc, Question
from chatwell.evaluation.metrics import percentile
from chatwell.ingestion.worker import ingest_pending
from chatwell.knowledge import build_chat_service, build_embedder, build_knowledge
from chatwell.llm.extractive import OfflineAnswerer
from chatwell.services import bots, sources, workspaces
from chatwell.services.principals import owner_principal
from chatwell.settings import Settings
from chatwell.storage import migrate
from chatwell.storage.database import Database
from chatwell.storage.tables import Chunk


@dataclass(slots=True)
class Outcome:
    question: Question
    text: str
    answered: bool
    cited: list[str]  # doc ids, in citation order (duplicates removed)
    retrieved: list[str]  # doc ids of the retrieved passages, best first
    seconds: float
    support: float | None = None  # the offline answerer's judgement of the retrieved passages
    quoted: list[str] | None = None  # the docs it would quote, whatever its bar

    def detail(self) -> dict[str, Any]:
        q = self.question
        return {
            "id": q.id,
            "answerable": q.answerable,
            "gold": sorted(q.gold),
            "answered": self.answered,
            "cited": self.cited,
            "retrieved": self.retrieved,
            "support": self.support,
            "quoted": self.quoted,
            "seconds": round(self.seconds, 4),
            "answer": self.text,
        }


async def evaluate_answers(
    sets: Sequence[AnswerSet],
    *,
    settings: Settings | None = None,
    cache_dir: Path | None = None,
    limit: int | None = None,
    answer_settings: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    details: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Ask every question of every set; the metrics over all of them, and per set when several.
    ``details`` receives one record per question (for calibration and for reading answers)."""
    say = progress or (lambda _msg: None)
    outcomes: dict[str, list[Outcome]] = {}
    info: dict[str, dict[str, Any]] = {}
    for answer_set in sets:
        questions = answer_set.questions[:limit] if limit else answer_set.questions
        outcomes[answer_set.name], info[answer_set.name] = await _run_set(
            answer_set,
            questions,
            settings=settings,
            cache_dir=cache_dir,
            answer_settings=answer_settings,
            say=say,
        )
    everything = [o for group in outcomes.values() for o in group]
    if details is not None:
        for name, group in outcomes.items():
            for outcome in group:
                details({"set": name} | outcome.detail())
    result = score(everything)
    result["docs"] = sum(i["docs"] for i in info.values())
    result["chunks"] = sum(i["chunks"] for i in info.values())
    result["index_seconds"] = round(sum(i["index_seconds"] for i in info.values()), 2)
    result["model"] = next(iter(info.values()))["model"] if info else ""
    if len(outcomes) > 1:
        result["sets"] = {name: score(group) | info[name] for name, group in outcomes.items()}
    return result


async def _run_set(
    answer_set: AnswerSet,
    questions: Sequence[Question],
    *,
    settings: Settings | None,
    cache_dir: Path | None,
    answer_settings: dict[str, Any] | None,
    say: Callable[[str], None],
) -> tuple[list[Outcome], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="chatwell-eval-") as tmp:
        run_settings = (settings or Settings()).model_copy(
            update={"data_dir": Path(tmp), "database_url": None}
        )
        db = Database(run_settings.resolved_database_url)
        try:
            await migrate.upgrade(db)
            embedder = (
                build_embedder(run_settings.model_copy(update={"data_dir": cache_dir}))
                if cache_dir
                else None
            )
            knowledge = build_knowledge(db, run_settings, embedder=embedder)
            chat = build_chat_service(db, run_settings, knowledge)
            judge = OfflineAnswerer(knowledge.embedder)
            workspace, _ = await workspaces.create_workspace(db, name="eval")
            bot = await bots.create_bot(
                db,
                workspace_id=workspace.id,
                data=BotCreate(name="eval", slug=f"eval-{uuid.uuid4().hex[:8]}"),
            )
            if answer_settings:
                bot.answer_settings = dict(answer_settings)
            started = time.perf_counter()
            source_doc = await _add_documents(db, bot.id, workspace.id, answer_set.docs)
            say(f"{answer_set.name}: added {len(source_doc)} documents; ingesting")
            await ingest_pending(knowledge.ingestor, concurrency=run_settings.ingestion_concurrency)
            index_seconds = time.perf_counter() - started
            chunks = await _chunk_count(db, bot.id)
            say(
                f"{answer_set.name}: {chunks} chunks in {index_seconds:.1f}s; asking {len(questions)} questions"
            )
            outcomes = []
            for n, question in enumerate(questions):
                outcomes.append(
                    await _ask(chat, knowledge.retriever, judge, bot, question, source_doc)
                )
                if (n + 1) % 50 == 0:
                    say(f"{answer_set.name}: {n + 1}/{len(questions)}")
            model = chat.models.resolve(_model_settings(bot)).model.name
        finally:
            await db.dispose()
    return outcomes, {
        "docs": len(source_doc),
        "chunks": chunks,
        "index_seconds": round(index_seconds, 2),
        "model": model,
    }


def _model_settings(bot: Any) -> ModelSettings:
    return ModelSettings.model_validate(bot.model_settings or {})


async def _add_documents(
    db: Database, bot_id: uuid.UUID, workspace_id: uuid.UUID, docs: Sequence[Doc]
) -> dict[uuid.UUID, str]:
    principal = owner_principal(workspace_id)
    source_doc: dict[uuid.UUID, str] = {}
    for doc in docs:
        if doc.content is not None:
            source = await sources.add_file_source(
                db,
                principal=principal,
                bot_ref=str(bot_id),
                filename=doc.filename or doc.id,
                content=doc.content,
                declared_type=None,
            )
        else:
            body = doc.text if doc.text.strip() else doc.title
            if not body.strip():
                continue
            source = await sources.add_text_source(
                db,
                principal=principal,
                bot_ref=str(bot_id),
                data=TextSourceIn(type="text", title=doc.title or doc.id, text=body),
            )
        source_doc[source.id] = doc.id
    return source_doc


async def _chunk_count(db: Database, bot_id: uuid.UUID) -> int:
    return int(
        await db.read_now(lambda s: s.scalar(select(func.count()).where(Chunk.bot_id == bot_id)))
        or 0
    )


async def _ask(
    chat: Any,
    retriever: Any,
    judge: OfflineAnswerer,
    bot: Any,
    question: Question,
    source_doc: dict[uuid.UUID, str],
) -> Outcome:
    history = [HistoryTurn("user", turn) for turn in question.history]
    started = time.perf_counter()
    turn = await chat.start(
        ChatRequest(bot=bot, question=question.text, channel="eval", private=True, history=history)
    )
    parts: list[str] = []
    cited: list[str] = []
    answered = False
    async for event in turn.events():
        if isinstance(event, Delta):
            parts.append(event.text)
        elif isinstance(event, Replace):
            parts = [event.text]
        elif isinstance(event, Citations):
            for citation in event.citations:
                doc = source_doc.get(citation.source_id)
                if doc is not None and doc not in cited:
                    cited.append(doc)
        elif isinstance(event, Done):
            answered = bool(event.answered)
    seconds = time.perf_counter() - started
    # What the answerer was given: the same search the engine ran (its embedding is cached now).
    query = (
        question.text if not question.history else " ".join([question.history[-1], question.text])
    )
    result = await retriever.search(bot_id=bot.id, query=query, k=RETRIEVAL_K)
    retrieved = list(
        dict.fromkeys(source_doc[p.source_id] for p in result.passages if p.source_id in source_doc)
    )
    related = result.relevant or any(p.keyword > 0 for p in result.passages)
    judgement = await judge.judge(question.text, grounding_of(result.passages))
    quoted = list(
        dict.fromkeys(
            source_doc.get(result.passages[c.index - 1].source_id, "") for c in judgement.chosen
        )
    )
    return Outcome(
        question,
        "".join(parts),
        answered,
        cited,
        retrieved,
        seconds,
        judgement.support if related else 0.0,
        quoted,
    )


def score(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    answerable = [o for o in outcomes if o.question.answerable and o.question.gold]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    answered = [o for o in answerable if o.answered]
    result: dict[str, Any] = {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }

    def mean(values: list[float]) -> float | None:
        return round(statistics.fmean(values), 4) if values else None

    result["grounded_answer_rate"] = mean(
        [float(o.answered and bool(o.question.gold & set(o.cited))) for o in answerable]
    )
    result["abstention_rate"] = mean([float(not o.answered) for o in unanswerable])
    if result["grounded_answer_rate"] is not None and result["abstention_rate"] is not None:
        result["answer_score"] = round(
            (result["grounded_answer_rate"] + result["abstention_rate"]) / 2, 4
        )
    result["false_abstention_rate"] = mean([float(not o.answered) for o in answerable])
    result["citation_precision"] = mean(
        [sum(d in o.question.gold for d in o.cited) / len(o.cited) for o in answered if o.cited]
    )
    result["recall@5"] = mean([float(bool(o.question.gold & set(o.cited[:5]))) for o in answerable])
    result["retrieval_recall@5"] = mean(
        [float(bool(o.question.gold & set(o.retrieved[:5]))) for o in answerable]
    )
    with_reference = [
        o for o in outcomes if o.question.answerable and o.question.reference and o.answered
    ]
    pairs = [token_f1(o.text, o.question.reference or "") for o in with_reference]
    result["token_f1"] = mean([f1 for f1, _ in pairs])
    result["token_recall"] = mean([recall for _, recall in pairs])
    with_terms = [o for o in outcomes if o.question.key_terms]
    result["key_term_rate"] = mean(
        [float(contains_key_term(o.text, o.question.key_terms)) for o in with_terms]
    )
    latencies = [o.seconds * 1000 for o in outcomes]
    result["latency_p50_ms"] = round(percentile(latencies, 50), 1)
    result["latency_p95_ms"] = round(percentile(latencies, 95), 1)
    return result


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKERS = re.compile(r"\[\d{1,2}\]")


def _tokens(text: str) -> list[str]:
    text = _MARKERS.sub(" ", text.lower())
    text = "".join(" " if ch in string.punctuation else ch for ch in text)
    return _ARTICLES.sub(" ", text).split()


def token_f1(answer: str, reference: str) -> tuple[float, float]:
    """SQuAD-style token F1 and recall of ``answer`` against ``reference`` (citation markers dropped)."""
    got, want = _tokens(answer), _tokens(reference)
    common = sum((Counter(got) & Counter(want)).values())
    if not got or not want or not common:
        return 0.0, 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall), recall


def contains_key_term(answer: str, terms: Sequence[str]) -> bool:
    lowered = answer.lower()
    return any(term.lower() in lowered for term in terms)
