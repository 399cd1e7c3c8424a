"""Applying a page of channel orders in a few statements instead of a dozen per order: the
apply path of the initial import, where almost every order is new.

Orders the database already has (from a webhook, a poll, an earlier attempt) go through
``OrderService.create_or_update_from_channel`` one by one, exactly as everywhere else. Orders it
does not have yet are created together, and end up as that service would leave them: the same
rows, SKU resolution (the channel's variant listing first, else the SKU code, recording the
listing), reservations for the orders that owe stock (allocated one order and one line after
the other, in page order, with ``plan_allocation``), one ledger row per reservation, and the
same status. ``tests/integrations/shopify/test_bulk_import.py`` holds the two paths to that.

Data safety (DESIGN §3): the new order rows are claimed with ``INSERT … ON CONFLICT DO NOTHING``
first (a webhook that created one meanwhile wins, and that order takes the one-by-one path),
then the stock rows are locked in id order (the lock order everywhere: orders, then stock), the
allocation is computed on the locked values and written as one guarded ``UPDATE`` per stock row
(``reserved + n`` only while ``on_hand - reserved >= n``) plus the ledger rows, in the caller's
transaction.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Insert, Table, case, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from rappit.inventory.push_marks import mark_levels
from rappit.inventory.repository import InventoryRepository
from rappit.inventory.service import plan_allocation
from rappit.kit.db import dialect_of
from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import utcnow
from rappit.models import (
    Base,
    Channel,
    ChannelListing,
    ChannelLocation,
    InventoryMovement,
    MovementReason,
    Order,
    OrderItem,
    OrderStatus,
    PaymentStatus,
    Reservation,
    Sku,
    StockLevel,
)
from rappit.orders.inputs import ChannelOrder, ChannelOrderLine
from rappit.orders.service import (
    RESERVING_PAYMENT_STATES,
    OrderService,
    UpsertOutcome,
    order_status,
)

# The tables themselves: Core inserts of many rows skip the ORM's per-row bookkeeping.
_ORDERS = Base.metadata.tables[Order.__tablename__]
_ITEMS = Base.metadata.tables[OrderItem.__tablename__]
_RESERVATIONS = Base.metadata.tables[Reservation.__tablename__]
_MOVEMENTS = Base.metadata.tables[InventoryMovement.__tablename__]

_OUTCOME_COUNTS = {
    UpsertOutcome.CREATED: "created",
    UpsertOutcome.UPDATED: "updated",
    UpsertOutcome.STALE: "unchanged",
}


class AllocationRefused(RuntimeError):
    """The guarded stock UPDATE refused an allocation computed under the row lock: something
    changed the row without the lock. The page's transaction is rolled back."""


@dataclass
class _NewLine:
    item_id: uuid.UUID
    line: ChannelOrderLine
    sku_id: uuid.UUID | None


@dataclass
class _NewOrder:
    order_id: uuid.UUID
    data: ChannelOrder
    lines: list[_NewLine] = field(default_factory=list)


async def apply_orders(
    session: AsyncSession, channel: Channel, orders: Sequence[ChannelOrder]
) -> Counter[str]:
    """Create or update these orders of ``channel`` (in the caller's transaction) and count
    what happened: created, updated, unchanged (stale)."""
    counts: Counter[str] = Counter()
    org = channel.organization_id
    one_by_one: list[ChannelOrder] = []
    fresh: dict[str, ChannelOrder] = {}
    for data in orders:
        if data.external_order_id in fresh:
            one_by_one.append(data)  # the same order twice in one page: the second updates
        else:
            fresh[data.external_order_id] = data
    # The insert itself tells which orders are new: a row that exists already (a webhook, a
    # poll, an earlier attempt) is not inserted, and that order takes the one-by-one path.
    created = await _claim_rows(session, channel, list(fresh.values()))
    one_by_one = [o for o in fresh.values() if o.external_order_id not in created] + one_by_one

    service = OrderService(session, org)
    for data in one_by_one:
        result = await service.create_or_update_from_channel(channel, data)
        counts[_OUTCOME_COUNTS[result.outcome]] += 1

    if created:
        new = [_NewOrder(created[data.external_order_id], data) for data in fresh.values()
               if data.external_order_id in created]  # fmt: skip
        await _create_lines(session, channel, new)
        await _reserve_and_settle(session, channel, new)
        counts["created"] += len(new)
    return counts


