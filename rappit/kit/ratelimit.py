"""Leaky buckets whose state lives in Redis, shared by every process that calls the same shop.

A vendor that limits an (app, store) pair with a leaky bucket counts the requests of all our
API processes, workers and CLI runs together, so the bucket we keep must be shared too: one
Redis hash per shop and API, changed only by Lua scripts (each runs atomically), timed by the
Redis server's clock (``TIME`` inside the script), so processes on hosts with skewed clocks
agree on how much has drained.

Operations (one script each):

- ``acquire``: drain the stored level by ``rate * elapsed``; take ``cost`` if
  ``level + cost <= capacity - margin`` and answer 0, else answer the seconds until it would fit
  without taking anything (callers sleep that long and ask again).
- ``observe``: adopt what the API reported (capacity, leak rate, level). The reported level is
  a floor: the local level stays higher only by requests this deployment let through that the
  API had not counted yet when it answered, which is what keeps concurrent callers from
  overshooting. An observation never waits and never blocks.
- ``penalize``: on a 429, mark the bucket full and refuse every acquisition until
  ``now + Retry-After``.

Before the first observation a bucket assumes ``default_capacity`` and ``default_leak_rate``
(for Shopify REST the smallest plan, 40 requests leaking 2/s). Keys expire after
``idle_ttl_s`` without a write; a forgotten bucket is simply learned again from the next
response.

Nothing here knows a vendor beyond the default numbers; integrations pass what their API
reports.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

# Shopify REST plans: bucket size -> leak rate per second (Standard, Advanced, Plus).
SHOPIFY_REST_LEAK_RATES: Mapping[int, float] = {40: 2.0, 80: 4.0, 400: 20.0}
# Other sizes leak at size / 20 per second (the relationship all of Shopify's plans follow).
DEFAULT_LEAK_RATIO = 1 / 20

# Shared prologue: Redis time, the stored state drained to now, and a save() that keeps the key
# alive for the idle TTL (longer while a block is running). ARGV[1..3]: default capacity,
# default leak rate, idle TTL in ms.
_PROLOGUE = """
pcall(redis.replicate_commands)
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', key, 'level', 'ts', 'cap', 'rate', 'blocked')
local cap = tonumber(h[3]) or tonumber(ARGV[1])
local rate = tonumber(h[4]) or tonumber(ARGV[2])
local level = tonumber(h[1]) or 0
local ts = tonumber(h[2]) or now
local blocked = tonumber(h[5]) or 0
local ttl_ms = tonumber(ARGV[3])
-- A clock that went back (failover to another server) drains nothing rather than adding.
if now > ts then level = level - (now - ts) * rate end
if level < 0 then level = 0 end
local function fmt(x) return string.format('%.17g', x) end
local function save()
  redis.call('HSET', key, 'level', fmt(level), 'ts', string.format('%.6f', now),
             'cap', fmt(cap), 'rate', fmt(rate), 'blocked', string.format('%.6f', blocked))
  local keep = ttl_ms
  if blocked > now then keep = keep + math.ceil((blocked - now) * 1000) end
  redis.call('PEXPIRE', key, keep)
end
"""

# ARGV[4] cost, ARGV[5] margin. Returns the wait in seconds ("0" when the slot was taken).
_ACQUIRE = (
    _PROLOGUE
    + """
if blocked > now then return fmt(blocked - now) end
local cost = tonumber(ARGV[4])
if cost > cap then cost = cap end
local limit = cap - tonumber(ARGV[5])
-- A bucket no bigger than the margin still lets one request through once it is empty.
if limit < cost then limit = cost end
if level + cost <= limit then
  level = level + cost
  save()
  return '0'
end
return fmt((level + cost - limit) / rate)
"""
)

# ARGV[4] used, ARGV[5] capacity, ARGV[6] leak rate, ARGV[7] refund. Returns the new level.
_OBSERVE = (
    _PROLOGUE
    + """
level = level - tonumber(ARGV[7])
if level < 0 then level = 0 end
local used = tonumber(ARGV[4])
if used > level then level = used end
cap = tonumber(ARGV[5])
rate = tonumber(ARGV[6])
save()
return fmt(level)
"""
)

# ARGV[4] retry-after seconds. Returns the seconds the bucket stays blocked.
_PENALIZE = (
    _PROLOGUE
    + """
