"""Structured logs: one JSON object per line with the request id, when ``CHATWELL_LOG_FORMAT=json``.

The request id comes from a sane ``X-Request-ID`` header (a proxy's) or is generated, is echoed
in the response and attached to every log line of the request through a context variable.
Nothing here logs headers or bodies, so keys and secrets never reach the log.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("chatwell_request_id", default=None)
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def incoming_request_id(header: str | None) -> str:
    return header if header and SAFE_REQUEST_ID.match(header) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in STANDARD_FIELDS and key != "request_id" and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """Set up the root handler once (the CLI calls this; an embedding application may not)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
