"""The protocol every model provider implements, and the request it receives.

A provider turns a ``ModelRequest`` into a stream of ``ModelDelta``s (and ``ModelToolCall``s
when the request offers tools), maybe a ``ModelFinish`` saying why it stopped, and finally one
``ModelUsage``. It knows nothing about bots, retrieval or persistence. Failures raise
``ModelError`` with a stable code; ``retryable`` errors before the first token may be retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class ModelImage:
    data_base64: str
    media_type: str


@dataclass(frozen=True, slots=True)
class ModelToolCall:
    """A function call the model asks the client to make; ``arguments`` is a JSON text."""

    index: int
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ModelMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    image: ModelImage | None = None
    tool_calls: tuple[ModelToolCall, ...] = ()  # an assistant's calls
    tool_call_id: str | None = None  # a tool result's call


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """What a caller asked of the generation itself, beyond the bot's settings.

    ``instructions`` are the caller's own system text (placed under the bot's); ``tool_turns`` are
    the assistant tool calls and tool results that followed the question. ``response_format``,
    ``tools`` and ``tool_choice`` are OpenAI's wire values, passed through to a model that
    declares it supports them (``ChatModel.supports_tools``); a model without it refuses them.
    """

    instructions: str = ""
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    tool_turns: tuple[ModelMessage, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # other sampling values (penalties, ...)

    @property
    def structured(self) -> bool:
        """The caller asked for JSON or tool calls: the answer is data, not prose for a person."""
        return bool(self.response_format and self.response_format.get("type") != "text") or bool(
            self.tools or self.tool_turns
        )

    def needs_tools(self) -> str | None:
        """The first parameter here a model without tool/JSON support can not honour, or None."""
        if self.tools or self.tool_choice not in (None, "none", "auto"):
            return "tools"
        if self.tool_turns:
            return "messages"
        if self.response_format and self.response_format.get("type") != "text":
            return "response_format"
        return next(iter(self.extra), None)


@dataclass(frozen=True, slots=True)
class Grounding:
    """A numbered passage the answer may cite as ``[index]`` (the offline answerer reads these)."""

    index: int
    title: str
    text: str
    heading: str = ""  # the chunk's heading path (its source's title first)
    # How the search ranked it, when it came from one: the fused score in [0, 1] and the cosine
    # similarity to the question (the offline answerer's judgement weighs them in).
    score: float | None = None
    similarity: float | None = None


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
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ModelUsage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ModelFinish:
    """Why the model stopped, in OpenAI's words: ``stop``, ``length``, ``tool_calls``."""

    reason: str


ModelEvent = ModelDelta | ModelToolCall | ModelFinish | ModelUsage


class ModelError(Exception):
    """A provider failure: ``code`` is stable (upstream_error, upstream_timeout, ...)."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, status: int | None = None
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.status = status


class ChatModel(Protocol):
    name: str
    supports_images: bool
    supports_tools: bool  # passes tools, tool_choice, tool messages and response_format through

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Yield text deltas as they arrive, then usage. Closing the iterator cancels upstream."""
        ...
