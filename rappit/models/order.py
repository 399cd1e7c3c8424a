from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import Money, UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    PARTIALLY_RESERVED = "PARTIALLY_RESERVED"
    BACKORDERED = "BACKORDERED"
    PARTIALLY_FULFILLED = "PARTIALLY_FULFILLED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    EXPIRED = "expired"


class Order(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("organization_id", "channel_id", "external_order_id"),
        Index(None, "organization_id", "status"),
        Index(None, "channel_id", "customer_external_id"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    external_order_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=OrderStatus.PENDING)
    payment_status: Mapped[str] = mapped_column(String(32), default=PaymentStatus.PENDING)
    fulfillment_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    total_price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    customer: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The channel's customer id, for data requests and redaction (indexed, not a JSON scan).
    customer_external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The channel location the order is assigned to, when the channel says.
    external_location_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The channel's own updated_at: an update older than this is stale and changes nothing.
    channel_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    # Channel-specific fields that have no column (tags, note, discounts, ...).
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
