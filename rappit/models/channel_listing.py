from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class ChannelListing(IdMixin, TenantMixin, TimestampMixin, Base):
    """Links a SKU to a channel's product, variant and inventory item ids."""

    __tablename__ = "channel_listings"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_variant_id"),
        UniqueConstraint("channel_id", "external_inventory_item_id"),
        Index(None, "channel_id", "sku_id"),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    sku_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("skus.id", ondelete="CASCADE"))
    external_product_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    external_variant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    external_inventory_item_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
