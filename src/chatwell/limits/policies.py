"""Which limits a chat request counts against; every dialect asks here, none decides itself.

- public (keyless) chat: per client IP and bot, the server's ``public_rate_limits`` (15/minute,
  120/hour) and the bot's own ``rate_limits``, the strictest per window winning;
- keyed chat: per key and bot, ``api_rate_limits`` and the bot's ``rate_limits``, plus the key's
  ``daily_message_limit`` (a UTC-day quota);
- both: the workspace's ``workspace_rate_limits`` when set;
- public history polling: per client IP, ``history_rate_limits``;
- failed authentications (a key presented and refused), ``auth_failure_rate_limits``, counted twice:
  per client IP and presented key (a fingerprint of it), and per client IP. A key that failed that
  often from an address is refused (429) there before it is looked up; past the address's count
  every *refused* key from it gets 429 instead of 401. A valid key is never refused for the failures
  of other keys: one client retrying a stale key does not lock its whole office out. (Guessing a
  256-bit key is hopeless whatever the throttle; it exists to make a misbehaving client back off.)
"""

from __future__ import annotations

import hashlib
import time

from chatwell.domain.auth import Principal
from chatwell.domain.models import RateLimits
from chatwell.errors import RateLimited, ServiceUnavailable
from chatwell.limits.service import (
    Decision,
    RateLimiter,
    Rule,
    daily_quota,
    parse_limits,
    rules_of,
    strictest,
)
from chatwell.settings import Settings
from chatwell.storage.tables import Bot
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute


def bot_limit_items(bot: Bot) -> list[RateLimitItem]:
    limits = RateLimits.model_validate(bot.rate_limits or {})
    items: list[RateLimitItem] = []
    if limits.per_minute:
        items.append(RateLimitItemPerMinute(limits.per_minute))
    if limits.per_hour:
        items.append(RateLimitItemPerHour(limits.per_hour))
    if limits.per_day:
        items.append(RateLimitItemPerDay(limits.per_day))
    return items


def _bot_message(bot: Bot) -> str | None:
    return RateLimits.model_validate(bot.rate_limits or {}).message


class ChatLimits:
    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.limiter = limiter
        self.public = parse_limits(settings.public_rate_limits)
        self.api = parse_limits(settings.api_rate_limits)
        self.history_items = parse_limits(settings.history_rate_limits)
        self.workspace = parse_limits(settings.workspace_rate_limits)
        self.auth_failures = parse_limits(settings.auth_failure_rate_limits)

    def _workspace_rules(self, bot: Bot) -> list[Rule]:
        return rules_of(self.workspace, "workspace", str(bot.workspace_id))

    async def public_chat(self, bot: Bot, client_ip: str | None) -> Decision | None:
        items = strictest([*self.public, *bot_limit_items(bot)])
        rules = rules_of(items, "public", str(bot.id), client_ip) + self._workspace_rules(bot)
        return await self.limiter.admit(rules, message=_bot_message(bot))

    async def keyed_chat(self, bot: Bot, principal: Principal) -> Decision | None:
        items = strictest([*self.api, *bot_limit_items(bot)])
        rules = rules_of(items, "key", str(principal.key_id), str(bot.id)) + self._workspace_rules(
            bot
        )
        if principal.daily_message_limit is not None:
            rules.append(
                daily_quota(principal.daily_message_limit, "key-daily", str(principal.key_id))
            )
        return await self.limiter.admit(rules, message=_bot_message(bot))

    async def keyed_figures(self, principal: Principal, bot: Bot | None) -> Decision | None:
        """What ``keyed_chat`` would report for this key and bot, without counting a request (the
        OpenAI doors' reads send the figures too). Without a bot (a list of models): the key's
        quotas that hold for every bot, or else the per-bot limit as a bot untouched has it."""
        workspace = rules_of(self.workspace, "workspace", str(principal.workspace_id))
        daily = (
            [daily_quota(principal.daily_message_limit, "key-daily", str(principal.key_id))]
            if principal.daily_message_limit is not None
            else []
        )
        if bot is not None:
            items = strictest([*self.api, *bot_limit_items(bot)])
            return await self.limiter.peek(
                rules_of(items, "key", str(principal.key_id), str(bot.id)) + workspace + daily
            )
        shared = await self.limiter.peek(workspace + daily)
        if shared is not None or not self.api:
            return shared
        item = min(strictest(self.api), key=lambda i: i.amount)
        return Decision(item.amount, item.amount, int(time.time()))

    async def history(self, client_ip: str | None) -> Decision | None:
        return await self.limiter.admit(rules_of(self.history_items, "history", client_ip))

    async def refuse_throttled_key(self, client_ip: str | None, secret: str) -> None:
        """Refuse a key that itself failed too often from this address (before it is looked up)."""
        await self.limiter.refuse_if_full(
            rules_of(self.auth_failures, "auth-fail-key", client_ip, key_fingerprint(secret)),
            message=AUTH_FAILURES_MESSAGE,
        )

    async def count_auth_failure(self, client_ip: str | None, secret: str) -> None:
        """Count a refused key against itself and its address. Raises ``RateLimited`` when the
        address is past its failures: the refusal then is a 429 instead of a 401."""
        try:
            try:
                await self.limiter.admit(
                    rules_of(
                        self.auth_failures, "auth-fail-key", client_ip, key_fingerprint(secret)
                    ),
                    message=AUTH_FAILURES_MESSAGE,
                )
            except RateLimited:
                pass  # this failure filled the key's window: its next attempt is refused
            await self.limiter.admit(
                rules_of(self.auth_failures, "auth-fail", client_ip), message=AUTH_FAILURES_MESSAGE
            )
        except ServiceUnavailable:  # the storage is down: the caller still gets its 401
            pass


def key_fingerprint(secret: str) -> str:
    """Which key a failure counts against: 16 hex digits of its SHA-256, so the limits storage
    (Redis) never holds any part of a presented key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:16]


AUTH_FAILURES_MESSAGE = (
    "Too many failed authentications from this address. Wait before trying again."
)
