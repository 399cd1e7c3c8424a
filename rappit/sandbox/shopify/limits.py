"""Leaky buckets, the way Shopify limits an app per shop (reference/channel-apis.md §2.1, §2.2).

REST: each request adds 1 to the bucket, which leaks ``leak_rate`` per second; a request that
would overflow it is refused (429). GraphQL: the bucket holds *available* points instead,
restored at ``restoreRate``; the requested cost is taken up front and the unused part refunded.
Both are the same arithmetic over "used" units; time always comes from the caller (the state's
injectable clock), so tests can freeze it.
"""

from __future__ import annotations

import math


class LeakyBucket:
    def __init__(self, size: float, leak_rate: float) -> None:
        self.size = float(size)
        self.leak_rate = float(leak_rate)
        self._used = 0.0
        self._at: float | None = None

    def resize(self, size: float, leak_rate: float) -> None:
        self.size = float(size)
        self.leak_rate = float(leak_rate)
        self._used = min(self._used, self.size)

    def _drain(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._used = max(0.0, self._used - (now - self._at) * self.leak_rate)
        if self._at is None or now > self._at:
            self._at = now

    def used(self, now: float) -> float:
        self._drain(now)
        return self._used

    def available(self, now: float) -> float:
        return self.size - self.used(now)

    def take(self, now: float, amount: float = 1.0) -> float | None:
        """Add ``amount`` if it fits: None, or the seconds until it would fit."""
        self._drain(now)
        overflow = self._used + amount - self.size
        if overflow > 1e-9:
            return overflow / self.leak_rate
        self._used += amount
        return None

    def refund(self, amount: float) -> None:
        self._used = max(0.0, self._used - amount)

    def reset(self) -> None:
        self._used = 0.0
        self._at = None


def call_limit_header(bucket: LeakyBucket, now: float) -> str:
    """``X-Shopify-Shop-Api-Call-Limit``: whole calls in the bucket / bucket size."""
    return f"{math.ceil(bucket.used(now) - 1e-9)}/{int(bucket.size)}"


def retry_after_header(seconds: float) -> str:
    """Seconds, one decimal, rounded up so a client that waits that long gets in."""
    return f"{max(0.1, math.ceil(seconds * 10 - 1e-9) / 10):.1f}"
