from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class FulfillmentStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    CANCELLED = "cancelled"
    FAILED = "failed"


class FulfillmentSyncStatus(StrEnum):
    """Where Rappit's own fulfilments stand in their channel. None: the channel told Rappit
    about the fulfilment, nothing to write back."""

    PENDING = "pending"  # a change (the creation, new tracking) is on its way to the channel
    SYNCED = "synced"
    FAILED = "failed"  # refused, or out of attempts: ``sync_error`` says why


class Fulfillment(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "fulfillments"
    __table_args__ = (
        # The channel's own id: its fulfilment webhooks are matched on it, never duplicated.
        Index(None, "order_id", "external_fulfillment_id", unique=True),
        # A repeated POST with the same Idempotency-Key finds the fulfilment it made.
        Index(None, "organization_id", "idempotency_key", unique=True),
        # The sweeper's search for writes left pending.
        Index(None, "sync_status", "updated_at"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orders.id", ondelete="CASCADE"))
    external_fulfillment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=FulfillmentStatus.PENDING)
    tracking_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tracking_company: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tracking_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # The channel's own updated_at of the fulfilment: an older webhook (delivered late, out of
    # order) changes nothing.
    channel_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    notify_customer: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Writing back to the channel: every change Rappit must send bumps ``sync_revision``; the
    # channel has everything up to ``synced_revision``.
    sync_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sync_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    synced_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set (and committed) before the first create call: from then on the channel may hold the
    # fulfilment even without Rappit knowing its id (an answer lost, a crash before saving it).
    create_attempted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
