"""Workspace analytics for the dashboard: activity per day, unanswered and top questions,
feedback, and tokens and cost by model, over the last ``days`` days (optionally one bot).

Days are bucketed in Python (UTC) so SQLite and PostgreSQL give the same answer; message rows
read are capped at ``MAX_MESSAGES`` (the newest), which bounds the page's cost on big workspaces.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from chatwell.domain.models import AnswerSettings
from chatwell.storage.database import Database
from chatwell.storage.tables import Bot, Conversation, Message, UsageEvent, utcnow

MAX_MESSAGES = 50_000
TOP = 10


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


@dataclass(slots=True)
class Report:
    days: list[date]
    messages_per_day: list[int]
    conversations_per_day: list[int]
    unanswered: list[tuple[str, int]] = field(default_factory=list)  # question, times
    top_questions: list[tuple[str, int]] = field(default_factory=list)
    unanswered_bot: dict[str, uuid.UUID] = field(
        default_factory=dict
    )  # question -> a bot that could not answer
    positive: int = 0
    negative: int = 0
    usage: list[ModelUsage] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(self.messages_per_day)

    @property
    def conversations(self) -> int:
        return sum(self.conversations_per_day)

    @property
    def feedback_ratio(self) -> float | None:
        rated = self.positive + self.negative
        return self.positive / rated if rated else None


def _question_key(text: str) -> str:
    return " ".join(text.split()).casefold().rstrip("?!. ")


def _ranked(counter: Counter[str], shown: dict[str, str]) -> list[tuple[str, int]]:
    return [
        (shown[key], n) for key, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
    ]


async def report(
    db: Database,
    *,
    workspace_id: uuid.UUID,
    bot_id: uuid.UUID | None = None,
    days: int = 30,
    now: datetime | None = None,
) -> Report:
    now = now or utcnow()
    first = now.date() - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
    day_list = [first + timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(day_list)}
    result = Report(day_list, [0] * days, [0] * days)
    scope: list[Any] = [Conversation.workspace_id == workspace_id]
    if bot_id is not None:
        scope.append(Conversation.bot_id == bot_id)
    async with db.read() as session:
        not_found = {
            b.id: AnswerSettings.model_validate(b.answer_settings or {}).not_found_message.strip()
            for b in (
                await session.execute(select(Bot).where(Bot.workspace_id == workspace_id))
            ).scalars()
        }
        for (created,) in (
            await session.execute(
                select(Conversation.created_at).where(*scope, Conversation.created_at >= since)
            )
        ).all():
            if created.date() in index:
                result.conversations_per_day[index[created.date()]] += 1
        rows = (
            await session.execute(
                select(
                    Message.conversation_id,
                    Message.role,
                    Message.content,
                    Message.feedback,
                    Message.created_at,
                    Conversation.bot_id,
                    Message.metadata_,
                )
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(*scope, Message.created_at >= since)
                .order_by(Message.created_at.desc())
                .limit(MAX_MESSAGES)
            )
        ).all()
        usage_scope: list[Any] = [
            UsageEvent.workspace_id == workspace_id,
            UsageEvent.created_at >= since,
        ]
        if bot_id is not None:
            usage_scope.append(UsageEvent.bot_id == bot_id)
        usage = (
            await session.execute(
                select(
                    UsageEvent.model,
                    func.count(),
                    func.sum(UsageEvent.prompt_tokens),
                    func.sum(UsageEvent.completion_tokens),
                    func.sum(UsageEvent.cost),
                )
                .where(*usage_scope)
                .group_by(UsageEvent.model)
            )
        ).all()
    result.usage = sorted(
        (
            ModelUsage(
                model or "(unknown)", int(n), int(p or 0), int(c or 0), Decimal(str(cost or 0))
            )
            for model, n, p, c, cost in usage
        ),
        key=lambda u: (-u.cost, -u.prompt_tokens - u.completion_tokens, u.model),
    )
    top: Counter[str] = Counter()
    unanswered: Counter[str] = Counter()
    shown: dict[str, str] = {}
    last_question: dict[uuid.UUID, str] = {}
    for conversation_id, role, content, feedback, created, bot, meta in reversed(
        rows
    ):  # oldest first
        if created.date() in index:
            result.messages_per_day[index[created.date()]] += 1
        if role == "user":
            text = " ".join((content or "").split())
            if not text:
                continue
            key = _question_key(text)
            shown.setdefault(key, text[:300])
            # Counted once the bot answers it: a message to an agent (no bot reply) is no question to the bot.
            last_question[conversation_id] = key
        elif role == "assistant":
            if feedback == "positive":
                result.positive += 1
            elif feedback == "negative":
                result.negative += 1
            asked = last_question.pop(conversation_id, None)
            if asked is None:
                continue
            top[asked] += 1
            abstained = isinstance(meta, dict) and meta.get("answered") is False
            if abstained or (
                (content or "").strip() and (content or "").strip() == not_found.get(bot)
            ):
                unanswered[asked] += 1
                result.unanswered_bot.setdefault(shown[asked], bot)
        else:  # an agent's reply: the question before it went to a person
            last_question.pop(conversation_id, None)
    result.top_questions = _ranked(top, shown)
    result.unanswered = _ranked(unanswered, shown)
    return result
