"""Keyset pagination over UUIDv7 ids (which sort by creation time), newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select

from chatwell.errors import InvalidRequest

T = TypeVar("T")
MAX_LIMIT = 100


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def parse_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None or cursor == "":
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise InvalidRequest(
            "cursor is not valid; pass next_cursor from the previous page", code="invalid_cursor"
        ) from None


def paginate(query: Select[Any], id_column: Any, *, limit: int, cursor: str | None) -> Select[Any]:
    """Restrict ``query`` to one page (plus one row to know whether more follow)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}", code="invalid_limit")
    after = parse_cursor(cursor)
    if after is not None:
        query = query.where(id_column < after)
    return query.order_by(id_column.desc()).limit(limit + 1)


def page_of(rows: list[T], limit: int, id_of: Any) -> Page[T]:
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, str(id_of(rows[-1])))
    return Page(rows, None)
