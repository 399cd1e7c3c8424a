from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime, utcnow
from rappit.models.base import Base, IdMixin, TenantMixin


class MovementReason(StrEnum):
    ADJUSTMENT = "adjustment"
    RESERVATION = "reservation"
    RELEASE = "release"
    CONSUMPTION = "consumption"


class InventoryMovement(IdMixin, TenantMixin, Base):
    """Append-only ledger: summing the deltas per (sku, warehouse) gives the stock level."""

    __tablename__ = "inventory_movements"
    __table_args__ = (Index(None, "sku_id", "warehouse_id"),)

    sku_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("skus.id", ondelete="CASCADE"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("warehouses.id", ondelete="CASCADE")
    )
    on_hand_delta: Mapped[int] = mapped_column(Integer, default=0)
    reserved_delta: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(32))
    # Free text given by the caller ("cycle count", "PO-1234") or set by the system.
    note: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
