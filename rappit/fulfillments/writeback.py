"""Writing one fulfilment to its channel (the ``fulfillments.writeback`` job).

Each round: read what the channel lacks under the fulfilment's row lock (its creation, or the
tracking of a newer revision), note before a create that one is being sent
(``create_attempted_at``, committed before the call), call the channel with no transaction open,
then store the outcome under the order's lock (the lock the channel's fulfilment webhooks take,
so a webhook and this job never both decide which fulfilment an id belongs to). A change that
came in meanwhile makes another round.

Failures: a refusal (``FulfillmentRefused``) fails the write at once with the reason kept on
the fulfilment (``sync_error``, shown by the API); anything else is tried again by the queue
with backoff, and fails the write after the last attempt. A create that is tried again after
it may have been carried out looks for the fulfilment that call made before making one
(``OutboundFulfillment.may_exist``). Stock is never touched here: it was consumed when the
fulfilment was recorded.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.fulfillments.service import FulfillmentService, Tracking, channel_has, tracking_of
from rappit.fulfillments.target import (
    ChannelFulfillmentRef,
    FulfillmentRefused,
    FulfillmentTarget,
    FulfillmentTargets,
    OutboundFulfillment,
    OutboundLine,
)
from rappit.kit.db import unit_of_work
from rappit.kit.types import utcnow
from rappit.models import (
    Channel,
    ChannelStatus,
    Fulfillment,
    FulfillmentStatus,
    FulfillmentSyncStatus,
    Order,
)
from rappit.models.base import lock_tenant_row
from rappit.orders.repository import OrderRepository
from rappit.queues.worker import Handler, JobContext, PermanentJobError

logger = logging.getLogger(__name__)

# Rounds one job makes while tracking keeps changing under it; then the queue tries again.
MAX_ROUNDS = 5


class StillChanging(Exception):
    """The fulfilment changed during every round: the queue runs the job again later."""


@dataclass(frozen=True)
class Step:
    """One write: the fulfilment's creation (``outbound``) or a tracking change."""

    revision: int
    order_id: uuid.UUID
    channel: Channel
    target: FulfillmentTarget
    outbound: OutboundFulfillment | None = None
    external_id: str | None = None
    tracking: Tracking | None = None
    notify_customer: bool = False


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:4000]


def _fail(fulfillment: Fulfillment, error: str) -> None:
    fulfillment.sync_status = FulfillmentSyncStatus.FAILED
    fulfillment.sync_error = error
    if fulfillment.external_fulfillment_id is None:
        # Never made in the channel. The stock stays consumed: the goods left the warehouse.
        fulfillment.status = FulfillmentStatus.FAILED


