from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Integer, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class FulfillmentItem(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "fulfillment_items"
    __table_args__ = (
        UniqueConstraint("fulfillment_id", "order_item_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    fulfillment_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("fulfillments.id", ondelete="CASCADE")
    )
    order_item_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("order_items.id", ondelete="CASCADE"), index=True
    )
    quantity: Mapped[int] = mapped_column(Integer)
