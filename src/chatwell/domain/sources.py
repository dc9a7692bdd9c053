"""Source input schemas: what a caller sends to add knowledge to a bot."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 500_000
# A URL source's re-sync schedules (``UrlSourceIn.resync``).
RESYNC_EVERY = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


class _SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextSourceIn(_SourceIn):
    type: Literal["text"]
    title: str = Field("", max_length=500)
    text: str = Field(..., min_length=1, max_length=MAX_TEXT_CHARS)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be blank")
        return value


class QASourceIn(_SourceIn):
    type: Literal["qa"]
    question: str = Field(..., min_length=1, max_length=2_000)
    answer: str = Field(..., min_length=1, max_length=50_000)


class UrlSourceIn(_SourceIn):
    type: Literal["url"]
    url: str = Field(..., min_length=8, max_length=2_000, pattern=r"^(?i:https?)://\S+$")
    title: str | None = Field(None, max_length=500)
    crawl: bool = False
    max_pages: int = Field(50, ge=1, le=5_000)
    max_depth: int = Field(2, ge=0, le=10)
    include: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list,
        max_length=50,
        description="A crawl takes only paths matching one of these (``/docs/*``; no ``*``: "
        "paths starting so).",
    )
    exclude: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=50, description="A crawl skips paths matching these."
    )
    resync: Literal["daily", "weekly"] | None = Field(
        None, description="Fetch (and re-crawl) the source again on this schedule."
    )

    @field_validator("include", "exclude")
    @classmethod
    def _path_patterns(cls, value: list[str]) -> list[str]:
        patterns = [pattern.strip() for pattern in value if pattern.strip()]
        for pattern in patterns:
            if not pattern.startswith(("/", "*")):
                raise ValueError(f"{pattern!r}: a path pattern starts with / or * (e.g. /docs/*)")
        return patterns


SourceIn = Annotated[TextSourceIn | QASourceIn | UrlSourceIn, Field(discriminator="type")]
