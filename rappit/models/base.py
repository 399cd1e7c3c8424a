"""Declarative base: deterministic constraint names, uuid7 keys, tenant and timestamp mixins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ForeignKey, MetaData, Uuid, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from rappit.kit.ids import uuid7
from rappit.kit.types import UtcDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid7)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class TenantMixin:
    """Every tenant-owned row carries its organisation; every query filters on it."""

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), index=True)


_Row = TypeVar("_Row", bound=Base)


async def lock_tenant_row(
    session: AsyncSession, model: type[_Row], organization_id: uuid.UUID, row_id: uuid.UUID
) -> _Row | None:
    """One row of an organisation by id, locked for the rest of the transaction, with the
    values read under the lock (``populate_existing``: a copy the session already holds from
    before the lock would be stale). ``None`` when the organisation has no such row."""
    columns = model.__table__.c
    row: _Row | None = await session.scalar(
        select(model)
        .where(columns.organization_id == organization_id, columns.id == row_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return row
