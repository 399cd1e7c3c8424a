from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class StockMaster(StrEnum):
    RAPPIT = "rappit"
    CHANNEL = "channel"


class ChannelLocation(IdMixin, TenantMixin, TimestampMixin, Base):
    """Maps a channel's location to one of the organisation's warehouses."""

    __tablename__ = "channel_locations"
    __table_args__ = (UniqueConstraint("channel_id", "external_location_id"),)

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    external_location_id: Mapped[str] = mapped_column(String(64))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("warehouses.id", ondelete="CASCADE"), index=True
    )
    # Who owns the stock figure at this location: "rappit" (Rappit pushes levels to the
    # channel) or "channel" (the channel's inventory updates set Rappit's on-hand). Never both.
    stock_master: Mapped[str] = mapped_column(
        String(16), default=StockMaster.RAPPIT, server_default=StockMaster.RAPPIT.value
    )
