"""Marking channel levels due for a push in the stock transaction, the jobs sent for them, the
sweeper's source, and how a push job claims and settles marks."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from rappit.inventory.push_marks import DEBOUNCE_KEY
from rappit.inventory.push_repository import PushRepository
from rappit.inventory.repository import InventoryRepository
from rappit.inventory.service import InventoryService
from rappit.inventory.tasks import PUSH_JOB, pending_push_jobs_source, push_job
from rappit.kit.db import create_sessionmaker, unit_of_work
from rappit.kit.types import utcnow
from rappit.models import (
    Channel,
    ChannelListing,
    ChannelLocation,
    ChannelStatus,
    InventoryPushMark,
    StockLevel,
    StockMaster,
)
from rappit.queues.client import QueueClient
from rappit.queues.enqueue import SESSION_QUEUE_KEY
from rappit.queues.names import QueueName
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import make_channel, make_sku, make_warehouse


@dataclass
class Setup:
    org: uuid.UUID
    shop: Channel  # active, listings with inventory items
    closed: Channel  # disconnected, same listings
    skus: dict[str, uuid.UUID]
    warehouses: dict[str, uuid.UUID]
    locations: dict[str, uuid.UUID]  # external id -> channel location id (of ``shop``)


@pytest.fixture
async def setup(database: TestDatabase, tenant: Tenant) -> Setup:
    """Shop locations: L1 -> W1 (Rappit masters), L2 -> W1 (the channel masters), L3 -> W2
    (Rappit). SKU A is listed with an inventory item, B without one, C not at all."""
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        shop = await make_channel(session, org)
        closed = await make_channel(session, org)
        closed.status = ChannelStatus.DISCONNECTED
        w1 = await make_warehouse(session, org, "W1")
        w2 = await make_warehouse(session, org, "W2")
        skus = {code: (await make_sku(session, org, code)).id for code in "ABC"}
        for channel in (shop, closed):
            session.add(
                ChannelListing(
                    organization_id=org,
                    channel_id=channel.id,
                    sku_id=skus["A"],
                    external_variant_id="va",
                    external_inventory_item_id="111",
                )
            )
            session.add(
                ChannelListing(
                    organization_id=org,
                    channel_id=channel.id,
                    sku_id=skus["B"],
                    external_variant_id="vb",
                )
            )
        locations = {}
        for external_id, warehouse, master in (
            ("L1", w1, StockMaster.RAPPIT),
            ("L2", w1, StockMaster.CHANNEL),
            ("L3", w2, StockMaster.RAPPIT),
        ):
            location = ChannelLocation(
                organization_id=org,
                channel_id=shop.id,
                external_location_id=external_id,
                warehouse_id=warehouse.id,
                stock_master=master,
            )
            session.add(location)
            await session.flush()
            locations[external_id] = location.id
        session.add(
            ChannelLocation(
                organization_id=org,
                channel_id=closed.id,
                external_location_id="L1",
                warehouse_id=w1.id,
            )
        )
    return Setup(org, shop, closed, skus, {"W1": w1.id, "W2": w2.id}, locations)


async def adjust(sessionmaker: object, setup: Setup, changes: list[tuple[str, str, int]]) -> None:
    async with unit_of_work(sessionmaker) as session:  # type: ignore[arg-type]
        inventory = InventoryService(session, setup.org)
        for sku, warehouse, delta in changes:
            await inventory.adjust(
                sku_id=setup.skus[sku], warehouse_id=setup.warehouses[warehouse], delta=delta
            )


async def marks(database: TestDatabase) -> list[InventoryPushMark]:
    async with database.sessionmaker() as session:
        rows = await session.scalars(
            select(InventoryPushMark).order_by(InventoryPushMark.marked_at)
        )
        return list(rows.all())


def summary(setup: Setup, rows: list[InventoryPushMark]) -> set[tuple[str, str, str, int]]:
    names = {v: k for k, v in setup.skus.items()}
    places = {v: k for k, v in setup.locations.items()}
    channels = {setup.shop.id: "shop", setup.closed.id: "closed"}
    return {
        (channels[m.channel_id], names[m.sku_id], places[m.channel_location_id], m.version)
        for m in rows
    }


async def test_a_change_marks_every_location_rappit_masters_that_shows_it(
    database: TestDatabase, setup: Setup
) -> None:
    await adjust(database.sessionmaker, setup, [("A", "W1", 5), ("B", "W1", 5), ("C", "W1", 5)])

    # Only A is listed with an inventory item; of W1's locations only L1 is Rappit's to
    # push; the disconnected channel gets nothing.
    [first] = await marks(database)
    assert summary(setup, [first]) == {("shop", "A", "L1", 1)}

    await adjust(database.sessionmaker, setup, [("A", "W1", -1), ("A", "W1", -1)])
    await adjust(database.sessionmaker, setup, [("A", "W2", 3)])

    rows = await marks(database)
    assert summary(setup, rows) == {("shop", "A", "L1", 3), ("shop", "A", "L3", 1)}
    # Due since the first change: a SKU that keeps changing does not look fresh forever.
    assert rows[0].marked_at == first.marked_at
    assert all(m.organization_id == setup.org and m.claimed_by is None for m in rows)


async def test_reserving_and_releasing_mark_and_consuming_does_not(
    database: TestDatabase, setup: Setup
) -> None:
    await adjust(database.sessionmaker, setup, [("A", "W1", 10)])
    async with unit_of_work(database.sessionmaker) as session:
        level = await session.scalar(select(StockLevel).where(StockLevel.sku_id == setup.skus["A"]))
        assert level is not None
        repository = InventoryRepository(session, setup.org)
        assert await repository.change_level(level.id, on_hand_delta=0, reserved_delta=4)
        assert await repository.change_level(level.id, on_hand_delta=0, reserved_delta=-1)
        # Shipping lowers on hand and reserved alike: available stays, nothing to push.
        assert await repository.change_level(level.id, on_hand_delta=-2, reserved_delta=-2)
        # Refused by the guard: no change, no mark.
        assert await repository.change_level(level.id, on_hand_delta=-99, reserved_delta=0) is None

    assert summary(setup, await marks(database)) == {("shop", "A", "L1", 3)}


async def _change_then_fail(database: TestDatabase, setup: Setup) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await InventoryService(session, setup.org).adjust(
            sku_id=setup.skus["A"], warehouse_id=setup.warehouses["W1"], delta=5
        )
        raise RuntimeError("the request failed after the change")


async def test_a_rolled_back_change_leaves_no_mark(database: TestDatabase, setup: Setup) -> None:
    with pytest.raises(RuntimeError):
        await _change_then_fail(database, setup)

    assert await marks(database) == []


async def _push_jobs(queue_client: QueueClient) -> list[str]:
    jobs = await queue_client.queue(QueueName.CHANNEL_SYNC).getJobs(["delayed", "waiting"])
    assert {job.name for job in jobs} <= {PUSH_JOB}
    return sorted(str(job.id) for job in jobs)


async def test_only_a_new_or_claimed_mark_sends_a_push_job(
    database: TestDatabase, setup: Setup, queue_client: QueueClient
) -> None:
    # A 1 ms debounce: every send is a window (a job id) of its own, so each shows.
    sessionmaker = create_sessionmaker(
        database.engine, info={SESSION_QUEUE_KEY: queue_client, DEBOUNCE_KEY: 1}
    )
    await adjust(sessionmaker, setup, [("A", "W1", 5), ("A", "W1", 1), ("A", "W2", 2)])
    [first] = await _push_jobs(queue_client)
    assert first.startswith(f"inventory-push.{setup.shop.id}.")

    # The marks wait for that job: more changes send nothing.
    await asyncio.sleep(0.002)
    await adjust(sessionmaker, setup, [("A", "W1", 1), ("A", "W2", 1)])
    assert await _push_jobs(queue_client) == [first]

    # A push is working on them: its last round may be over, so another job is sent.
    async with unit_of_work(database.sessionmaker) as session:
        await session.execute(
            update(InventoryPushMark).values(claimed_by="inventory-push.x.1", claimed_at=utcnow())
        )
    await asyncio.sleep(0.002)
    await adjust(sessionmaker, setup, [("A", "W1", 1)])
    jobs = await _push_jobs(queue_client)
    assert len(jobs) == 2
    assert first in jobs

    job = await queue_client.get_job(QueueName.CHANNEL_SYNC, first)
    assert job is not None
    assert job.data == {"organization_id": str(setup.org), "channel_id": str(setup.shop.id)}


async def test_a_session_without_a_queue_keeps_the_marks_for_the_sweeper(
    database: TestDatabase, setup: Setup
) -> None:
    await adjust(database.sessionmaker, setup, [("A", "W1", 5)])

    source = pending_push_jobs_source(debounce_ms=1000, claim_timeout_s=120)
    async with database.sessionmaker() as session:
        assert await source(session, utcnow() - timedelta(seconds=60), 100) == []
        [request] = await source(session, utcnow() + timedelta(seconds=1), 100)
    assert (request.queue, request.name) == (QueueName.CHANNEL_SYNC, PUSH_JOB)
    assert request.data == {"organization_id": str(setup.org), "channel_id": str(setup.shop.id)}
    assert 0 < request.delay_ms <= 1000

    # A live claim is a push at work: not swept. An expired one is.
    async with unit_of_work(database.sessionmaker) as session:
        await session.execute(update(InventoryPushMark).values(claimed_by="j", claimed_at=utcnow()))
    async with database.sessionmaker() as session:
        assert await source(session, utcnow() + timedelta(seconds=1), 100) == []
    async with unit_of_work(database.sessionmaker) as session:
        await session.execute(
            update(InventoryPushMark).values(claimed_at=utcnow() - timedelta(seconds=121))
        )
    async with database.sessionmaker() as session:
        assert len(await source(session, utcnow() + timedelta(seconds=1), 100)) == 1


def test_a_push_job_id_names_the_channel_and_the_debounce_window() -> None:
    org, channel = uuid.uuid4(), uuid.uuid4()
    early = push_job(org, channel, now_ms=10_200, debounce_ms=1000)
    late = push_job(org, channel, now_ms=10_999, debounce_ms=1000)
    next_window = push_job(org, channel, now_ms=11_000, debounce_ms=1000)

    assert early.job_id == late.job_id == f"inventory-push.{channel}.10"
    assert next_window.job_id == f"inventory-push.{channel}.11"
    # Each runs when its window ends.
    assert (early.delay_ms, late.delay_ms, next_window.delay_ms) == (800, 1, 1000)


async def test_claims_are_exclusive_and_a_mark_changed_meanwhile_is_kept(
    database: TestDatabase, setup: Setup
) -> None:
    await adjust(database.sessionmaker, setup, [("A", "W1", 5), ("A", "W2", 5)])

    async with unit_of_work(database.sessionmaker) as session:
        claimed = await PushRepository(session, setup.org, setup.shop.id, "job-1").claim(
            limit=100, claim_timeout_s=120
        )
    assert sorted(claimed.values()) == [1, 1]
    async with unit_of_work(database.sessionmaker) as session:
        other = PushRepository(session, setup.org, setup.shop.id, "job-2")
        assert await other.claim(limit=100, claim_timeout_s=120) == {}
    async with unit_of_work(database.sessionmaker) as session:
        # A retry of the same job takes its own claims back.
        again = PushRepository(session, setup.org, setup.shop.id, "job-1")
        assert await again.claim(limit=100, claim_timeout_s=120) == claimed

    # W2 changes while job-1 pushes.
    await adjust(database.sessionmaker, setup, [("A", "W2", -1)])
    async with unit_of_work(database.sessionmaker) as session:
        repository = PushRepository(session, setup.org, setup.shop.id, "job-1")
        assert await repository.settle(claimed) == 1

    [kept] = await marks(database)
    assert summary(setup, [kept]) == {("shop", "A", "L3", 2)}
    assert (kept.claimed_by, kept.claimed_at) == (None, None)
    async with unit_of_work(database.sessionmaker) as session:
        other = PushRepository(session, setup.org, setup.shop.id, "job-2")
        assert list((await other.claim(limit=100, claim_timeout_s=120)).values()) == [2]
