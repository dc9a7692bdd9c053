"""The neutral chat event stream every door encodes: one answer, many wire formats.

``chat.service.ChatService.answer`` yields these in order: ``Status`` (retrieving, generating),
``Notice``s, ``Delta``s (answer text), maybe a ``Replace`` (the output filter rewrote the text),
``Citations``, ``Usage``, then exactly one ``Done`` — or an ``Error`` that ends the stream.
A turn whose caller offered tools may carry ``ToolCall``s (after the text, before ``Usage``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer used; ``index`` is the ``[n]`` marker in the text (1-based)."""

    index: int
    source_id: uuid.UUID
    title: str
    url: str | None
    page: int | None
    score: float
    snippet: str = ""


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    """One earlier turn of a conversation, as the model sees it."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Status:
    stage: Literal["retrieving", "generating"]


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Replace:
    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    code: str
    message: str
    level: Literal["info", "warning"] = "warning"


@dataclass(frozen=True, slots=True)
class Citations:
    citations: tuple[Citation, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    model: str
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model asks the caller to run (only when the caller offered tools)."""

    index: int
    id: str
    name: str
    arguments: str  # JSON text


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a turn. ``answered``: the bot answered from its sources (True), abstained
    because they do not answer the question (False), or did not try (None: a person holds the
    conversation, a handoff)."""

    conversation_id: uuid.UUID | None
    message_id: uuid.UUID | None
    user_message_id: uuid.UUID | None = None
    answered: bool | None = None
    finish_reason: str = "stop"  # stop, length (the token limit), tool_calls


@dataclass(frozen=True, slots=True)
class Error:
    code: str
    message: str


ChatEvent = Status | Delta | Replace | Notice | Citations | ToolCall | Usage | Done | Error
