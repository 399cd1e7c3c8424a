"""Jobs of channels: subscribing a channel's webhooks, on ``channel-sync``.

The job is asked for when a channel is created or changed in what its subscriptions depend on,
and sent only after that commit, so the request never waits for the store (or fails because it
is unreachable); the handler belongs to the channel type's integration and is registered by the
wiring.

A periodic check (``check_webhooks_handler``) asks for it again for every active channel: a
store drops subscriptions on its own (Shopify deletes one after 8 failed deliveries over 4 hours,
as during an outage of this deployment), and a job asked for while Redis was away was lost. A
registration that finds everything in place changes nothing (one list call to the store).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.models import Channel, ChannelStatus, ChannelType
from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.queues.worker import Handler, JobContext

logger = logging.getLogger(__name__)

REGISTER_WEBHOOKS_JOB = "channel.register-webhooks"
CHECK_WEBHOOKS_JOB = "channel.check-webhooks"
CHECK_PAGE = 1000


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


def check_webhooks_handler(
    sessionmaker: async_sessionmaker[AsyncSession],
    client: QueueClient,
    channel_types: Collection[ChannelType],
    *,
    enabled: bool,
) -> Handler:
    """The periodic ``channel.check-webhooks`` job: a registration job for every active channel
    of these types, in every organisation, read a page at a time. Turned off (no webhook base
    URL, or an interval of 0), a schedule installed earlier still fires and asks for nothing."""

    async def handle(_: JobContext) -> dict[str, int | bool]:
        if not enabled:
            return {"disabled": True}
        sent = 0
        after: uuid.UUID | None = None
        while True:
            async with sessionmaker() as session:
                page = await _active_channels(session, channel_types, after, CHECK_PAGE)
            if not page:
                break
            await client.add_many(
                [register_webhooks_job(org, channel, replace=True) for org, channel in page]
            )
            sent += len(page)
            after = page[-1][1]
        logger.info("webhook check: registration asked for %d channel(s)", sent)
        return {"channels": sent}

    return handle


async def _active_channels(
    session: AsyncSession,
    channel_types: Collection[ChannelType],
    after: uuid.UUID | None,
    limit: int,
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    # Deployment-wide on purpose, like the sweepers; each job names its organisation.
    statement = select(Channel.organization_id, Channel.id).where(
        Channel.status == ChannelStatus.ACTIVE, Channel.type.in_(list(channel_types))
    )
    if after is not None:
        statement = statement.where(Channel.id > after)
    rows = await session.execute(statement.order_by(Channel.id).limit(limit))
    return [(org, channel) for org, channel in rows]