if level < cap then level = cap end
local until_ = now + tonumber(ARGV[4])
if until_ > blocked then blocked = until_ end
save()
return fmt(blocked - now)
"""
)

# Read only. Returns level, capacity, leak rate, seconds still blocked, whether the key exists.
_STATE = (
    _PROLOGUE
    + """
local left = blocked - now
if left < 0 then left = 0 end
return {fmt(level), fmt(cap), fmt(rate), fmt(left), tostring(redis.call('EXISTS', key))}
"""
)


class RateLimitTimeout(Exception):
    """``acquire`` would have to wait longer than the caller allowed."""


@dataclass(frozen=True)
class BucketState:
    level: float
    capacity: float
    leak_rate: float
    blocked_for_s: float
    stored: bool  # False: nothing known about this shop yet (defaults shown)


def _number(value: Any) -> float:
    return float(value.decode() if isinstance(value, bytes) else value)


class _RedisBucket:
    """One leaky bucket per shop under ``{key_prefix}:{kind}:{shop}``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str,
        kind: str,
        *,
        margin: float,
        default_capacity: float,
        default_leak_rate: float,
        idle_ttl_s: float,
    ) -> None:
        if margin < 0 or default_capacity <= 0 or default_leak_rate <= 0 or idle_ttl_s <= 0:
            raise ValueError("margin must be >= 0; capacity, leak rate and TTL must be > 0")
        self.redis = redis
        self.key_prefix = key_prefix
        self.kind = kind
        self.margin = margin
        self.default_capacity = default_capacity
        self.default_leak_rate = default_leak_rate
        self.idle_ttl_s = idle_ttl_s
        self._acquire = redis.register_script(_ACQUIRE)
        self._observe = redis.register_script(_OBSERVE)
        self._penalize = redis.register_script(_PENALIZE)
        self._state = redis.register_script(_STATE)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_prefix={self.key_prefix!r}, margin={self.margin})"

    def key(self, shop: str) -> str:
        return f"{self.key_prefix}:{self.kind}:{shop.strip().lower()}"

    def _common(self) -> list[str]:
        return [
            repr(float(self.default_capacity)),
            repr(float(self.default_leak_rate)),
            str(max(1, round(self.idle_ttl_s * 1000))),
        ]

    async def try_acquire(self, shop: str, cost: float = 1) -> float:
        """Take ``cost`` now and answer 0, or answer the seconds to wait (nothing taken)."""
        if cost <= 0:
            raise ValueError("cost must be > 0")
        result = await self._acquire(
            keys=[self.key(shop)], args=[*self._common(), repr(float(cost)), repr(self.margin)]
        )
        return max(0.0, _number(result))

    async def acquire(
        self, shop: str, cost: float = 1, *, max_wait_s: float | None = None
    ) -> float:
        """Wait until ``cost`` fits in the shop's bucket and take it; answers the seconds
        waited. ``RateLimitTimeout`` if that would take longer than ``max_wait_s``."""
        waited = 0.0
        while True:
            wait = await self.try_acquire(shop, cost)
            if wait <= 0:
                return waited
            if max_wait_s is not None and waited + wait > max_wait_s:
                raise RateLimitTimeout(
                    f"rate limit of '{shop}' needs {wait:.2f}s more after {waited:.2f}s"
                )
            # A little jitter: callers told the same wait should not all wake at once.
            pause = wait + random.uniform(0.001, 0.002 + min(0.05, wait * 0.1))
            await asyncio.sleep(pause)
            waited += pause

    async def penalize(self, shop: str, retry_after_s: float) -> float:
        """After a 429: the bucket is full and every caller waits ``retry_after_s``. Answers
        the seconds the shop stays blocked (an earlier, longer block is kept)."""
        result = await self._penalize(
            keys=[self.key(shop)], args=[*self._common(), repr(max(0.0, float(retry_after_s)))]
        )
        return _number(result)

    async def state(self, shop: str) -> BucketState:
        """The bucket as of now (Redis time), for diagnostics and tests."""
        level, capacity, rate, blocked, exists = await self._state(
            keys=[self.key(shop)], args=self._common()
        )
        return BucketState(
            level=_number(level),
            capacity=_number(capacity),
            leak_rate=_number(rate),
            blocked_for_s=_number(blocked),
            stored=_number(exists) > 0,
        )

    async def reset(self, shop: str) -> None:
        await self.redis.delete(self.key(shop))

    async def _observe_level(
        self, shop: str, used: float, capacity: float, leak_rate: float, refund: float
    ) -> float:
        if capacity <= 0 or leak_rate <= 0:
            raise ValueError("capacity and leak rate must be > 0")
        result = await self._observe(
            keys=[self.key(shop)],
            args=[
                *self._common(),
                repr(max(0.0, float(used))),
                repr(float(capacity)),
                repr(float(leak_rate)),
                repr(float(refund)),
            ],
        )
        return _number(result)


