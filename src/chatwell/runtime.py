"""What a running server holds, in one typed object: ``app.state.runtime``.

``create_app`` makes it with the parts that need no I/O; the lifespan fills in the rest (the
database, the chat engine, the workers) before the first request. Doors reach it through
``chatwell.api.deps`` (``RuntimeDep``, ``runtime_of``), never through other ``app.state`` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from chatwell.api.errors import ErrorFormats
from chatwell.api.sse import StreamSlots
from chatwell.api.turn_stops import TurnStops
from chatwell.chat.uploads import Uploads
from chatwell.observability.metrics import Metrics
from chatwell.observability.tracing import Tracing
from chatwell.settings import Settings

if TYPE_CHECKING:
    from chatwell.chat.service import ChatService
    from chatwell.knowledge import Knowledge
    from chatwell.limits.policies import ChatLimits
    from chatwell.services.conversation_bus import ConversationBus
    from chatwell.services.notifications import EmailWorker
    from chatwell.services.recaptcha import RecaptchaVerifier
    from chatwell.services.webhooks import WebhookWorker
    from chatwell.storage.database import Database


class Ingestion(Protocol):
    """This process's ingestion: the in-process worker or the procrastinate queue."""

    def wake(self) -> None: ...


@dataclass(eq=False)
class Runtime:
    settings: Settings
    metrics: Metrics
    error_formats: ErrorFormats
    event_streams: StreamSlots
    tracing: Tracing | None = None
    turn_stops: TurnStops = field(default_factory=TurnStops)  # Dify's and Flowise's stop buttons
    uploads: Uploads = field(default_factory=Uploads)  # Dify's uploaded images
    dashboard_key: bytes | None = None  # the dashboard's signing key, read once
    # Set by the lifespan, before the first request.
    db: Database = field(init=False)
    limits: ChatLimits = field(init=False)
    bus: ConversationBus = field(init=False)
    webhooks: WebhookWorker = field(init=False)
    emails: EmailWorker = field(init=False)
    knowledge: Knowledge = field(init=False)
    chat: ChatService = field(init=False)
    ingestion: Ingestion | None = None
    recaptcha: RecaptchaVerifier | None = None
