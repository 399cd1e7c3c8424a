from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class Product(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "products"

    title: Mapped[str] = mapped_column(String(500))
