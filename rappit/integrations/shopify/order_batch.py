"""Applying a page of channel orders in a few statements instead of a dozen per order: the
apply path of the initial import, where almost every order is new.

Orders the database already has (from a webhook, a poll, an earlier attempt) go through
``OrderService.create_or_update_from_channel`` one by one, exactly as everywhere else. Orders it
does not have yet are created together, and end up as that service would leave them: the same
rows, SKU resolution (the channel's variant listing first, else the SKU code, recording the
listing), reservations for the orders that owe stock (allocated one order and one line after
the other, in page order, with ``plan_allocation``), one ledger row per reservation, and the
same status (``orders.service.order_status``). ``tests/integrations/shopify/test_bulk_import.py``
holds the two paths to that.

Data safety (DESIGN §3): the new order rows are claimed with ``INSERT … ON CONFLICT DO NOTHING``
first (a webhook that created one meanwhile wins, and that order takes the one-by-one path),
then the stock rows are locked in id order (the lock order everywhere: orders, then stock), the
allocation is computed on the locked values and written as one guarded ``UPDATE`` of every
stock row (``reserved + n`` only while ``on_hand - reserved >= n``) plus the ledger rows, in the
caller's transaction.

Cost: SKUs are looked up (read only) before the claim, so each order row is written with the
status it will have unless stock runs short (only those are updated afterwards). On
PostgreSQL every statement has one text whatever the page holds (lists travel as array
parameters), so each is prepared once per connection; the order rows go in as one ``INSERT …
SELECT FROM unnest(…)`` and the other new rows by ``COPY``.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson
from sqlalchemy import (
    ColumnElement,
    Insert,
    String,
    Table,
    Uuid,
    any_,
    bindparam,
    case,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from rappit.inventory.push_marks import mark_levels
from rappit.inventory.repository import InventoryRepository
from rappit.inventory.service import plan_allocation
from rappit.kit.db import dialect_of
from rappit.kit.ids import uuid7
from rappit.kit.sql import insert_ignore
from rappit.kit.types import Money, utcnow
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
from rappit.orders.inputs import ChannelOrder
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
# Amounts are stored as the Money column type stores them (same scale and rounding).
_MONEY = Money()
_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]

_OUTCOME_COUNTS = {
    UpsertOutcome.CREATED: "created",
    UpsertOutcome.UPDATED: "updated",
    UpsertOutcome.STALE: "unchanged",
}

# The columns of the rows written here, in the order of their value tuples.
_ORDER_VALUES = (
    "id", "external_order_id", "name", "status", "payment_status", "fulfillment_status",
    "currency", "total_price", "customer", "customer_external_id", "shipping_address",
    "billing_address", "external_location_id", "channel_updated_at", "cancelled_at", "is_test",
    "details",
)  # fmt: skip
_ORDER_JSON = frozenset({"customer", "shipping_address", "billing_address", "details"})
_STATUS = _ORDER_VALUES.index("status")
_ITEM_COLUMNS = (
    "id", "organization_id", "order_id", "external_item_id", "external_product_id",
    "external_variant_id", "sku_code", "sku_id", "title", "quantity", "fulfilled_quantity",
    "channel_fulfilled_quantity", "price", "requires_shipping", "created_at", "updated_at",
)  # fmt: skip
_RESERVATION_COLUMNS = (
    "id", "organization_id", "order_item_id", "sku_id", "warehouse_id", "quantity",
    "released_at", "consumed_at", "created_at", "updated_at",
)  # fmt: skip
_MOVEMENT_COLUMNS = (
    "id", "organization_id", "sku_id", "warehouse_id", "on_hand_delta", "reserved_delta",
    "reason", "note", "reference", "order_id", "created_at",
)  # fmt: skip

_PG_ORDER_TYPES = {
    "id": "uuid", "total_price": "numeric", "channel_updated_at": "timestamptz",
    "cancelled_at": "timestamptz", "is_test": "boolean",
}  # fmt: skip
# One statement for every page: the orders travel as one array per column.
_PG_CLAIM = f"""
INSERT INTO orders (organization_id, channel_id, created_at, updated_at, {", ".join(_ORDER_VALUES)})
SELECT $1::uuid, $2::uuid, $3::timestamptz, $3::timestamptz, {
    ", ".join(f"o.{name}::json" if name in _ORDER_JSON else f"o.{name}" for name in _ORDER_VALUES)
}
FROM unnest({
    ", ".join(
        f"${index}::{_PG_ORDER_TYPES.get(name, 'text')}[]"
        for index, name in enumerate(_ORDER_VALUES, start=4)
    )
}) AS o({", ".join(_ORDER_VALUES)})
ON CONFLICT DO NOTHING
RETURNING id
"""
_PG_LISTED = """
SELECT external_variant_id, sku_id FROM channel_listings
WHERE organization_id = $1 AND channel_id = $2 AND external_variant_id = ANY($3::text[])
"""
_PG_SKUS = "SELECT code, id FROM skus WHERE organization_id = $1 AND code = ANY($2::text[])"
_PG_ADD_RESERVED = """
UPDATE stock_levels AS s
SET reserved = s.reserved + v.units, updated_at = $3
FROM unnest($1::uuid[], $2::integer[]) AS v(id, units)
WHERE s.organization_id = $4 AND s.id = v.id AND s.on_hand >= s.reserved + v.units
RETURNING s.id, s.reserved
"""


# SQLite: one statement for many rows, compiled once and cached.
_SQLITE_CLAIM: Insert = sqlite.insert(_ORDERS).on_conflict_do_nothing().returning(_ORDERS.c.id)


class AllocationRefused(RuntimeError):
    """The guarded stock UPDATE refused an allocation computed under the row lock: something
    changed the row without the lock. The page's transaction is rolled back."""


class _NewLine:
    """A line of a new order: its item id, the values its row takes from the channel's line,
    and (once the page is applied) its SKU. Pickled as a plain tuple: a prepared page crosses
    from the reader process, and rebuilding models there costs more than mapping them did."""

    __slots__ = (
        "channel_fulfilled_quantity",
        "external_item_id",
        "external_product_id",
        "external_variant_id",
        "item_id",
        "price",
        "quantity",
        "requires_shipping",
        "sku",
        "sku_id",
        "title",
    )  # fmt: skip

    def __init__(
        self,
        item_id: uuid.UUID,
        external_item_id: str,
        external_product_id: str | None,
        external_variant_id: str | None,
        sku: str | None,
        title: str | None,
        quantity: int,
        channel_fulfilled_quantity: int,
        price: Decimal | None,
        requires_shipping: bool,
        sku_id: uuid.UUID | None = None,
    ) -> None:
        self.item_id = item_id
        self.external_item_id = external_item_id
        self.external_product_id = external_product_id
        self.external_variant_id = external_variant_id
        self.sku = sku
        self.title = title
        self.quantity = quantity
        self.channel_fulfilled_quantity = channel_fulfilled_quantity
        self.price = price
        self.requires_shipping = requires_shipping
        # Set when the page is applied (SKUs are looked up then).
        self.sku_id = sku_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _NewLine,
            (
                self.item_id, self.external_item_id, self.external_product_id,
                self.external_variant_id, self.sku, self.title, self.quantity,
                self.channel_fulfilled_quantity, self.price, self.requires_shipping, self.sku_id,
            ),
        )  # fmt: skip

    @property
    def shipped(self) -> int:
        # ``orders.service.shipped_units`` of a new line: nothing recorded in Rappit yet.
        return min(self.channel_fulfilled_quantity, self.quantity)

    @property
    def owed(self) -> int:
        return self.quantity - self.shipped


class _NewOrder:
    """A new order: its row values, its lines, what deciding its stock and status takes, and
    the channel order itself as JSON (``channel_order``: for the paths that need it whole).
    Pickled as a plain tuple, as ``_NewLine``."""

    __slots__ = (
        "cancelled",
        "external_location_id",
        "holds_stock",
        "lines",
        "payment_status",
        "source",
        "status",
        "values",
    )  # fmt: skip

    def __init__(
        self,
        values: tuple[Any, ...],
        lines: list[_NewLine],
        cancelled: bool,
        payment_status: str,
        external_location_id: str | None,
        source: bytes,
        holds_stock: bool = False,
        status: str = OrderStatus.PENDING.value,
    ) -> None:
        # The row's values but the status (``_ORDER_VALUES`` without "status"), as PostgreSQL
        # takes them: JSON as text, amounts at the column's scale.
        self.values = values
        self.lines = lines
        self.cancelled = cancelled
        self.payment_status = payment_status
        self.external_location_id = external_location_id
        self.source = source
        # Set when the page is applied: whether it owes stock, and the status it is written
        # with (what it will be unless stock runs short).
        self.holds_stock = holds_stock
        self.status = OrderStatus(status)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _NewOrder,
            (
                self.values, self.lines, self.cancelled, self.payment_status,
                self.external_location_id, self.source, self.holds_stock, self.status.value,
            ),
        )  # fmt: skip

    @property
    def order_id(self) -> uuid.UUID:
        order_id: uuid.UUID = self.values[0]
        return order_id

    def channel_order(self) -> ChannelOrder:
        return ChannelOrder.model_validate_json(self.source)

    def status_with(self, wanted: int, missing: int) -> OrderStatus:
        return order_status(
            cancelled=self.cancelled,
            lines=[(new.quantity, new.shipped, new.sku_id is not None) for new in self.lines],
            holds_stock=self.holds_stock,
            wanted=wanted,
            missing=missing,
        )


