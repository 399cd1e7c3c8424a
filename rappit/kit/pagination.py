"""Cursor pagination over uuid7 primary keys (ordered by creation time)."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from rappit.kit.errors import InvalidInput

ItemT = TypeVar("ItemT")
Row = TypeVar("Row")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


def encode_cursor(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("cursor is not valid; pass the next_cursor of a previous page") from exc


async def paginate(
    session: AsyncSession,
    statement: Select[Row],
    id_column: InstrumentedAttribute[uuid.UUID],
    *,
    cursor: str | None,
    limit: int,
) -> tuple[Sequence[Row], str | None]:
    """One page of ``statement`` in id order, and the cursor of the next page (None at the end)."""
    if cursor is not None:
        statement = statement.where(id_column > decode_cursor(cursor))
    rows = list((await session.scalars(statement.order_by(id_column).limit(limit + 1))).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last: Any = rows[-1]
    return rows, encode_cursor(last.id)
