from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class Sku(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "skus"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    product_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