@dataclass(frozen=True)
class PreparedOrders:
    """A page of channel orders made ready to apply, with everything that needs no database
    done: ids, lines (a repeated line id: the first one wins), the row values. The import
    prepares the next page while the database writes the current one."""

    fresh: list[_NewOrder]
    # The same order again later in the page (as JSON): applied after the first, an update.
    repeats: list[bytes]

    def __len__(self) -> int:
        return len(self.fresh) + len(self.repeats)


def prepare_orders(orders: Sequence[ChannelOrder]) -> PreparedOrders:
    fresh: dict[str, _NewOrder] = {}
    repeats: list[bytes] = []
    for data in orders:
        if data.external_order_id in fresh:
            repeats.append(data.model_dump_json().encode())
        else:
            fresh[data.external_order_id] = _new_order(data)
    return PreparedOrders(list(fresh.values()), repeats)


def _new_order(data: ChannelOrder) -> _NewOrder:
    lines: list[_NewLine] = []
    seen: set[str] = set()
    for line in data.lines:
        if line.external_item_id not in seen:  # a channel never repeats a line id
            seen.add(line.external_item_id)
            lines.append(
                _NewLine(
                    uuid7(),
                    line.external_item_id,
                    line.external_product_id,
                    line.external_variant_id,
                    line.sku,
                    line.title,
                    line.quantity,
                    line.channel_fulfilled_quantity,
                    line.price,
                    line.requires_shipping,
                )
            )
    customer_id = (data.customer or {}).get("id")
    values = (
        uuid7(),
        data.external_order_id,
        data.name,
        data.payment_status.value,
        data.fulfillment_status,
        data.currency,
        _money(data.total_price),
        _json_text(data.customer),
        str(customer_id) if customer_id is not None else None,
        _json_text(data.shipping_address),
        _json_text(data.billing_address),
        data.external_location_id,
        data.updated_at,
        data.cancelled_at,
        data.is_test,
        _json_text(data.details),
    )
    return _NewOrder(
        values,
        lines,
        data.cancelled_at is not None,
        data.payment_status.value,
        data.external_location_id,
        data.model_dump_json().encode(),
    )


async def apply_orders(
    session: AsyncSession, channel: Channel, orders: Sequence[ChannelOrder] | PreparedOrders
) -> Counter[str]:
    """Create or update these orders of ``channel`` (in the caller's transaction) and count
    what happened: created, updated, unchanged (stale)."""
    page = orders if isinstance(orders, PreparedOrders) else prepare_orders(orders)
    counts: Counter[str] = Counter()
    resolver = _SkuResolver(session, channel)
    await resolver.load([new for order in page.fresh for new in order.lines])
    for order in page.fresh:
        order.holds_stock = _holds_stock(channel, order.cancelled, order.payment_status)
        for new_line in order.lines:
            new_line.sku_id = resolver.lookup(new_line)
        order.status = order.status_with(wanted=0, missing=0)
    # The insert itself tells which orders are new: a row that exists already (a webhook, a
    # poll, an earlier attempt) is not inserted, and that order takes the one-by-one path.
    created = await _claim_rows(session, channel, page.fresh)
    new = [order for order in page.fresh if order.order_id in created]
    one_by_one = [o.channel_order() for o in page.fresh if o.order_id not in created] + [
        ChannelOrder.model_validate_json(repeat) for repeat in page.repeats
    ]

    service = OrderService(session, channel.organization_id)
    # All locked before the first one takes stock rows, like the pulls' pages.
    await service.lock_batch(channel.id, [data.external_order_id for data in one_by_one])
    for data in one_by_one:
        result = await service.create_or_update_from_channel(channel, data)
        counts[_OUTCOME_COUNTS[result.outcome]] += 1

    if new:
        await resolver.record_listings(new)
        await _create_lines(session, channel, new)
        await _reserve_and_settle(session, channel, new)
        counts["created"] += len(new)
    return counts


