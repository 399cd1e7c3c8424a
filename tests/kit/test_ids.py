import time
import uuid
from itertools import pairwise

from rappit.kit.ids import uuid7


def _unix_ms(value: uuid.UUID) -> int:
    return value.int >> 80


def test_version_and_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_timestamp_is_the_creation_time() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    # The counter may borrow a millisecond or two from the future under a burst; never the past.
    assert before <= _unix_ms(value) <= after + 2


def test_ids_are_ordered_by_timestamp_and_strictly_increasing() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert all(a < b for a, b in pairwise(ids))
    timestamps = [_unix_ms(value) for value in ids]
    assert timestamps == sorted(timestamps)


def test_a_later_millisecond_sorts_later() -> None:
    first = uuid7()
    time.sleep(0.005)
    second = uuid7()
    assert _unix_ms(second) > _unix_ms(first)
    assert second > first