class SharedCostBucket(_RedisBucket):
    """A bucket of cost points (Shopify GraphQL: ``extensions.cost.throttleStatus``), kept
    under its own keys: the points bucket and the REST request bucket are separate limits."""

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str = "rappit:ratelimit",
        *,
        margin: float = 10,
        default_capacity: float = 1000,
        default_restore_rate: float = 50,
        idle_ttl_s: float = 600,
    ) -> None:
        super().__init__(
            redis,
            key_prefix,
            "graphql",
            margin=margin,
            default_capacity=default_capacity,
            default_leak_rate=default_restore_rate,
            idle_ttl_s=idle_ttl_s,
        )

    async def observe_throttle(
        self,
        shop: str,
        currently_available: float,
        maximum_available: float,
        restore_rate: float,
        *,
        refund: float = 0,
    ) -> float:
        """Adopt a reported ``throttleStatus``: used = maximum - available. ``refund`` is what
        this caller had reserved beyond what the API charged (the estimate passed to
        ``acquire`` minus the actual cost; the whole estimate when the query was refused),
        taken off the local level first. Answers the new level."""
        used = max(0.0, float(maximum_available) - float(currently_available))
        return await self._observe_level(shop, used, maximum_available, restore_rate, refund)


class SharedLeakyBucket(_RedisBucket):
    """Requests per shop (Shopify REST: ``X-Shopify-Shop-Api-Call-Limit: used/size``).

    ``margin`` slots are kept free for what the bucket cannot see (another app version mid
    deploy, a request on its way). ``leak_rates`` maps a reported bucket size to its leak rate
    (Shopify's plans by default; other sizes leak at size / 20). ``graphql`` is the matching
    points bucket (by default on the same Redis and prefix).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        key_prefix: str = "rappit:ratelimit",
        *,
        margin: float = 2,
        default_capacity: float = 40,
        default_leak_rate: float = 2,
        leak_rates: Mapping[int, float] = SHOPIFY_REST_LEAK_RATES,
        idle_ttl_s: float = 600,
        graphql: SharedCostBucket | None = None,
    ) -> None:
        super().__init__(
            redis,
            key_prefix,
            "rest",
            margin=margin,
            default_capacity=default_capacity,
            default_leak_rate=default_leak_rate,
            idle_ttl_s=idle_ttl_s,
        )
        self.leak_rates = dict(leak_rates)
        self.graphql = graphql or SharedCostBucket(redis, key_prefix, idle_ttl_s=idle_ttl_s)

    def leak_rate_for(self, capacity: float) -> float:
        rate = self.leak_rates.get(int(capacity)) if capacity == int(capacity) else None
        return rate if rate is not None else capacity * DEFAULT_LEAK_RATIO

    async def observe(
        self, shop: str, used: float, capacity: float, leak_rate: float | None = None
    ) -> float:
        """Adopt a reported ``used/capacity``; the leak rate follows from the capacity unless
        given. Answers the new level."""
        rate = leak_rate if leak_rate is not None else self.leak_rate_for(capacity)
        return await self._observe_level(shop, used, capacity, rate, 0.0)

    async def observe_throttle(
        self,
        shop: str,
        currently_available: float,
        maximum_available: float,
        restore_rate: float,
        *,
        refund: float = 0,
    ) -> float:
        """Shortcut to ``self.graphql.observe_throttle``."""
        return await self.graphql.observe_throttle(
            shop, currently_available, maximum_available, restore_rate, refund=refund
        )
