"""The shared leaky bucket on real Redis.

The scripts take the time from Redis, so the tests bound every expected wait by Redis ``TIME``
read just before and after the calls: the answer must equal the value computed from level and
leak rate, give or take the leak during those few milliseconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from rappit.kit.ratelimit import (
    RateLimitTimeout,
    SharedCostBucket,
    SharedLeakyBucket,
)
from rappit.queues.connection import create_client

SHOP = "acme.myshopify.com"
OTHER_SHOP = "globex.myshopify.com"
SLACK = 0.005  # seconds: what the test's own Redis round trips may add
EPSILON = 1e-6  # float rounding in the scripts


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = create_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"test-ratelimit-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=10_000)]
    if keys:
        await redis.delete(*keys)


async def redis_now(redis: aioredis.Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds) + float(micros) / 1_000_000


async def test_burst_beyond_capacity_waits_exactly_for_the_leak(
    redis: aioredis.Redis, prefix: str
) -> None:
    bucket = SharedLeakyBucket(redis, prefix, margin=2)
    await bucket.observe(SHOP, used=0, capacity=40)  # Standard plan: leaks 2/s

    started = await redis_now(redis)
    taken = [await bucket.try_acquire(SHOP) for _ in range(38)]
    assert taken == [0.0] * 38  # 40 - margin 2

    wait = await bucket.try_acquire(SHOP)
    after = await redis_now(redis)
    # Level 38 less what leaked since the first slot was taken; the next one fits at level 37:
    # 1 slot / 2 per s = 0.5 s, less the time since the first slot (at most after - started).
    assert 0.5 - (after - started) - EPSILON <= wait <= 0.5 + EPSILON
    assert wait == pytest.approx(0.5, abs=SLACK + (after - started))

    # Being told to wait takes nothing: the level only drains.
    state = await bucket.state(SHOP)
    now = await redis_now(redis)
    assert 38 - 2 * (now - started) - EPSILON <= state.level < 38
    second = await bucket.try_acquire(SHOP)
    assert second <= wait

    await asyncio.sleep(second + 0.01)
    assert await bucket.try_acquire(SHOP) == 0.0


async def test_wait_is_computed_from_level_cost_and_leak(
    redis: aioredis.Redis, prefix: str
) -> None:
    bucket = SharedLeakyBucket(redis, prefix, margin=2)
    # A size that is no Shopify plan leaks at size / 20.
    await bucket.observe(SHOP, used=0, capacity=100)
    assert (await bucket.state(SHOP)).leak_rate == 5.0

    started = await redis_now(redis)
    assert await bucket.try_acquire(SHOP, cost=50) == 0.0
    wait = await bucket.try_acquire(SHOP, cost=50)
    after = await redis_now(redis)
    # Level 50 (less its leak) + 50 must come down to 100 - margin 2: (50 + 50 - 98) / 5 / s.
    assert 0.4 - (after - started) - EPSILON <= wait <= 0.4 + EPSILON
    assert wait == pytest.approx(0.4, abs=SLACK + (after - started))


async def test_observe_adopts_the_reported_header(redis: aioredis.Redis, prefix: str) -> None:
    bucket = SharedLeakyBucket(redis, prefix, margin=2)
    state = await bucket.state(SHOP)
    assert not state.stored
    assert (state.capacity, state.leak_rate) == (40, 2)  # the smallest plan until told

    observed = await redis_now(redis)
    await bucket.observe(SHOP, used=30, capacity=40)
    state = await bucket.state(SHOP)
    assert state.stored
    assert 30 - 2 * (await redis_now(redis) - observed) - EPSILON <= state.level <= 30 + EPSILON
    assert (state.capacity, state.leak_rate) == (40, 2)
    # Room for 8 more (30 + 8 = 40 - margin; a slot or more may have leaked meanwhile), then a
    # wait of at most 1 slot / 2 per s.
    assert [await bucket.try_acquire(SHOP) for _ in range(8)] == [0.0] * 8
    wait = await bucket.try_acquire(SHOP)
    since = await redis_now(redis) - observed
    assert 0.5 - since - EPSILON <= wait <= 0.5 + EPSILON

    # An Advanced plan reported: capacity 80, leaking 4/s; the level jumps to what is reported.
    observed = await redis_now(redis)
    await bucket.observe(SHOP, used=79, capacity=80)
    state = await bucket.state(SHOP)
    assert (state.capacity, state.leak_rate) == (80, 4)
    assert 79 - 4 * (await redis_now(redis) - observed) - EPSILON <= state.level <= 79 + EPSILON
    wait = await bucket.try_acquire(SHOP)
    since = await redis_now(redis) - observed
    assert (79 + 1 - 78) / 4 - since - EPSILON <= wait <= (79 + 1 - 78) / 4 + EPSILON

    # Plus plan, and an explicitly given leak rate.
    await bucket.observe(OTHER_SHOP, used=0, capacity=400)
    assert (await bucket.state(OTHER_SHOP)).leak_rate == 20
    await bucket.observe(OTHER_SHOP, used=0, capacity=400, leak_rate=7.5)
    assert (await bucket.state(OTHER_SHOP)).leak_rate == 7.5


async def test_reported_level_is_a_floor_not_a_ceiling(redis: aioredis.Redis, prefix: str) -> None:
    """Requests let through but not yet counted by the shop (still on their way) stay counted:
    a lower report must not free slots that concurrent callers already hold."""
    bucket = SharedLeakyBucket(redis, prefix, margin=2)
    await bucket.observe(SHOP, used=0, capacity=40, leak_rate=0.01)
    for _ in range(20):
        assert await bucket.try_acquire(SHOP) == 0.0
    level = await bucket.observe(SHOP, used=5, capacity=40, leak_rate=0.01)
    assert level == pytest.approx(20, abs=0.01)


async def test_penalize_blocks_every_caller_for_retry_after(
    redis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    bucket = SharedLeakyBucket(redis, prefix)
    other_redis = create_client(redis_url)
    other = SharedLeakyBucket(other_redis, prefix)  # another process
    try:
        # A bucket that leaks fast: after the block nothing else holds the caller back.
        await bucket.observe(SHOP, used=0, capacity=10, leak_rate=50)
        penalized = await redis_now(redis)
        blocked = await bucket.penalize(SHOP, 0.3)
        assert blocked == pytest.approx(0.3, abs=EPSILON)

        state = await other.state(SHOP)
        wait = await other.try_acquire(SHOP)
        since = await redis_now(redis) - penalized
        assert state.level >= 10 - 50 * since - EPSILON  # marked full (then leaking 50/s)
        assert 0.3 - since - EPSILON <= state.blocked_for_s <= 0.3 + EPSILON
        assert 0.3 - since - EPSILON <= wait <= state.blocked_for_s + EPSILON

        started = time.monotonic()
        waited = await other.acquire(SHOP)
        assert await redis_now(redis) - penalized >= 0.3  # not a moment before the block ends
        assert 0 < waited <= time.monotonic() - started
        assert await other.try_acquire(SHOP) == 0.0

        # A later, shorter penalty does not shorten a longer block.
        await bucket.penalize(SHOP, 5)
        await other.penalize(SHOP, 1)
        assert (await bucket.state(SHOP)).blocked_for_s == pytest.approx(5, abs=0.05)
        with pytest.raises(RateLimitTimeout):
            await bucket.acquire(SHOP, max_wait_s=1)
    finally:
        await other_redis.aclose()


async def test_two_processes_share_one_bucket(
    redis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    clients = [create_client(redis_url), create_client(redis_url)]
    first, second = (SharedLeakyBucket(client, prefix) for client in clients)
    try:
        await first.observe(SHOP, used=0, capacity=40, leak_rate=0.001)
        assert [await first.try_acquire(SHOP) for _ in range(20)] == [0.0] * 20
        assert [await second.try_acquire(SHOP) for _ in range(18)] == [0.0] * 18
        assert await second.try_acquire(SHOP) > 0
        assert await first.try_acquire(SHOP) > 0
        assert (await first.state(SHOP)).level == pytest.approx(38, abs=0.01)

        # Concurrent callers from both: exactly the free slots are handed out, never more.
        await first.observe(OTHER_SHOP, used=0, capacity=40, leak_rate=0.001)
        waits = await asyncio.gather(
            *(bucket.try_acquire(OTHER_SHOP) for bucket in (first, second) for _ in range(30))
        )
        assert sum(1 for wait in waits if wait == 0) == 38
    finally:
        for client in clients:
            await client.aclose()


async def test_shops_and_prefixes_do_not_interfere(redis: aioredis.Redis, prefix: str) -> None:
    bucket = SharedLeakyBucket(redis, prefix)
    await bucket.observe(SHOP, used=40, capacity=40)
    await bucket.penalize(SHOP, 10)
    assert await bucket.try_acquire(SHOP) > 0
    assert await bucket.try_acquire(OTHER_SHOP) == 0.0

    elsewhere = SharedLeakyBucket(redis, f"{prefix}:elsewhere")
    assert await elsewhere.try_acquire(SHOP) == 0.0
    # The shop name is not case-sensitive.
    assert await bucket.try_acquire(SHOP.upper()) > 0


async def test_keys_are_prefixed_and_expire_when_idle(redis: aioredis.Redis, prefix: str) -> None:
    bucket = SharedLeakyBucket(redis, prefix, idle_ttl_s=0.3)
    await bucket.try_acquire(SHOP)
    await bucket.graphql.try_acquire(SHOP, 10)
    assert 0 < await redis.pttl(f"{prefix}:rest:{SHOP}") <= 300
    assert 0 < await redis.pttl(f"{prefix}:graphql:{SHOP}") <= 300
    # The expiry is refreshed by every write.
    await asyncio.sleep(0.2)
    await bucket.try_acquire(SHOP)
    assert await redis.pttl(f"{prefix}:rest:{SHOP}") > 200

    # The time is Redis's own.
    before = await redis_now(redis)
    await bucket.try_acquire(SHOP)
    stored = float(await redis.hget(f"{prefix}:rest:{SHOP}", "ts") or 0)
    assert before <= stored <= await redis_now(redis)

    # A block outlives the idle TTL.
    await bucket.penalize(OTHER_SHOP, 2)
    assert 2000 < await redis.pttl(f"{prefix}:rest:{OTHER_SHOP}") <= 2300

    keys = {key async for key in redis.scan_iter(match=f"{prefix}:*", count=10_000)}
    # (the GraphQL key of SHOP may or may not have expired by now)
    assert {f"{prefix}:rest:{SHOP}", f"{prefix}:rest:{OTHER_SHOP}"} <= keys
    assert keys <= {f"{prefix}:rest:{SHOP}", f"{prefix}:rest:{OTHER_SHOP}",
                    f"{prefix}:graphql:{SHOP}"}  # fmt: skip

    await asyncio.sleep(0.4)
    assert not await redis.exists(f"{prefix}:rest:{SHOP}", f"{prefix}:graphql:{SHOP}")
    assert await redis.exists(f"{prefix}:rest:{OTHER_SHOP}")


async def test_graphql_points_bucket(redis: aioredis.Redis, prefix: str) -> None:
    rest = SharedLeakyBucket(redis, prefix)
    points = rest.graphql
    assert isinstance(points, SharedCostBucket)

    observed = await redis_now(redis)
    await rest.observe_throttle(SHOP, currently_available=900, maximum_available=1000,
                                restore_rate=100)  # fmt: skip
    state = await points.state(SHOP)
    since = await redis_now(redis) - observed
    assert (state.capacity, state.leak_rate) == (1000, 100)
    # 100 used, restoring 100 points a second since the observation.
    assert 100 - 100 * since - EPSILON <= state.level <= 100 + EPSILON

    assert await points.try_acquire(SHOP, cost=850) == 0.0  # <= 950 fits 1000 - margin 10
    taken = await redis_now(redis)
    level = (await points.state(SHOP)).level
    wait = await points.try_acquire(SHOP, cost=100)
    since = await redis_now(redis) - taken
    # The wait is computed from the level at the call, which has only drained since the read
    # (at 100 points/s, i.e. 1 s of wait less per second that passed).
    expected = (level + 100 - 990) / 100
    assert expected - since - EPSILON <= wait <= expected + EPSILON

    # The REST bucket of the same shop is a separate limit.
    assert await rest.try_acquire(SHOP) == 0.0
    assert (await rest.state(SHOP)).capacity == 40

    # Refund: the caller reserved 850 but Shopify charged 50 and reports 400 available.
    level = await points.observe_throttle(SHOP, 400, 1000, 100, refund=800)
    assert level == pytest.approx(600, abs=2)

    # A query costlier than the whole bucket waits for an empty bucket instead of forever.
    fresh = SharedCostBucket(redis, prefix, default_capacity=100, default_restore_rate=100)
    taken = await redis_now(redis)
    assert await fresh.try_acquire(OTHER_SHOP, cost=5000) == 0.0
    wait = await fresh.try_acquire(OTHER_SHOP, cost=5000)
    assert 1.0 - (await redis_now(redis) - taken) - EPSILON <= wait <= 1.0 + EPSILON


async def test_invalid_arguments(redis: aioredis.Redis, prefix: str) -> None:
    bucket = SharedLeakyBucket(redis, prefix)
    with pytest.raises(ValueError):
        await bucket.try_acquire(SHOP, cost=0)
    with pytest.raises(ValueError):
        await bucket.observe(SHOP, used=1, capacity=0)
    with pytest.raises(ValueError):
        SharedLeakyBucket(redis, prefix, margin=-1)
    assert "acme" not in repr(bucket)
