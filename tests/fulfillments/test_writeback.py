"""The write-back job with a channel that answers as told: retries keep the write pending
with the last error, the last attempt or a refusal fails it visibly, a tracking change made
during a write is sent in another round, and the sweeper finds writes left pending."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from rappit.fulfillments.service import FulfillmentLine, FulfillmentService, Tracking
from rappit.fulfillments.target import (
    ChannelFulfillmentRef,
    FulfillmentRefused,
    FulfillmentTargets,
    OutboundFulfillment,
    OutboundLine,
)
from rappit.fulfillments.tasks import pending_writeback_jobs, writeback_job
from rappit.fulfillments.writeback import writeback_handler
from rappit.kit.db import unit_of_work
from rappit.models import Channel, ChannelStatus, ChannelType, Fulfillment, OrderItem
from rappit.orders.service import OrderService
from rappit.queues.names import QueueName
from rappit.queues.worker import JobContext, PermanentJobError
from rappit.runtime import Runtime
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import (
    channel_order,
    line,
    make_channel,
    make_sku,
    make_warehouse,
    stock,
)

SHOPIFY_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ScriptedChannel:
    """A channel target that records calls and answers from a script: an exception to raise,
    or (for creates) the fulfilment id to answer."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, Any]] = []
        self.during_create: Any = None

    def _next(self) -> Any:
        answer = self.answers.pop(0) if self.answers else "ok"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def create(
        self, channel: Channel, fulfillment: OutboundFulfillment
    ) -> ChannelFulfillmentRef:
        self.calls.append(("create", fulfillment))
        if self.during_create is not None:
            await self.during_create()
        answer = self._next()
        return ChannelFulfillmentRef(str(answer), fulfillment.tracking, updated_at=SHOPIFY_TIME)

    async def update_tracking(
        self, channel: Channel, external_id: str, tracking: Tracking, *, notify_customer: bool
    ) -> datetime | None:
        self.calls.append(("update_tracking", (external_id, tracking, notify_customer)))
        self._next()
        return SHOPIFY_TIME + timedelta(minutes=1)


def targets_for(channel: ScriptedChannel) -> FulfillmentTargets:
    targets = FulfillmentTargets()
    targets.register(ChannelType.SHOPIFY, channel)
    return targets


async def _fulfilment(
    queue_runtime: Runtime, tenant: Tenant, tracking: Tracking = Tracking(number="T-1")
) -> uuid.UUID:
    """Order 1001 (3 x A on L1) and a fulfilment of 2 of them made in Rappit."""
    org = tenant.organization_id
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        channel = await make_channel(session, org)
        warehouse = await make_warehouse(session, org, "W")
        await stock(session, org, await make_sku(session, org, "A"), warehouse, 10)
        result = await OrderService(session, org).create_or_update_from_channel(
            channel, channel_order("1001", [line("L1", 3, sku="A")])
        )
        item = (await session.scalars(select(OrderItem))).one()
        fulfillment, _ = await FulfillmentService(session, org).create_for_order(
            result.order.id,
            [FulfillmentLine(item.id, 2)],
            tracking=tracking,
            notify_customer=True,
        )
    return fulfillment.id


async def _run(
    queue_runtime: Runtime,
    tenant: Tenant,
    fulfillment_id: uuid.UUID,
    channel: ScriptedChannel,
    *,
    attempt: int = 1,
) -> object:
    handler = writeback_handler(queue_runtime.sessionmaker, targets_for(channel))
    return await handler(
        JobContext(
            QueueName.CHANNEL_SYNC,
            "fulfillments.writeback",
            f"fulfillment-writeback.{fulfillment_id}",
            {"organization_id": str(tenant.organization_id), "fulfillment_id": str(fulfillment_id)},
            attempt,
            3,
        )
    )


async def _row(database: TestDatabase, fulfillment_id: uuid.UUID) -> Fulfillment:
    async with database.sessionmaker() as session:
        return await session.get_one(Fulfillment, fulfillment_id)


async def test_a_create_sends_the_lines_by_channel_id_and_stores_the_answer(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    fulfillment_id = await _fulfilment(queue_runtime, tenant)
    channel = ScriptedChannel("5001")

    result = await _run(queue_runtime, tenant, fulfillment_id, channel)

    assert result == {"sync_status": "synced", "external_fulfillment_id": "5001"}
    assert channel.calls == [
        (
            "create",
            OutboundFulfillment(
                external_order_id="1001",
                lines=(OutboundLine("L1", 2),),
                tracking=Tracking(number="T-1"),
                notify_customer=True,
                may_exist=False,
                known_external_ids=frozenset(),
            ),
        )
    ]
    row = await _row(database, fulfillment_id)
    assert (row.status, row.sync_status, row.synced_revision, row.sync_error) == (
        "success",
        "synced",
        1,
        None,
    )
    assert (row.external_fulfillment_id, row.channel_updated_at) == ("5001", SHOPIFY_TIME)
    assert row.create_attempted_at is not None
    # Run again (a duplicate job): nothing left to write.
    await _run(queue_runtime, tenant, fulfillment_id, channel)
    assert len(channel.calls) == 1


async def test_retries_keep_the_write_pending_and_the_last_attempt_fails_it(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    fulfillment_id = await _fulfilment(queue_runtime, tenant)
    channel = ScriptedChannel(TimeoutError("read timed out"), TimeoutError("read timed out"))

    with pytest.raises(TimeoutError):
        await _run(queue_runtime, tenant, fulfillment_id, channel, attempt=1)
    row = await _row(database, fulfillment_id)
    assert (row.status, row.sync_status, row.sync_error) == (
        "pending",
        "pending",
        "TimeoutError: read timed out",
    )

    with pytest.raises(TimeoutError):
        await _run(queue_runtime, tenant, fulfillment_id, channel, attempt=3)
    row = await _row(database, fulfillment_id)
    assert (row.status, row.sync_status, row.sync_error) == (
        "failed",
        "failed",
        "TimeoutError: read timed out",
    )
    # The second attempt knew the first may have reached the channel.
    assert [call[1].may_exist for call in channel.calls] == [False, True]


async def test_a_refusal_fails_the_write_at_once_with_its_reason(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    fulfillment_id = await _fulfilment(queue_runtime, tenant)
    channel = ScriptedChannel(FulfillmentRefused("the fulfilment order is on hold"))

    with pytest.raises(PermanentJobError, match="on hold"):
        await _run(queue_runtime, tenant, fulfillment_id, channel)

    row = await _row(database, fulfillment_id)
    assert (row.status, row.sync_status, row.sync_error) == (
        "failed",
        "failed",
        "the fulfilment order is on hold",
    )


async def test_new_tracking_sent_after_a_refusal_tries_the_create_again(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    fulfillment_id = await _fulfilment(queue_runtime, tenant)
    channel = ScriptedChannel(FulfillmentRefused("the fulfilment order is on hold"), "5002")
    with pytest.raises(PermanentJobError):
        await _run(queue_runtime, tenant, fulfillment_id, channel)

    async with unit_of_work(queue_runtime.sessionmaker) as session:
        await FulfillmentService(session, tenant.organization_id).update_tracking(
            fulfillment_id, Tracking(number="T-2")
        )
    await _run(queue_runtime, tenant, fulfillment_id, channel)

    row = await _row(database, fulfillment_id)
    assert (row.status, row.sync_status, row.external_fulfillment_id) == (
        "success",
        "synced",
        "5002",
    )
    assert [(name, call.tracking.number) for name, call in channel.calls] == [
        ("create", "T-1"),
        ("create", "T-2"),
    ]


async def test_tracking_changed_during_a_create_is_sent_in_another_round(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    fulfillment_id = await _fulfilment(queue_runtime, tenant)
    channel = ScriptedChannel("5003")

    async def change_tracking() -> None:
        channel.during_create = None
        async with unit_of_work(queue_runtime.sessionmaker) as session:
            await FulfillmentService(session, tenant.organization_id).update_tracking(
                fulfillment_id, Tracking(number="T-2", company="FedEx"), notify_customer=False
            )

    channel.during_create = change_tracking
    await _run(queue_runtime, tenant, fulfillment_id, channel)

    assert [name for name, _ in channel.calls] == ["create", "update_tracking"]
    assert channel.calls[1][1] == ("5003", Tracking(number="T-2", company="FedEx"), False)
    row = await _row(database, fulfillment_id)
    assert (row.sync_status, row.sync_revision, row.synced_revision) == ("synced", 2, 2)
    assert row.channel_updated_at == SHOPIFY_TIME + timedelta(minutes=1)


async def test_a_disconnected_channel_fails_the_write(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    fulfillment_id = await _fulfilment(queue_runtime, tenant)
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        (await session.scalars(select(Channel))).one().status = ChannelStatus.DISCONNECTED
    channel = ScriptedChannel()

    with pytest.raises(PermanentJobError, match="the channel is disconnected"):
        await _run(queue_runtime, tenant, fulfillment_id, channel)

    row = await _row(database, fulfillment_id)
    assert (row.status, row.sync_status, row.sync_error) == (
        "failed",
        "failed",
        "the channel is disconnected",
    )
    assert channel.calls == []


async def test_a_job_for_a_fulfilment_that_does_not_exist_fails_for_good(
    queue_runtime: Runtime, tenant: Tenant
) -> None:
    with pytest.raises(PermanentJobError, match="does not exist"):
        await _run(queue_runtime, tenant, uuid.uuid4(), ScriptedChannel())


async def test_the_sweeper_resends_writes_left_pending(
    queue_runtime: Runtime, database: TestDatabase, tenant: Tenant
) -> None:
    pending = await _fulfilment(queue_runtime, tenant)
    async with unit_of_work(queue_runtime.sessionmaker) as session:
        order_id = (await session.get_one(Fulfillment, pending)).order_id
        session.add(  # reported by the channel: nothing to write back
            Fulfillment(organization_id=tenant.organization_id, order_id=order_id, status="success")
        )
    later = datetime.now(UTC) + timedelta(minutes=1)

    async with database.sessionmaker() as session:
        jobs = await pending_writeback_jobs(session, later, 100)
        too_recent = await pending_writeback_jobs(session, later - timedelta(hours=1), 100)

    assert jobs == [writeback_job(tenant.organization_id, pending, replace=True)]
    assert too_recent == []