async def _claim_rows(
    session: AsyncSession, channel: Channel, orders: list[ChannelOrder]
) -> dict[str, uuid.UUID]:
    """Insert the order rows nobody has yet; answers external id → row id of those inserted
    here. Status is the one expected (RESERVED when stock is owed); shortfalls correct it."""
    if not orders:
        return {}
    now = utcnow()
    rows = []
    for data in orders:
        customer_id = (data.customer or {}).get("id")
        rows.append(
            {
                "id": uuid7(),
                "organization_id": channel.organization_id,
                "channel_id": channel.id,
                "external_order_id": data.external_order_id,
                "name": data.name,
                "status": _expected_status(channel, data),
                "payment_status": data.payment_status,
                "fulfillment_status": data.fulfillment_status,
                "currency": data.currency,
                "total_price": data.total_price,
                "customer": data.customer,
                "customer_external_id": str(customer_id) if customer_id is not None else None,
                "shipping_address": data.shipping_address,
                "billing_address": data.billing_address,
                "external_location_id": data.external_location_id,
                "channel_updated_at": data.updated_at,
                "cancelled_at": data.cancelled_at,
                "is_test": data.is_test,
                "details": data.details,
                "created_at": now,
                "updated_at": now,
            }
        )
    claimed = await session.execute(_claim_statement(session), rows)
    return {external_id: order_id for order_id, external_id in claimed}


