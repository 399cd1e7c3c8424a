from __future__ import annotations

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class Warehouse(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "warehouses"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    # Lower numbers are allocated first.
    priority: Mapped[int] = mapped_column(Integer, default=100)
