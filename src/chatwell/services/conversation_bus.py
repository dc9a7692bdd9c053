"""Conversation notifications across API processes: "conversation X has something new".

The handoff service publishes, once the transaction that stored the change has committed, a small
hint (``{"type": "message", "message_id": ...}``, ``{"type": "status", "status": ...}``); a
listener of that conversation, in whichever process it runs (the visitor's event stream), hears
it and reads what is new from the database. Hints carry no content, so a lost one costs latency,
never data: listeners also re-read on a timer, and the widget polls when its stream fails.

Transports, one interface (``build_conversation_bus`` picks from the settings):

- ``ConversationBus``: this process only (the default: SQLite, no Redis);
- ``RedisConversationBus``: Redis pub/sub, a channel per conversation (``chatwell:conversation:{id}``),
  one pub/sub connection per process, a channel subscribed while someone here listens to it;
- ``PostgresConversationBus``: PostgreSQL ``LISTEN``/``NOTIFY`` on one channel, for PostgreSQL
  without Redis, one dedicated connection per process.

``publish`` never raises and is bounded in time: a failure is logged and the caller's request goes
on. This module opens no database transaction and knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from chatwell.errors import ServiceUnavailable
from chatwell.settings import Settings
from chatwell.storage.database import Database

log = logging.getLogger("chatwell.conversation_bus")

Payload = dict[str, Any]
PENDING_HINTS = 16  # per listener; a hint only means "read again", so extra ones are dropped
RESYNC: Payload = {"type": "resync"}  # after a transport reconnects: hints may have been lost
REDIS_PREFIX = "chatwell:conversation:"
POSTGRES_CHANNEL = "chatwell_conversations"
PUBLISH_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 5.0
RECONNECT_SECONDS = 1.0


class Subscription:
    """One listener's hints about one conversation. Listening starts on entering it::

    async with bus.subscribe(conversation_id) as hints:
        async for payload in hints: ...      # or: await hints.wait(timeout)
    """

    def __init__(self, bus: ConversationBus, conversation_id: str) -> None:
        self.bus = bus
        self.conversation_id = conversation_id
        self._hints: asyncio.Queue[Payload] = asyncio.Queue(PENDING_HINTS)

    async def __aenter__(self) -> Subscription:
        await self.bus._attach(self)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.bus._detach(self)  # synchronous: it must also run inside a cancelled task

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Payload:
        return await self._hints.get()

    async def take(self, timeout: float) -> list[Payload]:
        """Wait up to ``timeout`` seconds for hints; returns every hint queued by then (empty: none)."""
        try:
            taken = [await asyncio.wait_for(self._hints.get(), timeout)]
        except TimeoutError:
            return []
        while not self._hints.empty():
            taken.append(self._hints.get_nowait())
        return taken

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a hint; hints already queued are taken as one."""
        try:
            await asyncio.wait_for(self._hints.get(), timeout)
        except TimeoutError:
            return False
        while not self._hints.empty():
            self._hints.get_nowait()
        return True

    def deliver(self, payload: Payload) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._hints.put_nowait(payload)


class ConversationBus:
    """The listeners of this process, by conversation: the in-process bus, and the delivering half
    of the cross-process ones (which override ``_send``, ``_listen`` and ``_unlisten``)."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[Subscription]] = {}

    def subscribe(self, conversation_id: uuid.UUID | str) -> Subscription:
        return Subscription(self, str(conversation_id))

    async def publish(self, conversation_id: uuid.UUID | str, payload: Payload) -> None:
        """Tell every listener of the conversation, in every process. Never raises."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await self._send(str(conversation_id), payload)
        except Exception:  # the listeners catch up by re-reading; the publisher's request goes on
            log.warning(
                "could not publish a notification for conversation %s",
                conversation_id,
                exc_info=True,
            )

    async def aclose(self) -> None:
        self._listeners.clear()

    async def _send(self, key: str, payload: Payload) -> None:
        self._deliver(key, payload)

    async def _listen(self, key: str) -> None:
        """Start hearing ``key`` from other processes (its first listener here arrived)."""

    def _unlisten(self, key: str) -> None:
        """Stop hearing ``key`` (its last listener here left); must not block."""

    def _deliver(self, key: str, payload: Payload) -> None:
        for subscription in list(self._listeners.get(key, ())):
            subscription.deliver(payload)

    def _deliver_to_all(self, payload: Payload) -> None:
        for key in list(self._listeners):
            self._deliver(key, payload)

    async def _attach(self, subscription: Subscription) -> None:
        key = subscription.conversation_id
        first = key not in self._listeners
        self._listeners.setdefault(key, set()).add(subscription)
        if not first:
            return
        try:
            await self._listen(key)
        except BaseException:  # nothing to stop listening to
            self._listeners[key].discard(subscription)
            if not self._listeners[key]:
                del self._listeners[key]
            raise

    def _detach(self, subscription: Subscription) -> None:
        key = subscription.conversation_id
        listeners = self._listeners.get(key)
        if listeners is None or subscription not in listeners:
            return
        listeners.discard(subscription)
        if not listeners:
            del self._listeners[key]
            self._unlisten(key)


