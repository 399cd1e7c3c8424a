from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class SyncResource(StrEnum):
    PRODUCTS = "products"
    ORDERS = "orders"
    INVENTORY = "inventory"
    # The first import of a large store, through bulk operations.
    IMPORT = "import"
    # A re-poll of a recent window that heals missed webhooks and measures drift.
    RECONCILE = "reconcile"


class SyncRunStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class SyncRun(IdMixin, TenantMixin, TimestampMixin, Base):
    """One pull from a channel. The cursor is saved as pages are applied, so a run that dies
    resumes where it stopped instead of starting over."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(None, "channel_id", "resource", "status"),
        Index(None, "status", "updated_at"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    resource: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=SyncRunStatus.PENDING)
    # Where to go on from: e.g. {"page_info": "...", "updated_at_min": "..."}.
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What was done so far: fetched, created, updated, unchanged, problems...
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    # What a reconciliation found different from the channel.
    drift: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Things a person must look at (colliding SKU codes, unmapped locations...).
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    total: Mapped[int | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
