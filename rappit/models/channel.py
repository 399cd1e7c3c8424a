from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class ChannelType(StrEnum):
    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"


class ChannelStatus(StrEnum):
    ACTIVE = "active"
    DISCONNECTED = "disconnected"


class Channel(IdMixin, TenantMixin, TimestampMixin, Base):
    """A connected store. Credentials are one encrypted JSON document, never returned."""

    __tablename__ = "channels"
    # A shop domain identifies the tenant of an incoming webhook, so it is unique per type.
    __table_args__ = (Index(None, "type", "shop_domain", unique=True),)

    type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    shop_domain: Mapped[str] = mapped_column(String(255))
    api_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    api_base_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=ChannelStatus.ACTIVE)
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    # Behaviour switches, e.g. {"reserve_on_authorized": true}.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Resumable sync positions per resource, e.g. {"orders": "2026-01-01T00:00:00Z"}.
    sync_cursors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
