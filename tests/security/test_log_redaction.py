"""No key reaches the log (issue 19 item 5): ``?api_key=`` (documented by the developer API) and
every other key-, token- or secret-like query value is redacted in every log line, uvicorn's
access log included. The server runs as ``chatwell serve`` (real uvicorn) and its real output is
read; a uvicorn logging configuration that is not ours is checked too.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.config import LOGGING_CONFIG

from tests.conftest import ADMIN_KEY

OTHER_SECRET = "cw_Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTBhYmNk"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_access_log_of_a_running_server_never_holds_a_key(
    live_server: Any, tmp_path: Path, log_format: str
) -> None:
    chatwell = str(Path(sys.executable).parent / "chatwell")
    base = live_server.start_process(
        [chatwell, "serve", "--port", "{port}", "--data-dir", str(tmp_path / "d")],
        env={"CHATWELL_ADMIN_KEY": ADMIN_KEY, "CHATWELL_LOG_FORMAT": log_format},
        timeout=120,
    )
    with httpx.Client(base_url=base, timeout=30) as client:
        usage = client.get(
            "/api/v1/usage", params={"api_key": ADMIN_KEY, "start_date": "2024-01-01"}
        )
        assert usage.status_code == 200, usage.text
        client.get("/api/v1/sessions", params={"api_key": OTHER_SECRET, "page": 1})
        client.get(
            "/v1/bots", params={"access_token": OTHER_SECRET, "client_secret": "s3cr3t-value"}
        )
        client.get("/healthz", params={"last": "1"})
    deadline = time.monotonic() + 10
    while "/healthz?last=1" not in (log := live_server.log(base)) and time.monotonic() < deadline:
        time.sleep(0.1)  # the access line is written as the response goes out
    for secret in (ADMIN_KEY, OTHER_SECRET, "s3cr3t-value"):
        assert secret not in log, [line for line in log.splitlines() if secret in line]
    access = [line for line in log.splitlines() if "/api/v1/usage" in line]
    assert access and all(
        "api_key=[redacted]" in line and "start_date=2024-01-01" in line for line in access
    ), access
    assert any("/api/v1/sessions?api_key=[redacted]&page=1" in line for line in log.splitlines())
    assert any(
        "access_token=[redacted]&client_secret=[redacted]" in line for line in log.splitlines()
    )
    if log_format == "json":
        entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert any(
            e["logger"] == "uvicorn.access" and "api_key=[redacted]" in e["message"]
            for e in entries
        )


def test_uvicorn_default_logging_configuration_is_redacted_too() -> None:
    """Run under plain ``uvicorn --factory chatwell.app:create_app``: uvicorn's own handler on its
    access logger (not ours) still gets the redacted record, formatted by its AccessFormatter."""
    from chatwell.observability.logs import SecretRedactingFilter, protect_server_logs

    config = json.loads(json.dumps(LOGGING_CONFIG))
    stream = io.StringIO()
    logging.config.dictConfig(config)
    access = logging.getLogger("uvicorn.access")
    saved = access.handlers[:]
    try:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.getLogger("uvicorn.access").handlers[0].formatter)
        access.handlers = [handler]
        protect_server_logs()
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            f"/api/v1/usage?api_key={ADMIN_KEY}&token={OTHER_SECRET}",
            "1.1",
            200,
        )
        access.error(
            "boom at /x?password=hunter2-hunter2",
            exc_info=(ValueError, ValueError(f"key {OTHER_SECRET}"), None),
        )
    finally:
        access.handlers = saved
        access.filters = [f for f in access.filters if not isinstance(f, SecretRedactingFilter)]
    text = stream.getvalue()
    assert ADMIN_KEY not in text and OTHER_SECRET not in text and "hunter2" not in text, text
    assert "/api/v1/usage?api_key=[redacted]&token=[redacted]" in text and " 200" in text
