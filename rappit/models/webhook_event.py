from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from rappit.kit.types import UtcDateTime
from rappit.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class WebhookEventStatus(StrEnum):
    ENQUEUED = "ENQUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class WebhookEvent(IdMixin, TenantMixin, TimestampMixin, Base):
    """The inbox: one row per delivery. The unique key decides what is a duplicate."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("source", "channel_id", "external_event_id"),
        Index(None, "status", "updated_at"),
        Index(None, "organization_id", "status"),
        Index(None, "channel_id", "resource_id"),
    )

    source: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("channels.id", ondelete="CASCADE")
    )
    topic: Mapped[str] = mapped_column(String(100))
    external_event_id: Mapped[str] = mapped_column(String(128))
    # Shopify's X-Shopify-Event-Id: shared by every delivery of one merchant action.
    event_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    triggered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    api_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default=WebhookEventStatus.ENQUEUED)
    payload: Mapped[Any] = mapped_column(JSON)
    # The channel's id of the resource the event is about (an order id), set when processed.
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
