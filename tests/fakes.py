"""A deterministic, scripted chat model for unit tests (integration tests use a real server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from chatwell.llm.base import ModelDelta, ModelError, ModelEvent, ModelRequest, ModelUsage
from chatwell.llm.registry import ResolvedModel


@dataclass
class ScriptedModel:
    """Streams ``deltas``; optionally fails after ``fail_after`` of them; records every request."""

    deltas: Sequence[str] = ("The answer ", "is 42 ", "[1].")
    name: str = "scripted"
    supports_images: bool = False
    fail_after: int | None = None
    usage: tuple[int, int] = (100, 20)
    delay: float = 0.0
    requests: list[ModelRequest] = field(default_factory=list)
    closed: int = 0

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        try:
            for n, delta in enumerate(self.deltas):
                if self.fail_after is not None and n == self.fail_after:
                    raise ModelError("upstream_error", "the model stream broke off")
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield ModelDelta(delta)
            yield ModelUsage(*self.usage)
        finally:
            self.closed += 1


class FixedRegistry:
    """Stands in for ``ModelRegistry``: every bot answers with one given model."""

    def __init__(self, model: ScriptedModel):
        self.model = model

    async def aclose(self) -> None:
        return None

    def resolve(self, _settings: object) -> ResolvedModel:
        return ResolvedModel(self.model, False)
