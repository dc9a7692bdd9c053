"""Source input schemas: what a caller sends to add knowledge to a bot."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 500_000


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


SourceIn = Annotated[TextSourceIn | QASourceIn | UrlSourceIn, Field(discriminator="type")]
