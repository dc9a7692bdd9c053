"""The rate limiter on its own: exact admission under concurrency (memory and a real Redis),
the strictest limit per window, calendar-day quotas, and what a refusal carries."""

from __future__ import annotations

import asyncio
import time

import pytest

from chatwell.errors import RateLimited, ServiceUnavailable
from chatwell.limits.service import (
    RateLimiter,
    Rule,
    daily_quota,
    parse_limits,
    rules_of,
    strictest,
)
from limits import RateLimitItemPerHour, RateLimitItemPerMinute, parse_many


async def admitted(limiter: RateLimiter, rules: list[Rule], n: int) -> int:
    async def one() -> bool:
        try:
            await limiter.admit(rules)
            return True
        except RateLimited:
            return False

    return sum(await asyncio.gather(*(one() for _ in range(n))))


async def test_memory_admits_exactly_the_limit_under_concurrency() -> None:
    limiter = RateLimiter()
    rules = rules_of(parse_limits("15/minute;120/hour"), "public", "bot", "1.2.3.4")
    assert await admitted(limiter, rules, 100) == 15
    # Another identity has its own budget.
    assert (
        await admitted(limiter, rules_of(parse_limits("15/minute"), "public", "bot", "5.6.7.8"), 20)
        == 15
    )


async def test_memory_expires_old_events_without_worker_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``limits``' own in-memory storage bisected every key's events in a thread after each hit."""
    threads: list[object] = []
    real_to_thread = asyncio.to_thread

    async def counted(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        threads.append(fn)
        return await real_to_thread(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    limiter = RateLimiter()
    rules = rules_of(parse_limits("3/second"), "public", "bot", "1.2.3.4")
    assert await admitted(limiter, rules, 5) == 3
    await asyncio.sleep(1.1)
    await limiter.admit(rules_of(parse_limits("3/second"), "public", "bot", "other"))
    await asyncio.sleep(0.05)  # the expiry pass started by that hit has run
    assert not any("1.2.3.4" in key for key in limiter.storage.events)  # the expired window is gone
    assert await admitted(limiter, rules, 5) == 3
    assert threads == []


async def test_redis_shared_by_two_limiters_admits_exactly_the_limit(redis_url: str) -> None:
    first, second = RateLimiter(redis_url), RateLimiter(redis_url)
    try:
        rules = rules_of(parse_limits("15/minute;120/hour"), "public", "bot", "ip")
        counts = await asyncio.gather(admitted(first, rules, 50), admitted(second, rules, 50))
        assert sum(counts) == 15
    finally:
        await first.aclose()
        await second.aclose()


async def test_refusal_carries_retry_after_and_the_limit() -> None:
    limiter = RateLimiter()
    rules = rules_of([RateLimitItemPerMinute(2)], "k")
    first = await limiter.admit(rules)
    assert first is not None and (first.limit, first.remaining) == (2, 1)
    assert 0 < first.reset_at - time.time() <= 61
    await limiter.admit(rules)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(rules, message="Slow down")
    assert refused.value.message == "Slow down" and refused.value.limit == 2
    assert 1 <= refused.value.retry_after <= 60


async def test_a_refused_short_window_does_not_use_up_the_long_one() -> None:
    limiter = RateLimiter()
    rules = rules_of([RateLimitItemPerHour(5), RateLimitItemPerMinute(2)], "k")
    assert await admitted(limiter, rules, 10) == 2
    hour = await limiter.moving.get_window_stats(RateLimitItemPerHour(5), "k")
    assert hour.remaining == 3


def test_strictest_limit_per_window_wins() -> None:
    items = strictest(
        [*parse_many("15/minute;120/hour"), RateLimitItemPerMinute(5), RateLimitItemPerHour(500)]
    )
    assert [(i.amount, i.get_expiry()) for i in items] == [(5, 60), (120, 3600)]


async def test_daily_quota_counts_per_utc_day() -> None:
    limiter = RateLimiter()
    quota = [daily_quota(2, "key-daily", "k1")]
    decision = await limiter.admit(quota)
    assert decision is not None and decision.reset_at % 86_400 == 0  # next UTC midnight
    await limiter.admit(quota)
    with pytest.raises(RateLimited) as refused:
        await limiter.admit(quota)
    assert refused.value.reset_at == decision.reset_at


async def test_unreachable_redis_refuses_instead_of_running_unlimited() -> None:
    from tests.services import free_port

    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ServiceUnavailable):
        await limiter.admit(rules_of([RateLimitItemPerMinute(2)], "k"))


def test_malformed_limits_are_refused_by_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from chatwell.settings import Settings

    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, public_rate_limits="lots per minute")
    assert Settings(data_dir=tmp_path, workspace_rate_limits="").workspace_rate_limits == ""
