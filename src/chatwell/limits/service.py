"""Rate limits and quotas on the ``limits`` library: in memory by default, in Redis when
``CHATWELL_REDIS_URL`` is set (then every process sharing that Redis shares the counters).

A request passes a list of rules (a limit and the identity it counts, e.g. ``("public", bot, ip)``).
Rules are hit shortest window first, stopping at the first one that is full, so a refused request
does not use up the longer windows; every hit is atomic in the storage (a Lua script in Redis, a
lock in memory), so N concurrent requests against a limit of L admit exactly L.

Minute and hour limits use a moving window; daily quotas (a key's ``daily_message_limit``) count
per UTC calendar day and reset at midnight UTC.
"""

from __future__ import annotations

import bisect
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

from chatwell.errors import InvalidRequest, RateLimited, ServiceUnavailable
from limits import RateLimitItem, RateLimitItemPerDay, parse_many

log = logging.getLogger("chatwell.limits")


def parse_limits(text: str | None) -> list[RateLimitItem]:
    """``"15/minute;120/hour"`` → limit items; empty → none. Raises ValueError when malformed."""
    if not text or not text.strip():
        return []
    return list(parse_many(text))


@dataclass(frozen=True, slots=True)
class Rule:
    """One limit counted for one identity (its parts joined into the storage key)."""

    item: RateLimitItem
    identity: tuple[str, ...]
    daily: bool = False  # a calendar-day quota instead of a moving window

    @property
    def window_seconds(self) -> int:
        return self.item.get_expiry()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of admitting one request: the tightest rule's figures, for X-RateLimit headers."""

    limit: int
    remaining: int
    reset_at: int  # unix seconds

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }


def strictest(items: Sequence[RateLimitItem]) -> list[RateLimitItem]:
    """One item per window length, the lowest amount (the most restrictive limit wins)."""
    by_window: dict[int, RateLimitItem] = {}
    for item in items:
        current = by_window.get(item.get_expiry())
        if current is None or item.amount < current.amount:
            by_window[item.get_expiry()] = item
    return [by_window[w] for w in sorted(by_window)]


def _day_key(now: datetime) -> tuple[str, int]:
    """Today's UTC date and the unix time of the next midnight."""
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return now.strftime("%Y-%m-%d"), int(midnight.timestamp())


