"""An agent's reply reaches a visitor whose event stream is open on another API process, within
seconds (each stream re-reads the database only every 15 s, so only the bus is this fast):

- two ``chatwell serve`` processes on one PostgreSQL and one Redis (Redis pub/sub);
- two servers on one PostgreSQL without Redis (LISTEN/NOTIFY).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatwell.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.helpers import build_app
from tests.widget.test_handoff_push import GENEROUS, assert_reply_is_pushed, listen, start_handoff

pytestmark = pytest.mark.slow


@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def test_redis_carries_a_reply_to_a_visitor_on_another_process(
    live_server: Any,
    postgres_url: str,
    redis_url: str,
    tmp_path: Path,
    cleanup: contextlib.ExitStack,
) -> None:
    chatwell = str(Path(sys.executable).parent / "chatwell")
    env = {
        "CHATWELL_ADMIN_KEY": ADMIN_KEY,
        "CHATWELL_DATABASE_URL": postgres_url,
        "CHATWELL_REDIS_URL": redis_url,
        "CHATWELL_HISTORY_RATE_LIMITS": GENEROUS,
    }
    visitor_side, agent_side = (
        live_server.start_process(
            [
                chatwell,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--data-dir",
                str(tmp_path / name),
            ],
            env=env,
            timeout=120,
        )
        for name in ("a", "b")
    )
    chat = start_handoff(visitor_side, agent_side, cleanup)
    with listen(visitor_side, chat.conversation_id, chat.session_id, after=chat.last_id) as frames:
        assert_reply_is_pushed(chat, frames)


@pytest.mark.parametrize("backend", ["postgres"])
def test_listen_notify_carries_a_reply_without_redis(
    make_settings: Callable[..., Settings], live_server: Any, cleanup: contextlib.ExitStack
) -> None:
    visitor_side, agent_side = (
        live_server.start(
            build_app(
                make_settings(
                    data_dir=make_settings().data_dir / name, history_rate_limits=GENEROUS
                ),
                announce=lambda _: None,
            )
        )
        for name in ("a", "b")
    )
    chat = start_handoff(visitor_side, agent_side, cleanup)
    with listen(visitor_side, chat.conversation_id, chat.session_id, after=chat.last_id) as frames:
        assert_reply_is_pushed(chat, frames)
