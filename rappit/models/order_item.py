from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import Money
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class OrderItem(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "order_items"
    __table_args__ = (
        UniqueConstraint("order_id", "external_item_id"),
        # Finds unresolved lines again when a matching SKU or listing appears.
        Index(None, "organization_id", "sku_code"),
        Index(None, "sku_id"),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("orders.id", ondelete="CASCADE"))
    external_item_id: Mapped[str] = mapped_column(String(64))
    external_product_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    external_variant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sku_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # None while the line cannot be mapped to a SKU (the order then needs attention).
    sku_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("skus.id", ondelete="SET NULL"), nullable=True
    )
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Current quantity (after edits and removals); 0 for a removed line.
    quantity: Mapped[int] = mapped_column(Integer)
    # Units fulfilments recorded in Rappit shipped (its own, and the channel's by webhook).
    fulfilled_quantity: Mapped[int] = mapped_column(Integer, default=0)
    # Units the channel's order itself reports as fulfilled (``quantity`` minus what it still
    # calls fulfillable), whether or not Rappit has recorded those fulfilments: historic
    # orders of an import, shipments made outside Rappit. Stock is held only for
    # ``quantity - max(fulfilled_quantity, channel_fulfilled_quantity)``.
    channel_fulfilled_quantity: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    price: Mapped[Decimal | None] = mapped_column(Money, nullable=True)
    requires_shipping: Mapped[bool] = mapped_column(default=True)
