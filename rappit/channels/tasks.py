"""Jobs of channels: subscribing a channel's webhooks, on ``channel-sync``.

The job is asked for when a channel is created or changed in what its subscriptions depend on,
and sent only after that commit, so the creation
never waits for the store (or fails because it is unreachable); the handler belongs to the
channel type's integration and is registered by the wiring.
"""

from __future__ import annotations

import uuid

from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName

REGISTER_WEBHOOKS_JOB = "channel.register-webhooks"


def register_webhooks_job(
    organization_id: uuid.UUID, channel_id: uuid.UUID, *, replace: bool = False
) -> JobRequest:
    """``replace``: the channel changed in a way its subscriptions depend on (API version,
    address, token) after an earlier registration finished; a waiting one reads the channel when
    it runs and stands for the change too."""
    return JobRequest(
        queue=QueueName.CHANNEL_SYNC,
        name=REGISTER_WEBHOOKS_JOB,
        # One per channel: sending it again while it waits is a no-op.
        job_id=f"channel-webhooks.{channel_id}",
        data={"organization_id": str(organization_id), "channel_id": str(channel_id)},
        replace=replace,
    )