def _claim_statement(session: AsyncSession) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING`` for many rows at once: one statement,
    compiled once and cached (a VALUES list per page would be compiled for every page)."""
    if dialect_of(session) == "postgresql":
        return (
            postgresql.insert(_ORDERS)
            .on_conflict_do_nothing()
            .returning(_ORDERS.c.id, _ORDERS.c.external_order_id)
        )
    return (
        sqlite.insert(_ORDERS)
        .on_conflict_do_nothing()
        .returning(_ORDERS.c.id, _ORDERS.c.external_order_id)
    )


def _holds_stock(channel: Channel, data: ChannelOrder) -> bool:
    # As OrderService decides it for a new order.
    if data.cancelled_at is not None:
        return False
    if data.payment_status in RESERVING_PAYMENT_STATES:
        return True
    return bool(channel.settings.get("reserve_on_authorized")) and (
        data.payment_status == PaymentStatus.AUTHORIZED
    )


def _expected_status(channel: Channel, data: ChannelOrder) -> OrderStatus:
    """The status before SKUs are resolved and stock is counted; corrected afterwards."""
    if data.cancelled_at is not None:
        return OrderStatus.CANCELLED
    return OrderStatus.RESERVED if _holds_stock(channel, data) else OrderStatus.PENDING


async def _create_lines(session: AsyncSession, channel: Channel, orders: list[_NewOrder]) -> None:
    resolver = _SkuResolver(session, channel)
    await resolver.load([line for order in orders for line in order.data.lines])
    now = utcnow()
    rows = []
    for order in orders:
        seen: set[str] = set()
        for line in order.data.lines:
            if line.external_item_id in seen:
                continue  # a channel never repeats a line id; if it does, the first one wins
            seen.add(line.external_item_id)
            new_line = _NewLine(uuid7(), line, await resolver.resolve(line))
            order.lines.append(new_line)
            rows.append(
                {
                    "id": new_line.item_id,
                    "organization_id": channel.organization_id,
                    "order_id": order.order_id,
                    "external_item_id": line.external_item_id,
                    "external_product_id": line.external_product_id,
                    "external_variant_id": line.external_variant_id,
                    "sku_code": line.sku,
                    "sku_id": new_line.sku_id,
                    "title": line.title,
                    "quantity": line.quantity,
                    "fulfilled_quantity": 0,
                    "channel_fulfilled_quantity": line.channel_fulfilled_quantity,
                    "price": line.price,
                    "requires_shipping": line.requires_shipping,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        await _insert_many(session, _ITEMS, rows)


class _SkuResolver:
    """``OrderService.resolve_sku`` for many lines: the channel's listing of the variant first,
    else the SKU code in the organisation (recording the listing for next time), else none.
    Listings and codes are read once per page; a listing is written the first time a variant
    resolves by code."""

    def __init__(self, session: AsyncSession, channel: Channel) -> None:
        self.session = session
        self.channel = channel
        self.listed: dict[str, uuid.UUID | None] = {}
        self.by_code: dict[str, uuid.UUID] = {}

    async def load(self, lines: list[ChannelOrderLine]) -> None:
        org, channel_id = self.channel.organization_id, self.channel.id
        variants = sorted({line.external_variant_id for line in lines if line.external_variant_id})
        codes = sorted({(line.sku or "").strip() for line in lines} - {""})
        if variants:
            rows = await self.session.execute(
                select(ChannelListing.external_variant_id, ChannelListing.sku_id).where(
                    ChannelListing.organization_id == org,
                    ChannelListing.channel_id == channel_id,
                    ChannelListing.external_variant_id.in_(variants),
                )
            )
            self.listed.update({variant: sku_id for variant, sku_id in rows if variant})
        if codes:
            rows = await self.session.execute(
                select(Sku.code, Sku.id).where(Sku.organization_id == org, Sku.code.in_(codes))
            )
            self.by_code.update({code: sku_id for code, sku_id in rows if code})

    async def resolve(self, line: ChannelOrderLine) -> uuid.UUID | None:
        variant = line.external_variant_id
        if variant and self.listed.get(variant) is not None:
            return self.listed[variant]
        sku_id = self.by_code.get((line.sku or "").strip())
        if sku_id is not None and variant and variant not in self.listed:
            self.listed[variant] = await self._record(variant, line.external_product_id, sku_id)
        return sku_id

    async def _record(
        self, variant: str, product: str | None, sku_id: uuid.UUID
    ) -> uuid.UUID | None:
        now = utcnow()
        inserted: uuid.UUID | None = await self.session.scalar(
            insert_ignore(
                self.session,
                ChannelListing,
                {
                    "id": uuid7(),
                    "organization_id": self.channel.organization_id,
                    "channel_id": self.channel.id,
                    "sku_id": sku_id,
                    "external_variant_id": variant,
                    "external_product_id": product,
                    "created_at": now,
                    "updated_at": now,
                },
            ).returning(ChannelListing.sku_id)
        )
        if inserted is not None:
            return inserted
        # Listed meanwhile by someone else: that listing decides from now on.
        listed: uuid.UUID | None = await self.session.scalar(
            select(ChannelListing.sku_id).where(
                ChannelListing.organization_id == self.channel.organization_id,
                ChannelListing.channel_id == self.channel.id,
                ChannelListing.external_variant_id == variant,
            )
        )
        return listed


async def _reserve_and_settle(
    session: AsyncSession, channel: Channel, orders: list[_NewOrder]
) -> None:
    org = channel.organization_id
    owing = [order for order in orders if _holds_stock(channel, order.data)]
    owing_ids = {order.order_id for order in owing}
    sku_ids = {line.sku_id for order in owing for line in order.lines if line.sku_id}
    repository = InventoryRepository(session, org)
    levels = await repository.lock_levels(sku_ids)
    by_sku: dict[uuid.UUID, list[StockLevel]] = defaultdict(list)
    for level in levels:
        by_sku[level.sku_id].append(level)
    preferred = await _warehouses_by_location(session, channel, [o.data for o in owing])

    reserved: Counter[uuid.UUID] = Counter()  # stock level id -> units reserved here
    level_of: dict[tuple[uuid.UUID, uuid.UUID], StockLevel] = {
        (level.sku_id, level.warehouse_id): level for level in levels
    }
    now = utcnow()
    reservations: list[dict[str, object]] = []
    movements: list[dict[str, object]] = []
    corrected: dict[uuid.UUID, OrderStatus] = {}
    for order in orders:
        status = _final_status(channel, order, owing_units=None)
        if order.order_id in owing_ids:
            wanted = missing = 0
            warehouse = preferred.get(order.data.external_location_id or "")
            for line in order.lines:
                owed = _open_units(line.line)
                if line.sku_id is None or owed <= 0:
                    continue
                wanted += owed
                candidates = [(level, level.warehouse) for level in by_sku.get(line.sku_id, [])]
                got = 0
                for allocation in plan_allocation(owed, candidates, warehouse):
                    level = level_of[(line.sku_id, allocation.warehouse_id)]
                    # The row is locked: what is planned here is what the UPDATE below will find.
                    set_committed_value(level, "reserved", level.reserved + allocation.quantity)
                    reserved[level.id] += allocation.quantity
                    got += allocation.quantity
                    reservations.append(
                        {
                            "id": uuid7(),
                            "organization_id": org,
                            "order_item_id": line.item_id,
                            "sku_id": line.sku_id,
                            "warehouse_id": allocation.warehouse_id,
                            "quantity": allocation.quantity,
                            "released_at": None,
                            "consumed_at": None,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    movements.append(
                        {
                            "id": uuid7(),
                            "organization_id": org,
                            "sku_id": line.sku_id,
                            "warehouse_id": allocation.warehouse_id,
                            "on_hand_delta": 0,
                            "reserved_delta": allocation.quantity,
                            "reason": MovementReason.RESERVATION,
                            "note": None,
                            "reference": None,
                            "order_id": order.order_id,
                            "created_at": now,
                        }
                    )
                missing += owed - got
            status = _final_status(channel, order, owing_units=(wanted, missing))
        if status != _expected_status(channel, order.data):
            corrected[order.order_id] = status

    await _add_reserved(session, org, {level.id: level for level in levels}, reserved)
    if reservations:
        await _insert_many(session, _RESERVATIONS, reservations)
        await _insert_many(session, _MOVEMENTS, movements)
    by_status: dict[OrderStatus, list[uuid.UUID]] = defaultdict(list)
    for order_id, status in corrected.items():
        by_status[status].append(order_id)
    for status, ids in by_status.items():
        await session.execute(
            update(Order)
            .where(Order.organization_id == org, Order.id.in_(ids))
            .values(status=status)
            .execution_options(synchronize_session=False)
        )


async def _insert_many(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows nobody else can have (new ids under orders claimed by this transaction).
    PostgreSQL: one ``COPY`` on the session's own connection and transaction, which skips the
    per-row parameter processing that dominates a page's CPU time; SQLite: ``executemany``."""
    if not rows:
        return
    if dialect_of(session) != "postgresql":
        await session.execute(table.insert(), rows)
        return
    columns = [column.name for column in table.columns]
    # What the column types would do on the way in: JSON is text to the driver, times are UTC.
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    records = [
        tuple(
            json.dumps(row.get(name)) if name in json_columns and row.get(name) is not None
            else row.get(name)
            for name in columns
        )
        for row in rows
    ]  # fmt: skip
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name, records=records, columns=columns
    )


