"""Native retrieval endpoint: what a bot finds for a question (playground, debugging, RAG clients)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from chatwell.api.deps import DbDep, PrincipalDep, runtime_of
from chatwell.api.dialect import check_key_for_bot
from chatwell.services import bots

router = APIRouter(prefix="/v1/bots/{bot_id}", tags=["search"])


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, max_length=2_000)
    k: int = Field(5, ge=1, le=50)


class PassageOut(BaseModel):
    source_id: uuid.UUID
    source_type: str
    title: str
    url: str | None
    page: int | None
    heading: str
    text: str
    score: float = Field(..., description="Fused relevance in [0, 1].")
    similarity: float = Field(..., description="Cosine similarity of the passage to the query.")


class SearchOut(BaseModel):
    relevant: bool = Field(..., description="Whether anything is relevant enough to answer from.")
    data: list[PassageOut]


@router.post("/search", response_model=SearchOut)
async def search(
    bot_id: str, data: SearchIn, request: Request, principal: PrincipalDep, db: DbDep
) -> SearchOut:
    bot = await bots.get_bot(db, principal=principal, ref=bot_id)
    check_key_for_bot(request, bot, principal)
    result = await runtime_of(request).knowledge.retriever.search(
        bot_id=bot.id, query=data.query, k=data.k
    )
    return SearchOut(
        relevant=result.relevant,
        data=[
            PassageOut(
                source_id=p.source_id,
                source_type=p.source_type,
                title=p.title,
                url=p.url,
                page=p.page,
                heading=p.heading,
                text=p.text,
                score=round(p.score, 4),
                similarity=round(p.similarity, 4),
            )
            for p in result.passages
        ],
    )
