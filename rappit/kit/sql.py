"""Dialect-specific statements behind one call each (SQLite is the default, PostgreSQL in
production; both must give the same behaviour)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from rappit.kit.db import dialect_of


def insert_ignore(
    session: AsyncSession,
    model: type[DeclarativeBase],
    values: dict[str, Any] | list[dict[str, Any]],
) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: the database, not a prior SELECT, decides what is a
    duplicate."""
    if dialect_of(session) == "postgresql":
        return postgresql.insert(model).values(values).on_conflict_do_nothing()
    return sqlite.insert(model).values(values).on_conflict_do_nothing()


async def add_unique(session: AsyncSession, instance: object, conflict: Exception) -> None:
    """Insert ``instance``; if a unique constraint refuses it, raise ``conflict``.

    The database decides (no check-then-insert race). The transaction is unusable afterwards,
    which is fine: the error ends the unit of work.
    """
    session.add(instance)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise conflict from exc
