"""Structured logs: one JSON object per line with the request id, when ``CHATWELL_LOG_FORMAT=json``.

The request id comes from a sane ``X-Request-ID`` header (a proxy's) or is generated, is echoed
in the response and attached to every log line of the request through a context variable.
Nothing here logs headers or bodies. URLs do reach the log (uvicorn's access log names every path
with its query, and the developer API takes ``?api_key=``), so every record is redacted on its way
out (:class:`SecretRedactingFilter`): values of key-, token-, secret- and password-like parameters,
Bearer/Basic credentials, chatwell keys (``cw_…``) and passwords inside URLs become ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "chatwell_request_id", default=None
)
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


REDACTED = "[redacted]"
_SECRET_NAME = (
    r"[A-Za-z0-9_.~%\-]*(?:key|token|secret|password|passwd|pwd|signature|credentials?|auth)"
)
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # ?api_key=…, &access_token=…, client_secret=… (a query, a form, a key=value log line)
    (
        re.compile(rf"(?<![A-Za-z0-9_.~%\-])({_SECRET_NAME})=[^&\s\"'#,;]*", re.IGNORECASE),
        rf"\1={REDACTED}",
    ),
    # "api_key": "…" in a JSON text
    (re.compile(rf'("{_SECRET_NAME}"\s*:\s*)"[^"]*"', re.IGNORECASE), rf'\1"{REDACTED}"'),
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE), rf"\1 {REDACTED}"),
    (
        re.compile(r"\bcw_[A-Za-z0-9_\-]{16,}"),
        f"cw_{REDACTED}",
    ),  # a whole key; display prefixes are shorter
    (re.compile(r"(://[^/\s:@]+):[^/\s@]+@"), rf"\1:{REDACTED}@"),  # https://user:password@host
)


def redact(text: str) -> str:
    """``text`` with every secret-looking value replaced by ``[redacted]``."""
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redacted(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class SecretRedactingFilter(logging.Filter):
    """Redacts a record in place: its message, its arguments (kept a tuple or mapping, so uvicorn's
    access formatter still finds its five), extra fields, and the exception and stack texts."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_chatwell_redacted", False):
            return True
        record._chatwell_redacted = True
        record.msg = _redacted(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redacted(value) for key, value in record.args.items()}
        for key, value in list(vars(record).items()):
            if key not in STANDARD_FIELDS and not key.startswith("_") and isinstance(value, str):
                setattr(record, key, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# uvicorn writes these itself (the access log holds every URL); a filter on the logger sees the
# record before any handler, also handlers of a logging configuration that is not ours.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")


def protect_server_logs() -> None:
    """Redact the records of uvicorn's own loggers too (idempotent)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretRedactingFilter) for f in logger.filters):
            logger.addFilter(SecretRedactingFilter())


def incoming_request_id(header: str | None) -> str:
    return header if header and SAFE_REQUEST_ID.match(header) else uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in STANDARD_FIELDS and key != "request_id" and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
                )
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, fmt: str) -> None:
    """Set up the root handler once (the CLI calls this; an embedding application may not)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(SecretRedactingFilter())  # every record that reaches the console
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    protect_server_logs()
