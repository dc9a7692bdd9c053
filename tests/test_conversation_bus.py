"""The conversation bus on its own: a hint reaches the listeners of its conversation only, on the
in-process bus and through a real Redis (two buses: two processes), and a Redis channel is
subscribed exactly while someone listens."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from chatwell.services.conversation_bus import REDIS_PREFIX, ConversationBus, RedisConversationBus


async def test_the_in_process_bus_reaches_the_conversations_listeners_only() -> None:
    bus = ConversationBus()
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    async with (
        bus.subscribe(ours) as first,
        bus.subscribe(ours) as second,
        bus.subscribe(theirs) as other,
    ):
        await bus.publish(ours, {"type": "message", "message_id": "m1"})
        assert await anext(first) == {"type": "message", "message_id": "m1"}
        assert await second.wait(1) is True
        assert await other.wait(0.05) is False
    await bus.publish(
        ours, {"type": "status", "status": "resolved"}
    )  # nobody listens: nothing happens
    await bus.aclose()


async def test_redis_carries_hints_between_buses_and_unsubscribes_when_nobody_listens(
    redis_url: str,
) -> None:
    listening, publishing = RedisConversationBus(redis_url), RedisConversationBus(redis_url)
    probe = Redis.from_url(redis_url)
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with listening.subscribe(ours) as hints, listening.subscribe(theirs) as other:
            assert dict(await probe.pubsub_numsub(REDIS_PREFIX + ours)) == {
                (REDIS_PREFIX + ours).encode(): 1
            }
            await publishing.publish(ours, {"type": "message", "message_id": "m1"})
            assert await asyncio.wait_for(anext(hints), 5) == {
                "type": "message",
                "message_id": "m1",
            }
            assert await other.wait(0.2) is False
        for _ in range(50):  # the unsubscription is sent in the background
            if (
                dict(await probe.pubsub_numsub(REDIS_PREFIX + ours))[(REDIS_PREFIX + ours).encode()]
                == 0
            ):
                break
            await asyncio.sleep(0.05)
        assert (
            dict(await probe.pubsub_numsub(REDIS_PREFIX + ours))[(REDIS_PREFIX + ours).encode()]
            == 0
        )
    finally:
        await probe.aclose()
        await listening.aclose()
        await publishing.aclose()
