"""Reconciliation of a Shopify channel: re-read what the store changed recently, heal what
webhooks missed, and record how far Rappit had drifted from the store.

Shopify does not guarantee delivery (8 retries over 4 hours, delays of up to a day), so a
periodic run re-polls every order updated in a recent window (every status) and compares it
with Rappit's copy by the channel's ``updated_at``: an order Rappit does not have is *missing*,
one whose stored version is older is *stale*. Both are applied through the same order service
as webhooks and polls, which is idempotent: a reconciliation never duplicates an order and a
version older than the stored one changes nothing. The fulfilments those orders show that
Rappit has not recorded (their webhook never came) are recorded, consuming their stock once
(``channel_fulfillments``). Then each linked inventory item at each
mapped location is compared: Rappit's available against the store's; where the channel is the
stock master its figure is applied (as the missed ``inventory_levels/update`` would have been),
elsewhere the difference is only recorded.

The run's ``counts`` carry the numbers (``orders_checked``, ``orders_missing``,
``orders_stale``, ``orders_healed``, ``fulfillments_checked`` (those not recorded yet),
``fulfillments_healed``, ``fulfillments_not_held``, ``stock_checked``, ``stock_differing``,
``stock_healed``, ``unmapped_locations``, ``invalid``); its ``drift`` holds the first
``DETAIL_LIMIT`` entries of each kind (``{"orders": [...], "fulfillments": [...],
"stock": [...]}``): the counts say how many there were in all.

Like every pull it resumes from its cursor (``window_hours``, ``since``, ``page_info``,
``orders_done``, ``item_offset``): each page is applied together with the cursor.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.config import Settings
from rappit.integrations.shopify.channel_fulfillments import Outcome, apply_channel_fulfillment
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.orders import ShopifyPayloadError, map_order
from rappit.integrations.shopify.stock_levels import (
    ID_CHUNK,
    compare_levels,
    fetch_levels,
    load_inventory_map,
)
from rappit.kit.types import utcnow
from rappit.models import Channel, Fulfillment, Order
from rappit.orders.inputs import ChannelOrder
from rappit.orders.service import OrderService, UpsertOutcome
from rappit.sync.service import SyncContext

# Entries kept per kind of drift; a run over a badly drifted store must stay a small row.
DETAIL_LIMIT = 100
COUNTS = (
    "orders_checked",
    "orders_missing",
    "orders_stale",
    "orders_healed",
    "fulfillments_healed",
    "stock_checked",
    "stock_differing",
    "stock_healed",
)


async def pull_reconcile(sync: SyncContext, client: ShopifyClient) -> None:
    for name in COUNTS:
        sync.counts.setdefault(name, 0)
    sync.drift.setdefault("orders", [])
    sync.drift.setdefault("fulfillments", [])
    sync.drift.setdefault("stock", [])
    # Orders first: healing a missed order reserves its stock, which the stock check then
    # finds in agreement with the store instead of reporting it as drift.
    if not sync.cursor.get("orders_done"):
        await _reconcile_orders(sync, client)
    await _reconcile_stock(sync, client)


def _window_hours(sync: SyncContext) -> int:
    # Recorded on the run by whoever started it; a run started without one (the command line)
    # takes the configured window.
    hours = sync.cursor.get("window_hours")
    return int(hours) if hours is not None else Settings().reconcile_window_hours


def _record(sync: SyncContext, kind: str, entry: dict[str, Any]) -> None:
    entries: list[dict[str, Any]] = sync.drift[kind]
    if len(entries) < DETAIL_LIMIT:
        entries.append(entry)


# --- orders -----------------------------------------------------------------------------------


async def _reconcile_orders(sync: SyncContext, client: ShopifyClient) -> None:
    hours = _window_hours(sync)
    # Fixed when the run starts, so every attempt of it checks the same window.
    since = sync.cursor.get("since") or (utcnow() - timedelta(hours=hours)).isoformat()
    window = {"window_hours": hours, "since": since}
    params = {"status": "any", "updated_at_min": since}
    async for response in client.pages(
        "orders.json", params, page_info=sync.cursor.get("page_info")
    ):
        mapped: list[ChannelOrder] = []
        shipments: dict[str, list[dict[str, Any]]] = {}
        for payload in response.json.get("orders", []):
            try:
                data = map_order(payload)
            except ShopifyPayloadError as exc:
                sync.count("invalid")
                sync.problem("invalid_order", order_id=str(payload.get("id")), error=str(exc))
                continue
            mapped.append(data)
            fulfillments = payload.get("fulfillments")
            if isinstance(fulfillments, list) and fulfillments:
                shipments[data.external_order_id] = [f for f in fulfillments if isinstance(f, dict)]

        async def apply(
            session: AsyncSession,
            orders: list[ChannelOrder] = mapped,
            fulfillments: dict[str, list[dict[str, Any]]] = shipments,
        ) -> None:
            await _heal_page(session, sync, orders, fulfillments)

        await sync.commit_page(
            apply,
            {
                **window,
                "page_info": response.next_page_info,
                "orders_done": response.next_page_info is None,
            },
        )


async def _heal_page(
    session: AsyncSession,
    sync: SyncContext,
    orders: list[ChannelOrder],
    shipments: dict[str, list[dict[str, Any]]],
) -> None:
    """Apply one page: the orders Rappit is missing or holds an older copy of, then the
    fulfilments those orders show that Rappit has not recorded.

    Every order the page will write is locked first (``OrderService.lock_batch``)."""
    org = sync.organization_id
    channel = await session.get_one(Channel, sync.channel.id)
    stored = dict(
        (
            await session.execute(
                select(Order.external_order_id, Order.channel_updated_at).where(
                    Order.organization_id == org,
                    Order.channel_id == channel.id,
                    Order.external_order_id.in_([o.external_order_id for o in orders]),
                )
            )
        ).all()
    )
    behind = [
        data
        for data in orders
        if (updated := stored.get(data.external_order_id)) is None or updated < data.updated_at
    ]
    unseen = await _unseen_fulfillments(session, sync, shipments)
    service = OrderService(session, org)
    locked = await service.lock_batch(
        channel.id, sorted({data.external_order_id for data in behind} | set(unseen))
    )
    sync.count("orders_checked", len(orders))
    for data in behind:
        known = data.external_order_id in stored
        rappit_updated_at = stored.get(data.external_order_id)
        kind = "stale" if known else "missing"
        sync.count(f"orders_{kind}")
        result = await service.create_or_update_from_channel(channel, data)
        healed = result.outcome != UpsertOutcome.STALE
        if healed:
            sync.count("orders_healed")
        _record(
            sync,
            "orders",
            {
                "external_order_id": data.external_order_id,
                "name": data.name,
                "drift": kind,
                "rappit_updated_at": rappit_updated_at.isoformat() if rappit_updated_at else None,
                "channel_updated_at": data.updated_at.astimezone(UTC).isoformat(),
                "status": result.order.status,
                "healed": healed,
            },
        )
    await _heal_fulfillments(
        session, sync, unseen, {order.external_order_id: order for order in locked}
    )


async def _unseen_fulfillments(
    session: AsyncSession, sync: SyncContext, shipments: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """Per order, the fulfilments it shows that Rappit has not recorded by the channel's id."""
    if not shipments:
        return {}
    known = {
        (external_order_id, external_fulfillment_id)
        for external_order_id, external_fulfillment_id in (
            await session.execute(
                select(Order.external_order_id, Fulfillment.external_fulfillment_id)
                .join(Fulfillment, Fulfillment.order_id == Order.id)
                .where(
                    Order.organization_id == sync.organization_id,
                    Order.channel_id == sync.channel.id,
                    Order.external_order_id.in_(list(shipments)),
                    Fulfillment.external_fulfillment_id.is_not(None),
                )
            )
        ).all()
    }
    unseen: dict[str, list[dict[str, Any]]] = {}
    for external_order_id, fulfillments in shipments.items():
        new = [f for f in fulfillments if (external_order_id, str(f.get("id"))) not in known]
        if new:
            unseen[external_order_id] = new
    return unseen


