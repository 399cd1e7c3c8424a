from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from rappit.models import SyncResource


class SyncStart(BaseModel):
    resource: SyncResource


class SyncRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel_id: uuid.UUID
    resource: str
    status: str
    counts: dict[str, int]
    total: int | None
    drift: dict[str, Any]
    problems: list[dict[str, Any]]
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
