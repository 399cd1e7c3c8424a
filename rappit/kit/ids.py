"""Time-ordered UUIDs (version 7, RFC 9562).

Ordering by id is ordering by creation time, which gives stable cursor pagination without a
separate (created_at, id) key and keeps B-tree inserts at the right edge of the index. Within
one process ids are strictly increasing: the 12 ``rand_a`` bits are a counter inside a
millisecond (RFC 9562 §6.2, method 1), so rows created in the same millisecond keep their order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_COUNTER_MAX = 0xFFF


def uuid7() -> uuid.UUID:
    global _last_ms, _counter
    with _lock:
        unix_ms = time.time_ns() // 1_000_000
        if unix_ms > _last_ms:
            _last_ms, _counter = unix_ms, 0
        else:
            # Same millisecond (or the clock stepped back): count up, borrowing the next
            # millisecond when the counter is full.
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_ms, _counter = _last_ms + 1, 0
        unix_ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (unix_ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64  # rand_a used as the in-millisecond counter
    value |= 0b10 << 62  # variant
    value |= rand_b
    return uuid.UUID(int=value)