class InlineExpiryMemoryStorage(MemoryStorage):
    """``limits``' in-memory storage, whose expiry pass (started after every hit) bisected each
    key's events in a worker thread: a thread hop, and a wait for the GIL, on every request of
    the embedded default. The same pass without the thread (a bisect takes microseconds)."""

    async def _MemoryStorage__expire_events(
        self,
    ) -> None:  # overrides the name-mangled private pass
        now = time.time()
        for key in list(self.events):
            async with self.locks[key]:
                events = self.events.get(key)
                if events:
                    self.events[key] = events[
                        : bisect.bisect_left(events, -now, key=lambda e: -e.expiry)
                    ]
                if not self.events.get(key):
                    self.events.pop(key, None)
                    self.locks.pop(key, None)
        for key in list(self.expirations):
            if self.expirations[key] <= time.time():
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, fail_open: bool = False) -> None:
        self.storage: Storage
        self._pool: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            plain = redis_url.removeprefix("async+")
            # Our own pool, so shutdown can close its connections.
            self._pool = aioredis.ConnectionPool.from_url(
                plain, socket_connect_timeout=2, socket_timeout=5
            )
            self.storage = RedisStorage(
                "async+" + plain,
                implementation="redispy",
                wrap_exceptions=True,
                connection_pool=self._pool,
            )
        else:
            self.storage = InlineExpiryMemoryStorage()
        self.moving = MovingWindowRateLimiter(self.storage)
        self.fixed = FixedWindowRateLimiter(self.storage)
        self.shared = bool(redis_url)
        self.fail_open = (
            fail_open  # when the storage is down: admit unlimited (True) or refuse (False)
        )
        self.metrics: Any = None  # chatwell.observability.metrics.Metrics, when the app has one

    async def admit(self, rules: Sequence[Rule], *, message: str | None = None) -> Decision | None:
        """Count one request against every rule, or raise ``RateLimited`` when one is full.

        Returns the figures of the rule with the fewest requests left (None when no rule applies).
        """
        if not rules:
            return None
        ordered = sorted(rules, key=lambda r: (r.window_seconds, r.item.amount))
        decisions: list[Decision] = []
        try:
            for rule in ordered:
                limiter, identity, reset_hint = self._resolve(rule)
                if not await limiter.hit(rule.item, *identity):
                    raise await self._refusal(rule, message)
                stats = await limiter.get_window_stats(rule.item, *identity)
                decisions.append(
                    Decision(
                        rule.item.amount,
                        max(0, stats.remaining),
                        reset_hint or math.ceil(stats.reset_time),
                    )
                )
        except RateLimited:
            raise
        except (
            Exception
        ) as exc:  # the limits storage (Redis) is down: refuse, or admit when so configured
            log.error("rate-limit storage failed: %s", type(exc).__name__)
            if self.fail_open:
                return None
            raise ServiceUnavailable(
                "rate limiting is unavailable; try again shortly", code="rate_limiter_unavailable"
            ) from None
        return min(decisions, key=lambda d: (d.remaining, -d.reset_at))

    async def peek(self, rules: Sequence[Rule]) -> Decision | None:
        """The figures ``admit`` would report for ``rules``, without counting a request (None when
        no rule applies, or the storage is down: a read is not refused for its headers)."""
        decisions: list[Decision] = []
        try:
            for rule in rules:
                limiter, identity, reset_hint = self._resolve(rule)
                stats = await limiter.get_window_stats(rule.item, *identity)
                decisions.append(
                    Decision(
                        rule.item.amount,
                        max(0, stats.remaining),
                        reset_hint or math.ceil(stats.reset_time),
                    )
                )
        except Exception as exc:
            log.error("rate-limit storage failed: %s", type(exc).__name__)
            return None
        return min(decisions, key=lambda d: (d.remaining, -d.reset_at)) if decisions else None

    async def refuse_if_full(self, rules: Sequence[Rule], *, message: str | None = None) -> None:
        """Raise ``RateLimited`` when one of ``rules`` is full, without counting this request.

        For limits that count only some outcomes (failed authentications): every request is
        checked, only the counted outcome hits. A failing storage lets the request through (logged):
        refusing would lock every key out of every endpoint while Redis is down.
        """
        try:
            for rule in rules:
                limiter, identity, _ = self._resolve(rule)
                if not await limiter.test(rule.item, *identity):
                    raise await self._refusal(rule, message)
        except RateLimited:
            raise
        except Exception as exc:
            log.error("rate-limit storage failed: %s", type(exc).__name__)

    async def clear(self, rules: Sequence[Rule]) -> None:
        """Forget what ``rules`` counted (a sign-in that succeeded ends its backoff). A failing
        storage is logged, not raised: the counts then simply run out."""
        try:
            for rule in rules:
                limiter, identity, _ = self._resolve(rule)
                await limiter.clear(rule.item, *identity)
        except Exception as exc:
            log.error("rate-limit storage failed: %s", type(exc).__name__)

    async def _refusal(self, rule: Rule, message: str | None) -> RateLimited:
        if self.metrics is not None:
            self.metrics.rate_limited.labels(rule.identity[0] if rule.identity else "other").inc()
        limiter, identity, reset_hint = self._resolve(rule)
        stats = await limiter.get_window_stats(rule.item, *identity)
        reset_time = reset_hint or stats.reset_time
        return RateLimited(
            message
            or f"Rate limit exceeded ({rule.item.amount} per "
            f"{_window_name(rule.item)}). Please wait before sending another message.",
            retry_after=max(1, math.ceil(reset_time - time.time())),
            limit=rule.item.amount,
            reset_at=math.ceil(reset_time),
        )

    def _resolve(
        self, rule: Rule
    ) -> tuple[MovingWindowRateLimiter | FixedWindowRateLimiter, tuple[str, ...], int]:
        if rule.daily:
            day, reset_at = _day_key(datetime.now(UTC))
            return self.fixed, (*rule.identity, day), reset_at
        return self.moving, rule.identity, 0

    async def reset(self) -> None:
        await self.storage.reset()

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()


def _window_name(item: RateLimitItem) -> str:
    name = item.GRANULARITY.name
    return name if item.multiples == 1 else f"{item.multiples} {name}s"


def daily_quota(amount: int, *identity: str) -> Rule:
    return Rule(RateLimitItemPerDay(amount), tuple(identity), daily=True)


UNKNOWN = (
    "unknown"  # an identity part nobody told us (a client without an address): counted together
)


def rules_of(items: Sequence[RateLimitItem], *identity: str | None) -> list[Rule]:
    key = tuple(part if part is not None else UNKNOWN for part in identity)
    return [Rule(item, key) for item in items]


def checked_limits(text: str, setting: str) -> list[RateLimitItem]:
    try:
        return parse_limits(text)
    except ValueError:
        raise InvalidRequest(f"{setting} is not a valid rate-limit string: {text!r}") from None