def _holds_stock(channel: Channel, cancelled: bool, payment_status: str) -> bool:
    # As OrderService decides it for a new order.
    if cancelled:
        return False
    if payment_status in RESERVING_PAYMENT_STATES:
        return True
    return bool(channel.settings.get("reserve_on_authorized")) and (
        payment_status == PaymentStatus.AUTHORIZED
    )


async def _claim_rows(
    session: AsyncSession, channel: Channel, orders: list[_NewOrder]
) -> set[uuid.UUID]:
    """Insert the order rows nobody has yet; answers the ids of those inserted here."""
    if not orders:
        return set()
    now = utcnow()
    values = (order.values for order in orders)
    columns: list[list[Any]] = [list(column) for column in zip(*values, strict=True)]
    columns.insert(_STATUS, [order.status.value for order in orders])
    if dialect_of(session) == "postgresql":
        rows = await (await _driver(session)).fetch(
            _PG_CLAIM, channel.organization_id, channel.id, now, *columns
        )
        return {row[0] for row in rows}
    common = {
        "organization_id": channel.organization_id,
        "channel_id": channel.id,
        "created_at": now,
        "updated_at": now,
    }
    rows_in = [
        dict(zip(_ORDER_VALUES, row, strict=True), **common) for row in zip(*columns, strict=True)
    ]
    for row, order in zip(rows_in, orders, strict=True):
        # The column types write these on SQLite: the values themselves, not PostgreSQL's text.
        data = order.channel_order()
        row.update(
            total_price=data.total_price,
            customer=data.customer,
            shipping_address=data.shipping_address,
            billing_address=data.billing_address,
            details=data.details,
        )
    claimed = await session.execute(_SQLITE_CLAIM, rows_in)
    return {order_id for (order_id,) in claimed}


def _json_text(value: Any) -> str:
    """What the JSON column type would send (``None`` is JSON null, as the ORM writes it)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # beyond orjson (an integer over 64 bits): the standard encoder
        return json.dumps(value)


def _money(value: Decimal | None) -> Decimal | None:
    """An amount for PostgreSQL as the Money column type would send it."""
    return cast(Decimal | None, _MONEY.process_bind_param(value, _POSTGRESQL))


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's, inside the session's transaction."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy begins the transaction with the first statement it runs itself: run one,
        # so that what goes straight to the driver is inside that transaction.
        await session.execute(select(literal(1)))
    return driver


def _one_of(
    session: AsyncSession, column: QueryableAttribute[Any], name: str, values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:name)``, one array parameter, so
    the statement's text (and its prepared plan) is the same however many values there are."""
    if dialect_of(session) == "postgresql":
        item = Uuid() if isinstance(column.type, Uuid) else String()
        return column == any_(bindparam(name, list(values), type_=postgresql.ARRAY(item)))
    return column.in_(list(values))


async def _create_lines(session: AsyncSession, channel: Channel, orders: list[_NewOrder]) -> None:
    now = utcnow()
    postgres = dialect_of(session) == "postgresql"
    records = [
        (
            new.item_id,
            channel.organization_id,
            order.order_id,
            new.external_item_id,
            new.external_product_id,
            new.external_variant_id,
            new.sku,
            new.sku_id,
            new.title,
            new.quantity,
            0,
            new.channel_fulfilled_quantity,
            _money(new.price) if postgres else new.price,
            new.requires_shipping,
            now,
            now,
        )
        for order in orders
        for new in order.lines
    ]
    await _insert_many(session, _ITEMS, _ITEM_COLUMNS, records)


