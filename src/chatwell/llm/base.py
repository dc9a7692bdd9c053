"""The protocol every model provider implements, and the request it receives.

A provider turns a ``ModelRequest`` into a stream of ``ModelDelta``s and finally one
``ModelUsage``. It knows nothing about bots, retrieval or persistence. Failures raise
``ModelError`` with a stable code; ``retryable`` errors before the first token may be retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class ModelImage:
    data_base64: str
    media_type: str


@dataclass(frozen=True, slots=True)
class ModelMessage:
    role: Literal["system", "user", "assistant"]
    content: str
    image: ModelImage | None = None


@dataclass(frozen=True, slots=True)
class Grounding:
    """A numbered passage the answer may cite as ``[index]`` (the offline answerer reads these)."""

    index: int
    title: str
    text: str
    heading: str = ""  # the chunk's heading path (its source's title first)


#: What a model answers when its sources do not answer the question (the prompt asks for exactly
#: this; the offline answerer writes it too): the chat engine reports it as an abstention.
NOT_IN_SOURCES = "NOT_IN_SOURCES"


@dataclass(frozen=True, slots=True)
class ModelRequest:
    messages: Sequence[ModelMessage]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    question: str = ""
    grounding: Sequence[Grounding] = field(default_factory=tuple)
    min_support: float | None = None  # the offline answerer's bar for answering (bot strictness)


@dataclass(frozen=True, slots=True)
class ModelDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ModelUsage:
    prompt_tokens: int
    completion_tokens: int


ModelEvent = ModelDelta | ModelUsage


class ModelError(Exception):
    """A provider failure: ``code`` is stable (upstream_error, upstream_timeout, ...)."""

    def __init__(self, code: str, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status


class ChatModel(Protocol):
    name: str
    supports_images: bool

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Yield text deltas as they arrive, then usage. Closing the iterator cancels upstream."""
        ...
