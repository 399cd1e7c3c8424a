"""Keyset pages over sorted keys, and the opaque cursors that carry them.

REST ``page_info`` and GraphQL ``after``/``before`` cursors both hold the last key seen and,
for REST, every filter of the first request (Shopify encodes the filters in the cursor, which
is why a request with ``page_info`` may not repeat them; reference/channel-apis.md §3). A key
is ``(sort value, id)`` or a plain id, so a page never skips or repeats an item when several
share a timestamp.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", int, tuple[int, int])


class InvalidCursor(ValueError):
    pass


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor(value) from exc
    if not isinstance(data, dict):
        raise InvalidCursor(value)
    return data


def key_from_json(value: Any) -> int | tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
    ):
        return (value[0], value[1])
    raise InvalidCursor(str(value))


@dataclass(frozen=True, slots=True)
class Page(Generic[K]):
    keys: list[K]
    has_next: bool
    has_previous: bool


def keyset_page(
    keys: Sequence[K],
    *,
    limit: int,
    descending: bool = False,
    after: K | None = None,
    before: K | None = None,
    match: Callable[[K], bool] | None = None,
    lo: int = 0,
    hi: int | None = None,
) -> Page[K]:
    """Up to ``limit`` matching keys from ``keys[lo:hi]`` (sorted ascending), in ``descending``
    order or not, following ``after`` or preceding ``before`` (keys of earlier pages).

    ``has_previous`` and ``has_next`` say whether the caller should link to a page on either
    side: a page reached from a cursor always links back the way it came.
    """
    hi = len(keys) if hi is None else hi
    backwards = before is not None
    anchor = before if backwards else after
    step = -1 if descending != backwards else 1
    if anchor is None:
        index = lo if step > 0 else hi - 1
    elif step > 0:
        index = bisect.bisect_right(keys, anchor, lo, hi)
    else:
        index = bisect.bisect_left(keys, anchor, lo, hi) - 1
    found: list[K] = []
    while lo <= index < hi and len(found) <= limit:
        key = keys[index]
        if match is None or match(key):
            found.append(key)
        index += step
    more = len(found) > limit
    found = found[:limit]
    if backwards:
        found.reverse()
        return Page(found, has_next=bool(found), has_previous=more)
    return Page(found, has_next=more, has_previous=anchor is not None and bool(found))