class _SkuResolver:
    """``OrderService.resolve_sku`` for many lines: the channel's listing of the variant first,
    else the SKU code in the organisation (recording the listing for next time), else none.
    Listings and codes are read once per page, before the orders are claimed; the listings of
    variants resolved by code are written afterwards, for the orders created."""

    def __init__(self, session: AsyncSession, channel: Channel) -> None:
        self.session = session
        self.channel = channel
        self.listed: dict[str, uuid.UUID] = {}
        self.by_code: dict[str, uuid.UUID] = {}

    async def load(self, lines: list[_NewLine]) -> None:
        org, channel_id = self.channel.organization_id, self.channel.id
        variants = sorted({line.external_variant_id for line in lines if line.external_variant_id})
        codes = sorted({(line.sku or "").strip() for line in lines} - {""})
        if dialect_of(self.session) == "postgresql":
            # Straight to the driver: a page's lookups are small, and SQLAlchemy's statement
            # and result handling would cost more than the database does.
            driver = await _driver(self.session)
            if variants:
                rows = await driver.fetch(_PG_LISTED, org, channel_id, variants)
                self.listed.update({row[0]: row[1] for row in rows})
            if codes:
                rows = await driver.fetch(_PG_SKUS, org, codes)
                self.by_code.update({row[0]: row[1] for row in rows})
            return
        if variants:
            listed = await self.session.execute(
                select(ChannelListing.external_variant_id, ChannelListing.sku_id).where(
                    ChannelListing.organization_id == org,
                    ChannelListing.channel_id == channel_id,
                    ChannelListing.external_variant_id.in_(variants),
                )
            )
            self.listed.update({variant: sku_id for variant, sku_id in listed if variant})
        if codes:
            coded = await self.session.execute(
                select(Sku.code, Sku.id).where(Sku.organization_id == org, Sku.code.in_(codes))
            )
            self.by_code.update({code: sku_id for code, sku_id in coded if code})

    def lookup(self, line: _NewLine) -> uuid.UUID | None:
        variant = line.external_variant_id
        if variant and variant in self.listed:
            return self.listed[variant]
        return self.by_code.get((line.sku or "").strip())

    async def record_listings(self, orders: list[_NewOrder]) -> None:
        """List each variant the created orders resolved by code, as ``resolve_sku`` does the
        first time. A variant listed meanwhile by someone else keeps that listing, which
        decides its later lines (the first one keeps the code's SKU, as one by one)."""
        first: dict[str, _NewLine] = {}
        for order in orders:
            for new in order.lines:
                variant = new.external_variant_id
                if variant and new.sku_id is not None and variant not in self.listed:
                    first.setdefault(variant, new)
        if not first:
            return
        now = utcnow()
        org, channel_id = self.channel.organization_id, self.channel.id
        rows = [
            {
                "id": uuid7(),
                "organization_id": org,
                "channel_id": channel_id,
                "sku_id": new.sku_id,
                "external_variant_id": variant,
                "external_product_id": new.external_product_id,
                "created_at": now,
                "updated_at": now,
            }
            for variant, new in first.items()
        ]
        inserted = await self.session.execute(
            insert_ignore(self.session, ChannelListing, rows).returning(
                ChannelListing.external_variant_id
            )
        )
        taken = set(first) - {variant for (variant,) in inserted}
        for variant, new in first.items():
            if variant not in taken:
                assert new.sku_id is not None
                self.listed[variant] = new.sku_id
        if not taken:
            return
        # Listed meanwhile by someone else: that listing decides from now on.
        existing = await self.session.execute(
            select(ChannelListing.external_variant_id, ChannelListing.sku_id).where(
                ChannelListing.organization_id == org,
                ChannelListing.channel_id == channel_id,
                _one_of(self.session, ChannelListing.external_variant_id, "variants", taken),
            )
        )
        self.listed.update({variant: sku_id for variant, sku_id in existing if variant})
        for order in orders:
            for new in order.lines:
                variant = new.external_variant_id
                if variant in taken and new is not first[variant]:
                    new.sku_id = self.listed.get(variant, new.sku_id)


async def _lock_levels(
    session: AsyncSession, org: uuid.UUID, sku_ids: set[uuid.UUID]
) -> list[StockLevel]:
    """``InventoryRepository.lock_levels``: every stock row of these SKUs locked in id order,
    with its warehouse; on PostgreSQL with the ids as one array parameter."""
    if not sku_ids or dialect_of(session) != "postgresql":
        return await InventoryRepository(session, org).lock_levels(sku_ids)
    statement = (
        select(StockLevel)
        .join(StockLevel.warehouse)
        .options(contains_eager(StockLevel.warehouse))
        .where(
            StockLevel.organization_id == org,
            _one_of(session, StockLevel.sku_id, "sku_ids", sorted(sku_ids)),
        )
        .order_by(StockLevel.id)
        .with_for_update(of=StockLevel)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(statement)).unique().all())


