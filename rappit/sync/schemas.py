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


class DriftRead(BaseModel):
    """What the channel's latest completed reconciliation found; all empty before the first."""

    channel_id: uuid.UUID
    run_id: uuid.UUID | None
    # When the reconciliation finished (its figures are as of then).
    reconciled_at: datetime | None
    started_at: datetime | None
    # The orders it re-read: those updated since window_start, window_hours before it ran.
    window_hours: int | None
    window_start: datetime | None
    # orders_checked, orders_missing, orders_stale, orders_healed, stock_checked,
    # stock_differing, stock_healed, unmapped_locations, ...
    counts: dict[str, int]
    # {"orders": [...], "stock": [...]}: the first entries of each kind.
    drift: dict[str, Any]
    problems: list[dict[str, Any]]
