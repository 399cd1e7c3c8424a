"""What the admin API and the CLI show of the queues: job counts and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from rappit.queues.client import DeadLetter


def from_epoch_ms(value: int) -> datetime | None:
    """BullMQ keeps times as epoch milliseconds; 0 means unknown."""
    return datetime.fromtimestamp(value / 1000, tz=UTC) if value > 0 else None


class QueueCountsRead(BaseModel):
    """Jobs per state in one queue, all organisations together (no tenant data)."""

    name: str
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int

    @classmethod
    def from_counts(cls, name: str, counts: dict[str, int]) -> QueueCountsRead:
        return cls(
            name=name,
            waiting=counts.get("waiting", 0),
            active=counts.get("active", 0),
            delayed=counts.get("delayed", 0),
            completed=counts.get("completed", 0),
            failed=counts.get("failed", 0),
        )


class DeadLetterRead(BaseModel):
    """A job that used up its attempts: ``id`` names the dead-letter entry (for replay),
    ``job_id`` the original job on ``queue``."""

    id: str
    queue: str
    name: str
    job_id: str
    data: dict[str, Any]
    error: str
    attempts: int
    failed_at: datetime | None
    created_at: datetime | None

    @classmethod
    def from_letter(cls, letter: DeadLetter) -> DeadLetterRead:
        return cls(
            id=letter.id,
            queue=letter.queue,
            name=letter.name,
            job_id=letter.job_id,
            data=letter.data,
            error=letter.error,
            attempts=letter.attempts,
            failed_at=from_epoch_ms(letter.failed_at),
            created_at=from_epoch_ms(letter.created_at),
        )


class ReplayRead(BaseModel):
    status: Literal["replayed"] = "replayed"
    queue: str
    job_id: str


class PurgeRead(BaseModel):
    purged: int