async def _add_reserved(
    session: AsyncSession,
    org: uuid.UUID,
    levels: dict[uuid.UUID, StockLevel],
    reserved: Counter[uuid.UUID],
) -> None:
    """One guarded UPDATE for every stock row of the page: each row's ``reserved`` grows by its
    own amount, only where it stays within ``on_hand``. Every row must come back with the value
    planned under its lock."""
    amounts = {level_id: units for level_id, units in reserved.items() if units}
    if not amounts:
        return
    added = case(
        {level_id: literal(units) for level_id, units in amounts.items()},
        value=StockLevel.id,
        else_=literal(0),
    )
    rows = await session.execute(
        update(StockLevel)
        .where(
            StockLevel.organization_id == org,
            StockLevel.id.in_(list(amounts)),
            StockLevel.on_hand >= StockLevel.reserved + added,
        )
        .values(reserved=StockLevel.reserved + added, updated_at=utcnow())
        .returning(StockLevel.id, StockLevel.reserved)
        .execution_options(synchronize_session=False)
    )
    changed = {row.id: row.reserved for row in rows}
    for level_id in amounts:
        if changed.get(level_id) != levels[level_id].reserved:
            raise AllocationRefused(f"stock level {level_id} changed under its lock")
    await mark_levels(session, org, sorted(amounts))


def _shipped_units(line: ChannelOrderLine) -> int:
    # ``orders.service.shipped_units`` of a new line: nothing recorded in Rappit yet.
    return min(line.channel_fulfilled_quantity, line.quantity)


def _open_units(line: ChannelOrderLine) -> int:
    return line.quantity - _shipped_units(line)


def _final_status(
    channel: Channel, order: _NewOrder, *, owing_units: tuple[int, int] | None
) -> OrderStatus:
    """``OrderService``'s status rule for a new order. ``owing_units`` is (units wanted,
    units missing) once stock was reserved for an order that owes it."""
    wanted, missing = owing_units or (0, 0)
    return order_status(
        cancelled=order.data.cancelled_at is not None,
        lines=[
            (line.line.quantity, _shipped_units(line.line), line.sku_id is not None)
            for line in order.lines
        ],
        holds_stock=_holds_stock(channel, order.data),
        wanted=wanted,
        missing=missing,
    )


async def _warehouses_by_location(
    session: AsyncSession, channel: Channel, orders: list[ChannelOrder]
) -> dict[str, uuid.UUID]:
    locations = sorted({o.external_location_id for o in orders if o.external_location_id})
    if not locations:
        return {}
    rows = await session.execute(
        select(ChannelLocation.external_location_id, ChannelLocation.warehouse_id).where(
            ChannelLocation.organization_id == channel.organization_id,
            ChannelLocation.channel_id == channel.id,
            ChannelLocation.external_location_id.in_(locations),
        )
    )
    return {location: warehouse for location, warehouse in rows if location}