async def _heal_fulfillments(
    session: AsyncSession,
    sync: SyncContext,
    unseen: dict[str, list[dict[str, Any]]],
    locked: dict[str, Order],
) -> None:
    """Record the fulfilments the orders show that Rappit has not: their webhook never came.
    Until one is recorded its units stay held (``OrderService.reconcile``) and on hand stays
    as it was, so a lost ``fulfillments/create`` is healed here. One whose units are not held
    (it shipped before Rappit held them, e.g. before the channel was connected) is listed but
    not recorded: its stock may already be counted (``require_held``)."""
    org = sync.organization_id
    for external_order_id, fulfillments in unseen.items():
        order = locked[external_order_id]  # by ``_heal_page``, with the page's other orders
        for payload in fulfillments:
            sync.count("fulfillments_checked")
            try:
                applied = await apply_channel_fulfillment(
                    session, org, order, payload, require_held=True
                )
            except ShopifyPayloadError as exc:
                sync.count("invalid")
                sync.problem(
                    "invalid_fulfillment",
                    order_id=external_order_id,
                    fulfillment_id=str(payload.get("id")),
                    error=str(exc),
                )
                continue
            if applied.outcome in (Outcome.RECORDED, Outcome.CLAIMED):
                sync.count("fulfillments_healed")
            elif applied.outcome == Outcome.NOT_HELD:
                sync.count("fulfillments_not_held")
            else:
                continue  # matched, not shipped, nothing open: no drift
            _record(
                sync,
                "fulfillments",
                {
                    "external_order_id": external_order_id,
                    "external_fulfillment_id": applied.external_id,
                    "drift": "missing",
                    "outcome": applied.outcome.value,
                },
            )


