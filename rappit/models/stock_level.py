from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Integer, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin

if TYPE_CHECKING:
    from rappit.models.warehouse import Warehouse


class StockLevel(IdMixin, TenantMixin, TimestampMixin, Base):
    """``available = on_hand - reserved``. The checks make overselling impossible even for a
    statement that forgot its guard."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("sku_id", "warehouse_id"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
    )

    sku_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("skus.id", ondelete="CASCADE"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("warehouses.id", ondelete="CASCADE"), index=True
    )
    # Loaded explicitly (contains_eager) where allocation needs it; never lazily.
    warehouse: Mapped[Warehouse] = relationship(lazy="raise", viewonly=True)
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    reserved: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved
