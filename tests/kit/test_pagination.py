import uuid

import pytest

from rappit.kit.errors import InvalidInput
from rappit.kit.ids import uuid7
from rappit.kit.pagination import decode_cursor, encode_cursor


def test_round_trip() -> None:
    value = uuid7()
    cursor = encode_cursor(value)
    assert len(cursor) == 22  # 16 bytes of url-safe base64, padding stripped
    assert "=" not in cursor
    assert decode_cursor(cursor) == value


def test_round_trip_of_extreme_values() -> None:
    for value in (uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        assert decode_cursor(encode_cursor(value)) == value


# Fixed values only: a random one would give each xdist worker a different test id.
TOO_LONG = encode_cursor(uuid.UUID(int=1)) + "AAAA"


@pytest.mark.parametrize("cursor", ["!!", "", "abc", "AAAA", TOO_LONG])
def test_bad_cursor_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput, match="cursor is not valid"):
        decode_cursor(cursor)