def _unavailable(transport: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"live updates are unavailable ({transport} cannot be reached); poll instead",
        code="live_updates_unavailable",
        retry_after=30,
    )


class RedisConversationBus(ConversationBus):
    """Redis pub/sub: every process hears the channels of the conversations it has listeners of."""

    def __init__(self, url: str) -> None:
        super().__init__()
        from redis.asyncio import Redis

        self._redis = Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, health_check_interval=30
        )
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._reader: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[None]] = set()

    async def _send(self, key: str, payload: Payload) -> None:
        await self._redis.publish(REDIS_PREFIX + key, json.dumps(payload))

    async def _listen(self, key: str) -> None:
        try:
            await self._pubsub.subscribe(REDIS_PREFIX + key)
        except Exception as exc:
            raise _unavailable("Redis") from exc
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="chatwell-conversation-bus")

    def _unlisten(self, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._unsubscribe(key))
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _unsubscribe(self, key: str) -> None:
        if key in self._listeners:  # a new listener came back meanwhile
            return
        try:
            await self._pubsub.unsubscribe(REDIS_PREFIX + key)
        except Exception:
            log.warning("could not unsubscribe from conversation %s", key, exc_info=True)

    async def _read(self) -> None:
        lost = False
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # redis-py reconnects and subscribes again on the next read
                if not lost:
                    log.warning("lost the Redis pub/sub connection; reconnecting", exc_info=True)
                lost = True
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            if lost:
                lost = False
                self._deliver_to_all(RESYNC)
            if not message or message.get("type") != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            with contextlib.suppress(ValueError):
                payload = json.loads(message["data"])
                self._deliver(
                    channel.removeprefix(REDIS_PREFIX), payload if isinstance(payload, dict) else {}
                )

    async def aclose(self) -> None:
        await super().aclose()
        for task in [self._reader, *self._chores]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self._redis.aclose()


class PostgresConversationBus(ConversationBus):
    """PostgreSQL LISTEN/NOTIFY on one channel for every conversation (hints are rare: agents'
    replies and handoff changes), on one connection of its own per process."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn
        self._connection: Any = None  # asyncpg.Connection
        self._lock = asyncio.Lock()  # one connection runs one statement at a time
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    async def _send(self, key: str, payload: Payload) -> None:
        async with self._lock:
            connection = await self._connected()
            await connection.execute(
                "SELECT pg_notify($1, $2)",
                POSTGRES_CHANNEL,
                json.dumps({**payload, "conversation_id": key}),
            )

    async def _listen(self, key: str) -> None:
        try:
            async with self._lock:
                await self._connected()
        except Exception as exc:
            raise _unavailable("PostgreSQL") from exc

    async def _connected(self) -> Any:
        """The listening connection, (re)opened when needed; call it with the lock held."""
        if self._connection is None or self._connection.is_closed():
            import asyncpg

            connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_SECONDS)
            await connection.add_listener(POSTGRES_CHANNEL, self._on_notify)
            connection.add_termination_listener(self._on_lost)
            self._connection = connection
        return self._connection

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, message: str) -> None:
        try:
            payload = json.loads(message)
            key = str(payload.pop("conversation_id"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        self._deliver(key, payload)

    def _on_lost(self, _connection: Any) -> None:
        if self._closed or not self._listeners:
            return
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Listen again once the server is back, and have every listener re-read."""
        while not self._closed and self._listeners:
            try:
                async with self._lock:
                    await self._connected()
            except Exception:
                await asyncio.sleep(RECONNECT_SECONDS)
                continue
            self._deliver_to_all(RESYNC)
            return

    async def aclose(self) -> None:
        self._closed = True
        await super().aclose()
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnecting
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close(timeout=CONNECT_TIMEOUT_SECONDS)


def build_conversation_bus(settings: Settings, db: Database) -> ConversationBus:
    """Redis when the server has one, else PostgreSQL's LISTEN/NOTIFY on PostgreSQL, else this
    process only (SQLite: one process, or the listeners' periodic re-read across several)."""
    if settings.redis_url:
        return RedisConversationBus(settings.redis_url)
    if db.is_postgres:
        return PostgresConversationBus(
            db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
    return ConversationBus()
