"""Jobs of channels: subscribing a new channel's webhooks, on ``channel-sync``.

The job is asked for when a channel is created and sent only after that commit, so the creation
never waits for the store (or fails because it is unreachable); the handler belongs to the
channel type's integration and is registered by the wiring.
"""

from __future__ import annotations

import uuid

from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName

REGISTER_WEBHOOKS_JOB = "channel.register-webhooks"


def register_webhooks_job(organization_id: uuid.UUID, channel_id: uuid.UUID) -> JobRequest:
    return JobRequest(
        queue=QueueName.CHANNEL_SYNC,
        name=REGISTER_WEBHOOKS_JOB,
        # One per channel: sending it again while it is kept is a no-op.
        job_id=f"channel-webhooks.{channel_id}",
        data={"organization_id": str(organization_id), "channel_id": str(channel_id)},
    )