class Writer:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        targets: FulfillmentTargets,
        organization_id: uuid.UUID,
        fulfillment_id: uuid.UUID,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.targets = targets
        self.organization_id = organization_id
        self.fulfillment_id = fulfillment_id

    async def run(self, context: JobContext) -> dict[str, object]:
        for _ in range(MAX_ROUNDS):
            step, refusal = await self._next_step()
            if refusal is not None:
                raise PermanentJobError(refusal)
            if step is None:
                return await self._outcome()
            try:
                ref, updated_at = await self._call(step)
            except FulfillmentRefused as exc:
                await self._failed(step, str(exc), final=True)
                raise PermanentJobError(str(exc)) from exc
            except Exception as exc:
                await self._failed(step, _text(exc), final=context.is_last_attempt)
                raise
            await self._store(step, ref, updated_at)
        raise StillChanging(f"fulfilment {self.fulfillment_id} changed during {MAX_ROUNDS} writes")

    async def _next_step(self) -> tuple[Step | None, str | None]:
        """What the channel lacks, read and (for a create) marked as being sent in one
        transaction; the mark is committed before the call."""
        async with unit_of_work(self.sessionmaker) as session:
            fulfillment = await lock_tenant_row(
                session, Fulfillment, self.organization_id, self.fulfillment_id
            )
            if fulfillment is None:
                return None, f"fulfilment {self.fulfillment_id} does not exist"
            if fulfillment.sync_status != FulfillmentSyncStatus.PENDING:
                return None, None
            order = await session.get_one(Order, fulfillment.order_id)
            channel = await session.get_one(Channel, order.channel_id)
            target = self.targets.get(channel.type)
            refusal = None
            if target is None:
                refusal = f"fulfilments cannot be written to {channel.type} channels"
            elif channel.status != ChannelStatus.ACTIVE:
                refusal = "the channel is disconnected"
            if refusal is not None or target is None:
                _fail(fulfillment, refusal or "")
                return None, refusal
            if fulfillment.external_fulfillment_id is not None:
                return Step(
                    revision=fulfillment.sync_revision,
                    order_id=order.id,
                    channel=channel,
                    target=target,
                    external_id=fulfillment.external_fulfillment_id,
                    tracking=tracking_of(fulfillment),
                    notify_customer=fulfillment.notify_customer,
                ), None
            service = FulfillmentService(session, self.organization_id)
            lines = (await service.lines_by_external_id([fulfillment.id])).get(fulfillment.id, {})
            known = await session.scalars(
                select(Fulfillment.external_fulfillment_id).where(
                    Fulfillment.organization_id == self.organization_id,
                    Fulfillment.order_id == order.id,
                    Fulfillment.external_fulfillment_id.is_not(None),
                )
            )
            outbound = OutboundFulfillment(
                external_order_id=order.external_order_id,
                lines=tuple(OutboundLine(key, units) for key, units in sorted(lines.items())),
                tracking=tracking_of(fulfillment),
                notify_customer=fulfillment.notify_customer,
                may_exist=fulfillment.create_attempted_at is not None,
                known_external_ids=frozenset(str(k) for k in known.all()),
            )
            if fulfillment.create_attempted_at is None:
                fulfillment.create_attempted_at = utcnow()
            return Step(
                revision=fulfillment.sync_revision,
                order_id=order.id,
                channel=channel,
                target=target,
                outbound=outbound,
            ), None

    async def _call(self, step: Step) -> tuple[ChannelFulfillmentRef | None, datetime | None]:
        """The channel's fulfilment (after a create) and its updated_at there."""
        if step.outbound is not None:
            ref = await step.target.create(step.channel, step.outbound)
            return ref, ref.updated_at
        assert step.external_id is not None
        assert step.tracking is not None
        updated_at = await step.target.update_tracking(
            step.channel, step.external_id, step.tracking, notify_customer=step.notify_customer
        )
        return None, updated_at

    async def _store(
        self, step: Step, ref: ChannelFulfillmentRef | None, updated_at: datetime | None
    ) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            # The order first, as the webhook handlers take it: they may be matching the same
            # fulfilment by its content right now.
            await OrderRepository(session, self.organization_id).lock_orders([step.order_id])
            fulfillment = await lock_tenant_row(
                session, Fulfillment, self.organization_id, self.fulfillment_id
            )
            if fulfillment is None:
                return
            pushed = step.revision
            if ref is not None:
                assert step.outbound is not None
                await self._store_created(session, fulfillment, ref)
                if ref.adopted and not channel_has(ref.tracking, step.outbound.tracking):
                    # Made by an earlier attempt, before a tracking change: send the change.
                    pushed = fulfillment.synced_revision
            fulfillment.synced_revision = max(fulfillment.synced_revision, pushed)
            fulfillment.sync_error = None
            if updated_at is not None and (
                fulfillment.channel_updated_at is None
                or updated_at > fulfillment.channel_updated_at
            ):
                # What the channel holds now: the webhooks of earlier states are older.
                fulfillment.channel_updated_at = updated_at
            if fulfillment.synced_revision >= fulfillment.sync_revision:
                fulfillment.sync_status = FulfillmentSyncStatus.SYNCED
            else:
                fulfillment.sync_status = FulfillmentSyncStatus.PENDING

    async def _store_created(
        self, session: AsyncSession, fulfillment: Fulfillment, ref: ChannelFulfillmentRef
    ) -> None:
        if fulfillment.external_fulfillment_id is None:
            holder = await session.scalar(
                select(Fulfillment.id).where(
                    Fulfillment.organization_id == self.organization_id,
                    Fulfillment.order_id == fulfillment.order_id,
                    Fulfillment.external_fulfillment_id == ref.external_id,
                )
            )
            if holder is None:
                fulfillment.external_fulfillment_id = ref.external_id
            else:
                logger.error(
                    "channel fulfilment %s is already held by fulfilment %s; %s keeps no id",
                    ref.external_id,
                    holder,
                    fulfillment.id,
                )
        elif fulfillment.external_fulfillment_id != ref.external_id:
            # Its webhook matched it to another channel fulfilment of the very same lines.
            logger.warning(
                "fulfilment %s was matched to channel fulfilment %s, the write made %s",
                fulfillment.id,
                fulfillment.external_fulfillment_id,
                ref.external_id,
            )
        if fulfillment.status in (FulfillmentStatus.PENDING, FulfillmentStatus.FAILED):
            fulfillment.status = FulfillmentStatus.SUCCESS

    async def _failed(self, step: Step, error: str, *, final: bool) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            fulfillment = await lock_tenant_row(
                session, Fulfillment, self.organization_id, self.fulfillment_id
            )
            if fulfillment is None:
                return
            if final and fulfillment.sync_revision == step.revision:
                _fail(fulfillment, error)
            else:
                # Tried again: by the queue, or (a newer change came in) by the sweeper.
                fulfillment.sync_error = error
        logger.warning(
            "fulfilment %s not written to its channel (final=%s): %s",
            self.fulfillment_id,
            final,
            error,
        )

    async def _outcome(self) -> dict[str, object]:
        async with self.sessionmaker() as session:
            fulfillment = await session.get(Fulfillment, self.fulfillment_id)
            if fulfillment is None:
                return {}
            return {
                "sync_status": fulfillment.sync_status,
                "external_fulfillment_id": fulfillment.external_fulfillment_id,
            }


def writeback_handler(
    sessionmaker: async_sessionmaker[AsyncSession], targets: FulfillmentTargets
) -> Handler:
    async def handle(context: JobContext) -> dict[str, object]:
        try:
            organization_id = uuid.UUID(str(context.data["organization_id"]))
            fulfillment_id = uuid.UUID(str(context.data["fulfillment_id"]))
        except (KeyError, ValueError) as exc:
            raise PermanentJobError(f"job data is not a fulfilment reference: {exc}") from exc
        return await Writer(sessionmaker, targets, organization_id, fulfillment_id).run(context)

    return handle
