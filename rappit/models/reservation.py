from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class Reservation(IdMixin, TenantMixin, TimestampMixin, Base):
    """Units of one order line held in one warehouse. A row is active until it is released or
    consumed; a partial release or consumption closes the row and opens one for the rest."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index(None, "order_item_id"),
        Index(None, "sku_id", "warehouse_id"),
    )

    order_item_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("order_items.id", ondelete="CASCADE")
    )
    sku_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("skus.id", ondelete="CASCADE"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("warehouses.id", ondelete="CASCADE")
    )
    quantity: Mapped[int] = mapped_column(Integer)
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    @property
    def is_active(self) -> bool:
        return self.released_at is None and self.consumed_at is None
