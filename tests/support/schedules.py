"""What the scheduler installed in Redis, as tests compare it."""

from __future__ import annotations

from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName


async def installed_schedules(client: QueueClient, queue: QueueName) -> dict[str, tuple[str, int]]:
    """The queue's job schedulers: scheduler id -> (job name, interval in milliseconds)."""
    return {
        schedule["key"]: (schedule["name"], int(schedule["every"]))
        for schedule in await client.queue(queue).getJobSchedulers()
    }
