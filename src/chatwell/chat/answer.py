"""A turn run to its end: the one-piece reply every door builds its non-streaming body from."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from chatwell.domain import events as ev

OnEvent = Callable[[ev.ChatEvent], Awaitable[None]]


@dataclass(slots=True)
class Answer:
    text: str = ""
    conversation_id: uuid.UUID | None = None
    citations: tuple[ev.Citation, ...] = ()
    tool_calls: list[ev.ToolCall] = field(default_factory=list)
    notices: list[ev.Notice] = field(default_factory=list)
    usage: ev.Usage | None = None
    done: ev.Done | None = None
    error: ev.Error | None = None  # the turn failed; the fields above hold what came before

    @property
    def message_id(self) -> uuid.UUID | None:
        return self.done.message_id if self.done else None

    @property
    def answered(self) -> bool | None:
        return self.done.answered if self.done else None

    @property
    def finish_reason(self) -> str:
        return self.done.finish_reason if self.done else "stop"


async def collect(
    events: AsyncIterator[ev.ChatEvent],
    conversation_id: uuid.UUID | None,
    on_event: OnEvent | None = None,
) -> Answer:
    """Sum up a turn's events; ``on_event`` sees each one first (MCP reports progress with it)."""
    answer, text = Answer(conversation_id=conversation_id), []
    async for event in events:
        if on_event is not None:
            await on_event(event)
        match event:
            case ev.Delta(text=piece):
                text.append(piece)
            case ev.Replace(text=whole):
                text = [whole]
            case ev.Citations(citations=citations):
                answer.citations = citations
            case ev.ToolCall():
                answer.tool_calls.append(event)
            case ev.Notice():
                answer.notices.append(event)
            case ev.Usage():
                answer.usage = event
            case ev.Done():
                answer.done = event
            case ev.Error():
                answer.error = event
    answer.text = "".join(text)
    return answer
