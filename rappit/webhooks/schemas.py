from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class WebhookEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source: str
    channel_id: uuid.UUID
    topic: str
    external_event_id: str
    event_id: str | None
    status: str
    attempts: int
    error: str | None
    triggered_at: datetime | None
    created_at: datetime
    processed_at: datetime | None
