from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class FulfillmentStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Fulfillment(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "fulfillments"
    # The channel's own id: its fulfilment webhooks are matched on it, never duplicated.
    __table_args__ = (Index(None, "order_id", "external_fulfillment_id", unique=True),)

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orders.id", ondelete="CASCADE"))
    external_fulfillment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=FulfillmentStatus.PENDING)
    tracking_number: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tracking_company: Mapped[str | None] = mapped_column(String(128), nullable=True)
    tracking_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
