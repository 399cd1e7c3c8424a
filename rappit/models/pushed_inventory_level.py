from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class PushedInventoryLevel(IdMixin, TenantMixin, TimestampMixin, Base):
    """What Rappit knows of one channel level (inventory item at a location): the ``available``
    it last pushed, and the channel's own figure as last known.

    The pushed value recognises the channel's ``inventory_levels/update`` that only echoes a
    push. The known figure is the compare value (``changeFromQuantity``) of the next push and
    lets a push skip a level the channel already shows.
    """

    __tablename__ = "pushed_inventory_levels"
    __table_args__ = (
        # Named by hand: the conventional name would pass PostgreSQL's 63-character limit.
        UniqueConstraint(
            "channel_id",
            "external_inventory_item_id",
            "external_location_id",
            name="uq_pushed_inventory_levels_channel_item_location",
        ),
    )

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    external_inventory_item_id: Mapped[str] = mapped_column(String(64))
    external_location_id: Mapped[str] = mapped_column(String(64))
    last_pushed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pushed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The channel's available as last known: set by a push, a re-read or a webhook.
    channel_quantity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    channel_quantity_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
