"""Date and number parameters that doors parse by hand (query strings, dashboard forms), parsed once.

Every value outside what the server can compute with is refused here with ``InvalidRequest``
(400 in the door's own error shape): an impossible date, a year outside :data:`YEARS` (an end date
of ``9999-12-31`` plus the day it includes overflowed ``datetime``), a time zone offset that
pushes an instant out of range, a number with more digits than a column holds. Nothing here
knows about HTTP.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from chatwell.errors import InvalidRequest

YEARS = range(1900, 9000)  # wide enough for any real record, far from datetime's edges
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_WHOLE = re.compile(r"[0-9]{1,15}")  # ASCII digits only: "²" and "١٢" pass str.isdigit, not int()


def date_param(value: str | None, name: str, *, times: bool = False) -> datetime | None:
    """``value`` as an aware UTC datetime: a day ``2024-01-31`` (midnight UTC), or with ``times``
    also an ISO 8601 instant (``2024-01-31T08:00:00Z``, an offset or none for UTC). Empty: None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if _DAY.fullmatch(text):
            parsed = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        elif times and "T" in text:
            instant = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if instant.year not in YEARS:  # before converting: the offset may overflow datetime
                raise ValueError(text)
            parsed = (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).astimezone(UTC)
        else:
            raise ValueError(text)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{name} must be a date like 2024-01-31", code="invalid_date"
        ) from None
    if parsed.year not in YEARS:
        raise InvalidRequest(
            f"{name} must be a date between {YEARS.start} and {YEARS.stop - 1}", code="invalid_date"
        )
    return parsed


def whole_number(value: object, name: str = "value") -> int | None:
    """A form's whole number (ASCII digits, at most 15 of them); empty: None."""
    text = str(value or "").strip()
    if not text:
        return None
    if not _WHOLE.fullmatch(text):
        raise InvalidRequest(f"{name}: not a whole number: {text[:40]!r}")
    return int(text)
