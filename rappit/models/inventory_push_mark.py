from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, TenantMixin


class InventoryPushMark(TenantMixin, Base):
    """A SKU's stock changed and a channel location that Rappit is the stock master of shows it:
    its level must be pushed. The row exists while the push is due and is deleted once the
    level is pushed.

    Written in the same transaction as the stock change, by one set-based statement; the key is
    the natural one (no surrogate id), so a repeated change is an upsert of the same row.
    ``version`` goes up with every change, so a push that read version 3 removes the mark only
    if no change came in while it was pushing.
    """

    __tablename__ = "inventory_push_marks"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    sku_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("skus.id", ondelete="CASCADE"), primary_key=True
    )
    channel_location_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channel_locations.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The last change; the sweeper re-sends the push job of marks left unclaimed for long.
    marked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The push job (its job id) working on this mark, and since when: another job leaves it
    # alone until the claim is released or has expired (its worker died).
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