# --- stock ------------------------------------------------------------------------------------


async def _reconcile_stock(sync: SyncContext, client: ShopifyClient) -> None:
    async with sync.sessionmaker() as session:
        inventory_map = await load_inventory_map(session, sync.channel, client)
    start = int(sync.cursor.get("item_offset", 0))
    if start == 0:
        # Nothing of the stock check is saved yet, so this is the first time it is recorded.
        for location in inventory_map.unmapped:
            sync.problem("unmapped_location", **location)
        sync.counts["unmapped_locations"] = len(inventory_map.unmapped)
    item_ids = inventory_map.item_ids
    for offset in range(start, len(item_ids), ID_CHUNK):
        levels = await fetch_levels(
            client, item_ids[offset : offset + ID_CHUNK], inventory_map.location_ids
        )

        async def apply(session: AsyncSession, page: list[dict[str, Any]] = levels) -> None:
            for level in await compare_levels(
                session,
                sync.organization_id,
                page,
                inventory_map,
                note="reconciliation",
                reference=f"sync-run:{sync.run_id}",
            ):
                sync.count("stock_checked")
                if not level.differs:
                    continue
                sync.count("stock_differing")
                if level.applied:
                    sync.count("stock_healed")
                _record(
                    sync,
                    "stock",
                    {
                        "sku": level.sku,
                        "sku_id": str(level.sku_id),
                        "inventory_item_id": level.inventory_item_id,
                        "location_id": level.location_id,
                        "warehouse_id": str(level.warehouse_id),
                        "stock_master": level.stock_master,
                        "rappit_available": level.rappit_available,
                        "channel_available": level.channel_available,
                        "difference": level.channel_available - level.rappit_available,
                        "healed": level.applied,
                    },
                )

        await sync.commit_page(apply, {**sync.cursor, "item_offset": offset + ID_CHUNK})
    if not item_ids:

        async def nothing(_: AsyncSession) -> None:
            return None

        # Still saves what the stock check found out (unmapped locations, zero counts).
        await sync.commit_page(nothing, {**sync.cursor, "item_offset": 0})
