from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class ApiKey(IdMixin, TenantMixin, TimestampMixin, Base):
    """Only the SHA-256 of the key is stored; the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(200))
    # First characters of the key, kept so a person can tell keys apart in a list.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
