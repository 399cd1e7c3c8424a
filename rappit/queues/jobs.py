"""What a job is before it reaches Redis: queue, name, data and a deterministic id."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rappit.queues.names import QueueName

# Completed jobs are kept a day, failed ones a week (then only the dead-letter copy remains).
KEEP_COMPLETED_S = 24 * 3600
KEEP_FAILED_S = 7 * 24 * 3600


@dataclass(frozen=True)
class JobRequest:
    """A job to run. ``job_id`` is built from what makes the work unique (an event id, a
    channel and resource), so sending the same request twice runs it once."""

    queue: QueueName
    name: str
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)
    delay_ms: int = 0
    attempts: int | None = None
    # Remove a finished job kept under the same id first (a replay), instead of the usual
    # "same id, same job" no-op.
    replace: bool = False

    def __post_init__(self) -> None:
        # Node BullMQ refuses ':' (its key separator) and plain integers (its own counter ids);
        # keeping to the same rules keeps the queues readable by its tooling.
        if not self.job_id or ":" in self.job_id or self.job_id.isdigit():
            raise ValueError(f"job id '{self.job_id}' is not usable (empty, ':' or an integer)")


def job_options(request: JobRequest, *, attempts: int, backoff_ms: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "jobId": request.job_id,
        "attempts": request.attempts or attempts,
        "backoff": {"type": "exponential", "delay": backoff_ms},
        "removeOnComplete": {"age": KEEP_COMPLETED_S},
        "removeOnFail": {"age": KEEP_FAILED_S},
    }
    if request.delay_ms:
        options["delay"] = request.delay_ms
    return options


def retry_delays_ms(attempts: int, backoff_ms: int) -> list[int]:
    """Waits between attempts under exponential backoff: base, 2 * base, 4 * base..."""
    return [backoff_ms * 2**n for n in range(attempts - 1)]