async def _reserve_and_settle(
    session: AsyncSession, channel: Channel, orders: list[_NewOrder]
) -> None:
    org = channel.organization_id
    owing = [order for order in orders if order.holds_stock]
    sku_ids = {new.sku_id for order in owing for new in order.lines if new.sku_id and new.owed}
    levels = await _lock_levels(session, org, sku_ids)
    by_sku: dict[uuid.UUID, list[StockLevel]] = defaultdict(list)
    for level in levels:
        by_sku[level.sku_id].append(level)
    preferred = await _warehouses_by_location(
        session, channel, {o.external_location_id for o in owing if o.external_location_id}
    )

    reserved: Counter[uuid.UUID] = Counter()  # stock level id -> units reserved here
    level_of: dict[tuple[uuid.UUID, uuid.UUID], StockLevel] = {
        (level.sku_id, level.warehouse_id): level for level in levels
    }
    now = utcnow()
    reservations: list[tuple[Any, ...]] = []
    movements: list[tuple[Any, ...]] = []
    corrected: dict[uuid.UUID, OrderStatus] = {}
    for order in owing:
        wanted = missing = 0
        warehouse = preferred.get(order.external_location_id or "")
        for new in order.lines:
            owed = new.owed
            if new.sku_id is None or owed <= 0:
                continue
            wanted += owed
            candidates = [(level, level.warehouse) for level in by_sku.get(new.sku_id, [])]
            got = 0
            for allocation in plan_allocation(owed, candidates, warehouse):
                level = level_of[(new.sku_id, allocation.warehouse_id)]
                # The row is locked: what is planned here is what the UPDATE below will find.
                set_committed_value(level, "reserved", level.reserved + allocation.quantity)
                reserved[level.id] += allocation.quantity
                got += allocation.quantity
                reservations.append(
                    (uuid7(), org, new.item_id, new.sku_id, allocation.warehouse_id,
                     allocation.quantity, None, None, now, now)
                )  # fmt: skip
                movements.append(
                    (uuid7(), org, new.sku_id, allocation.warehouse_id, 0, allocation.quantity,
                     MovementReason.RESERVATION.value, None, None, order.order_id, now)
                )  # fmt: skip
            missing += owed - got
        if missing:
            status = order.status_with(wanted, missing)
            if status != order.status:
                corrected[order.order_id] = status

    await _add_reserved(session, org, {level.id: level for level in levels}, reserved)
    await _insert_many(session, _RESERVATIONS, _RESERVATION_COLUMNS, reservations)
    await _insert_many(session, _MOVEMENTS, _MOVEMENT_COLUMNS, movements)
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


async def _insert_many(
    session: AsyncSession, table: Table, columns: Sequence[str], records: list[tuple[Any, ...]]
) -> None:
    """Insert rows nobody else can have (new ids under orders claimed by this transaction).
    PostgreSQL: one ``COPY`` on the session's own connection and transaction, which skips the
    per-row parameter processing that dominates a page's CPU time; SQLite: ``executemany``."""
    if not records:
        return
    if dialect_of(session) != "postgresql":
        await session.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in records])
        return
    await (await _driver(session)).copy_records_to_table(
        table.name, records=records, columns=list(columns)
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
    if dialect_of(session) == "postgresql":
        ids = list(amounts)
        rows = await (await _driver(session)).fetch(
            _PG_ADD_RESERVED, ids, [amounts[i] for i in ids], utcnow(), org
        )
        changed = {row[0]: row[1] for row in rows}
    else:
        added = case(
            {level_id: literal(units) for level_id, units in amounts.items()},
            value=StockLevel.id,
            else_=literal(0),
        )
        result = await session.execute(
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
        changed = {row.id: row.reserved for row in result}
    for level_id in amounts:
        if changed.get(level_id) != levels[level_id].reserved:
            raise AllocationRefused(f"stock level {level_id} changed under its lock")
    await mark_levels(session, org, sorted(amounts))


async def _warehouses_by_location(
    session: AsyncSession, channel: Channel, locations: set[str]
) -> dict[str, uuid.UUID]:
    if not locations:
        return {}
    rows = await session.execute(
        select(ChannelLocation.external_location_id, ChannelLocation.warehouse_id).where(
            ChannelLocation.organization_id == channel.organization_id,
            ChannelLocation.channel_id == channel.id,
            _one_of(session, ChannelLocation.external_location_id, "locations", sorted(locations)),
        )
    )
    return {location: warehouse for location, warehouse in rows if location}
