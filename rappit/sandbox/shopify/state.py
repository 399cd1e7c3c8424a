"""In-memory state of the simulated Shopify shops.

One event loop owns the state: every HTTP handler of the sandbox is a coroutine on the server's
loop, so handlers never interleave inside a state change and no locks are needed. Code on
another thread (a test holding the server) goes through ``SandboxServer.call``, which runs a
function on that loop.

Timestamps are whole epoch seconds (Shopify's REST resources have second precision) taken from
an injectable ``Clock``; ids come from one sequence per kind in the ``SandboxState``, so a fresh
state given the same calls produces the same ids.
"""

from __future__ import annotations

import asyncio
import bisect
import secrets
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rappit.sandbox.shopify.limits import LeakyBucket

# --- clock -------------------------------------------------------------------------------------


class Clock:
    """Wall-clock time, or a frozen time moved by hand (tests: no sleeping, exact buckets)."""

    def __init__(self, frozen_at: float | None = None) -> None:
        self._frozen = frozen_at
        self._offset = 0.0

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def now(self) -> float:
        if self._frozen is not None:
            return self._frozen
        return time.time() + self._offset

    def __call__(self) -> float:
        return self.now()

    def freeze(self, at: float | None = None) -> None:
        self._frozen = self.now() if at is None else at

    def advance(self, seconds: float) -> None:
        if self._frozen is not None:
            self._frozen += seconds
        else:
            self._offset += seconds

    def unfreeze(self) -> None:
        """Run on in real time from the frozen instant."""
        if self._frozen is not None:
            self._offset = self._frozen - time.time()
            self._frozen = None


# --- plans -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """Rate limits of one plan: REST leaky bucket (requests) and GraphQL cost bucket (points)."""

    name: str
    rest_bucket: float
    rest_leak: float
    graphql_bucket: float
    graphql_restore: float


# reference/channel-apis.md §2.1 and §2.2: REST 40/2, 80/4, 400/20; GraphQL restore 100/200/1000
# points per second (bucket sizes are not documented per plan: 20 s of restore here).
PLANS: dict[str, Plan] = {
    "standard": Plan("standard", 40, 2, 2000, 100),
    "advanced": Plan("advanced", 80, 4, 4000, 200),
    "plus": Plan("plus", 400, 20, 20000, 1000),
}


# --- ids ---------------------------------------------------------------------------------------

_ID_BASES: dict[str, tuple[int, int]] = {
    # kind: (first id, step): Shopify-sized 64-bit ids, distinct ranges per kind.
    "shop": (60_000_000_000, 7),
    "location": (70_100_000_000, 13),
    "product": (8_100_000_000_000, 17),
    "variant": (44_100_000_000_000, 11),
    "inventory_item": (46_100_000_000_000, 11),
    "customer": (7_100_000_000_000, 19),
    "order": (5_900_000_000_000, 1),  # orders advance by a random gap chosen by the caller
    "line_item": (13_100_000_000_000, 3),
    "fulfillment_order": (6_100_000_000_000, 5),
    "fulfillment_order_line_item": (15_100_000_000_000, 3),
    "fulfillment": (5_100_000_000_000, 9),
    "webhook": (1_100_000_000_000, 23),
    "bulk_operation": (3_100_000_000_000, 29),
    "adjustment_group": (9_100_000_000_000, 31),
    "order_edit": (2_100_000_000_000, 37),
}


class Ids:
    def __init__(self) -> None:
        self._next = {kind: base for kind, (base, _) in _ID_BASES.items()}

    def next(self, kind: str, gap: int = 0) -> int:
        value = self._next[kind] + gap
        self._next[kind] = value + _ID_BASES[kind][1]
        return value

    def block(self, kind: str, count: int) -> range:
        """``count`` consecutive ids of one kind (fast path for the generator)."""
        start = self._next[kind]
        step = _ID_BASES[kind][1]
        self._next[kind] = start + count * step
        return range(start, start + count * step, step)


# --- resources ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Address:
    first_name: str
    last_name: str
    address1: str
    city: str
    zip: str
    province: str | None
    province_code: str | None
    country: str
    country_code: str
    phone: str | None = None
    company: str | None = None
    address2: str = ""
    latitude: float | None = None
    longitude: float | None = None


@dataclass(slots=True)
class Customer:
    id: int
    first_name: str
    last_name: str
    email: str
    phone: str | None
    address: Address
    created_at: int


@dataclass(slots=True)
class Location:
    id: int
    name: str
    address1: str
    city: str
    zip: str
    country: str
    country_code: str
    created_at: int
    updated_at: int
    active: bool = True


@dataclass(slots=True)
class Variant:
    id: int
    product_id: int
    title: str
    sku: str | None
    price_cents: int
    position: int
    inventory_item_id: int
    grams: int
    option1: str | None
    created_at: int
    updated_at: int
    barcode: str | None = None
    requires_shipping: bool = True
    tracked: bool = True


@dataclass(slots=True)
class Product:
    id: int
    title: str
    handle: str
    vendor: str
    product_type: str
    tags: str
    created_at: int
    updated_at: int
    variants: list[Variant]
    option_name: str | None
    status: str = "active"


@dataclass(slots=True)
class InventoryLevel:
    inventory_item_id: int
    location_id: int
    available: int
    updated_at: int
    committed: int = 0


@dataclass(slots=True)
class LineItem:
    id: int
    variant_id: int | None
    product_id: int | None
    sku: str | None
    title: str
    variant_title: str | None
    vendor: str | None
    quantity: int
    price_cents: int
    grams: int
    current_quantity: int
    fulfilled_quantity: int = 0
    requires_shipping: bool = True
    inventory_item_id: int | None = None

    @property
    def fulfillable_quantity(self) -> int:
        return max(0, self.current_quantity - self.fulfilled_quantity)


@dataclass(slots=True)
class FulfillmentOrder:
    """One fulfilment order per order, at the order's assigned location. Its line quantities
    are derived from the order's lines (current quantity, fulfilled quantity), so edits and
    fulfilments never leave the two out of step; its line item ids are fixed at creation."""

    id: int
    order_id: int
    location_id: int
    created_at: int
    updated_at: int
    line_ids: dict[int, int]  # order line item id -> fulfillment order line item id


@dataclass(slots=True)
class Fulfillment:
    id: int
    order_id: int
    location_id: int
    name: str
    created_at: int
    updated_at: int
    quantities: dict[int, int]  # order line item id -> quantity
    tracking_company: str | None = None
    tracking_numbers: list[str] = field(default_factory=list)
    tracking_urls: list[str] = field(default_factory=list)
    status: str = "success"
    shipment_status: str | None = None
    notify_customer: bool = False


@dataclass(slots=True)
class Order:
    id: int
    number: int
    created_at: int
    updated_at: int
    processed_at: int
    financial_status: str
    currency: str
    customer: Customer | None
    email: str | None
    address: Address | None
    line_items: list[LineItem]
    location_id: int | None
    shipping_cents: int = 490
    cancelled_at: int | None = None
    cancel_reason: str | None = None
    closed_at: int | None = None
    tags: str = ""
    note: str | None = None
    test: bool = False
    source_name: str = "web"
    fulfillment_ids: list[int] = field(default_factory=list)
    fulfillment_order: FulfillmentOrder | None = None

    @property
    def fulfillment_status(self) -> str | None:
        fulfilled = sum(line.fulfilled_quantity for line in self.line_items)
        if fulfilled == 0:
            return None
        if all(line.fulfillable_quantity == 0 for line in self.line_items):
            return "fulfilled"
        return "partial"

    @property
    def status(self) -> Literal["open", "closed", "cancelled"]:
        if self.cancelled_at is not None:
            return "cancelled"
        if self.closed_at is not None:
            return "closed"
        return "open"


@dataclass(slots=True)
class OrderEdit:
    """What an ``orders/edited`` delivery describes: line ids with the units added or removed."""

    id: int
    order: Order
    created_at: int
    additions: list[tuple[int, int]]
    removals: list[tuple[int, int]]


@dataclass(slots=True)
class WebhookSubscription:
    id: int
    topic: str
    address: str
    format: str
    api_version: str
    created_at: int
    updated_at: int
    fields: list[str] = field(default_factory=list)
    consecutive_failures: int = 0


@dataclass(slots=True)
class DeliveryAttempt:
    at: float
    status_code: int | None
    error: str | None


@dataclass(slots=True)
class Delivery:
    webhook_id: str
    event_id: str
    subscription_id: int
    topic: str
    address: str
    api_version: str
    triggered_at: str
    body: bytes
    headers: dict[str, str]
    state: Literal["pending", "delivered", "failed"] = "pending"
    attempts: list[DeliveryAttempt] = field(default_factory=list)


@dataclass(slots=True)
class BulkOperation:
    id: int
    query: str
    created_at: int
    status: str = "CREATED"
    type: str = "QUERY"
    completed_at: int | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    path: Path | None = None
    error_code: str | None = None


@dataclass(slots=True)
class LoggedRequest:
    at: float
    method: str
    path: str
    query: str
    status: int
    api: Literal["rest", "graphql"]
    throttled: bool
    forced: bool


@dataclass
class RequestLog:
    requests: int = 0
    rest: int = 0
    graphql: int = 0
    throttled: int = 0  # 429s (REST and forced) and THROTTLED GraphQL answers
    forced: int = 0
    recent: deque[LoggedRequest] = field(default_factory=lambda: deque(maxlen=2000))
    # GraphQL calls by root field (``inventorySetQuantities``, ``nodes``...), and the
    # ``userErrors`` codes mutations answered (``CHANGE_FROM_QUANTITY_STALE``...).
    operations: Counter[str] = field(default_factory=Counter)
    user_errors: Counter[str] = field(default_factory=Counter)

    def record(self, entry: LoggedRequest) -> None:
        self.requests += 1
        if entry.api == "rest":
            self.rest += 1
        else:
            self.graphql += 1
        if entry.throttled:
            self.throttled += 1
        if entry.forced:
            self.forced += 1
        self.recent.append(entry)

    def reset(self) -> None:
        self.requests = self.rest = self.graphql = self.throttled = self.forced = 0
        self.recent.clear()
        self.operations.clear()
        self.user_errors.clear()


# --- shop --------------------------------------------------------------------------------------


class Shop:
    def __init__(
        self,
        *,
        id: int,
        domain: str,
        access_token: str,
        webhook_secret: str,
        plan: Plan,
        created_at: int,
        currency: str,
        utc_offset_minutes: int,
        name: str,
    ) -> None:
        self.id = id
        self.domain = domain
        self.access_token = access_token
        self.webhook_secret = webhook_secret
        self.currency = currency
        self.utc_offset_minutes = utc_offset_minutes
        self.name = name
        self.created_at = created_at
        self.plan = plan
        self.rest_bucket = LeakyBucket(plan.rest_bucket, plan.rest_leak)
        self.graphql_bucket = LeakyBucket(plan.graphql_bucket, plan.graphql_restore)
        self.forced_throttles = 0
        self.forced_retry_after = 2.0
        self.forced_graphql_throttles = 0
        # Error codes the next bulk queries fail with (FAILED, as Shopify reports it).
        self.forced_bulk_failures: list[str] = []
        self.log = RequestLog()

        self.locations: dict[int, Location] = {}
        self.products: dict[int, Product] = {}
        self.product_ids: list[int] = []  # sorted
        self.variants: dict[int, Variant] = {}
        self.variants_by_item: dict[int, Variant] = {}
        self.variants_by_sku: dict[str, Variant] = {}
        self.levels: dict[tuple[int, int], InventoryLevel] = {}  # (item, location)
        self.levels_by_item: dict[int, list[int]] = {}  # item -> location ids (sorted)
        self.customers: list[Customer] = []

        self.orders: dict[int, Order] = {}
        self.order_ids: list[int] = []  # sorted
        self.orders_by_created: list[tuple[int, int]] = []  # (created_at, id), sorted
        self.orders_by_updated: list[tuple[int, int]] = []  # (updated_at, id), sorted
        self.next_order_number = 1
        self.fulfillment_orders: dict[int, FulfillmentOrder] = {}
        self.fulfillment_order_lines: dict[int, tuple[int, int]] = {}  # fo line -> (fo, line)
        self.fulfillments: dict[int, Fulfillment] = {}

        self.webhooks: dict[int, WebhookSubscription] = {}
        self.deliveries: list[Delivery] = []
        self.bulk_operations: dict[int, BulkOperation] = {}
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}

    def set_plan(self, plan: Plan) -> None:
        self.plan = plan
        self.rest_bucket.resize(plan.rest_bucket, plan.rest_leak)
        self.graphql_bucket.resize(plan.graphql_bucket, plan.graphql_restore)

    @property
    def primary_location_id(self) -> int | None:
        return min(self.locations) if self.locations else None

    # indexes ---------------------------------------------------------------------------------

    def add_product(self, product: Product) -> None:
        self.products[product.id] = product
        if self.product_ids and product.id < self.product_ids[-1]:
            bisect.insort(self.product_ids, product.id)
        else:
            self.product_ids.append(product.id)
        for variant in product.variants:
            self.variants[variant.id] = variant
            self.variants_by_item[variant.inventory_item_id] = variant
            if variant.sku:
                self.variants_by_sku.setdefault(variant.sku, variant)

    def add_level(self, level: InventoryLevel) -> None:
        key = (level.inventory_item_id, level.location_id)
        if key not in self.levels:
            bisect.insort(self.levels_by_item.setdefault(level.inventory_item_id, []), key[1])
        self.levels[key] = level

    def add_orders(self, orders: Sequence[Order]) -> None:
        """Index many orders at once (sorted once, not inserted one by one)."""
        for order in orders:
            self.orders[order.id] = order
        self.order_ids.extend(order.id for order in orders)
        self.order_ids.sort()
        self.orders_by_created.extend((order.created_at, order.id) for order in orders)
        self.orders_by_updated.extend((order.updated_at, order.id) for order in orders)
        self.orders_by_created.sort()
        self.orders_by_updated.sort()

    def add_order(self, order: Order) -> None:
        self.orders[order.id] = order
        bisect.insort(self.order_ids, order.id)
        bisect.insort(self.orders_by_created, (order.created_at, order.id))
        bisect.insort(self.orders_by_updated, (order.updated_at, order.id))

    def touch_order(self, order: Order, at: int) -> None:
        """Move ``updated_at`` forward (never back) and keep the index sorted."""
        new = max(at, order.updated_at)
        if new == order.updated_at:
            return
        old_key = (order.updated_at, order.id)
        index = bisect.bisect_left(self.orders_by_updated, old_key)
        if index < len(self.orders_by_updated) and self.orders_by_updated[index] == old_key:
            del self.orders_by_updated[index]
        order.updated_at = new
        bisect.insort(self.orders_by_updated, (new, order.id))

    def inventory_quantity(self, variant: Variant) -> int:
        return sum(
            self.levels[(variant.inventory_item_id, location)].available
            for location in self.levels_by_item.get(variant.inventory_item_id, ())
        )


# --- errors ------------------------------------------------------------------------------------


class SandboxError(Exception):
    """A request the vendor would refuse: HTTP status and Shopify-shaped error body."""

    def __init__(self, status: int, errors: Any) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


# --- events ------------------------------------------------------------------------------------

EventListener = Callable[["Shop", str, list[tuple[str, Any]]], None]
"""Called with (shop, event id, [(topic, resource)]) after a change the vendor notifies."""


# --- state -------------------------------------------------------------------------------------

WEBHOOK_RETRY_DELAYS: tuple[float, ...] = (60, 120, 240, 480, 960, 1920, 3840, 7680)
"""8 retries over about 4 hours with exponential backoff (reference/channel-apis.md §1.3)."""


@dataclass(slots=True)
class LineSpec:
    """A line of an order created through the control API: a variant (by id or SKU) or a
    custom line (title and price, no variant)."""

    quantity: int
    variant_id: int | None = None
    sku: str | None = None
    title: str | None = None
    price_cents: int | None = None


class SandboxState:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        bulk_dir: Path | None = None,
        webhook_retry_delays: Sequence[float] = WEBHOOK_RETRY_DELAYS,
        webhook_timeout: float = 5.0,
        delete_failing_subscriptions: bool = True,
    ) -> None:
        self.clock = clock or Clock()
        self.ids = Ids()
        self.shops: dict[str, Shop] = {}
        self.bulk_dir = bulk_dir or Path(tempfile.mkdtemp(prefix="rappit-sandbox-bulk-"))
        self.webhook_retry_delays = tuple(webhook_retry_delays)
        self.webhook_timeout = webhook_timeout
        self.delete_failing_subscriptions = delete_failing_subscriptions
        self.listeners: list[EventListener] = []
        self.tasks: set[asyncio.Task[None]] = set()  # bulk operations running on the loop

    def now(self) -> int:
        return int(self.clock.now())

    # shops -----------------------------------------------------------------------------------

    def create_shop(
        self,
        domain: str,
        *,
        access_token: str | None = None,
        webhook_secret: str | None = None,
        plan: str = "standard",
        locations: int = 2,
        currency: str = "EUR",
        utc_offset_minutes: int = 60,
    ) -> Shop:
        if domain in self.shops:
            raise SandboxError(409, f"shop {domain} exists")
        if plan not in PLANS:
            raise SandboxError(422, {"plan": [f"must be one of {', '.join(PLANS)}"]})
        now = self.now()
        shop = Shop(
            id=self.ids.next("shop"),
            domain=domain,
            access_token=access_token or f"shpat_{secrets.token_hex(16)}",
            webhook_secret=webhook_secret or f"shpss_{secrets.token_hex(16)}",
            plan=PLANS[plan],
            created_at=now,
            currency=currency,
            utc_offset_minutes=utc_offset_minutes,
            name=domain.split(".")[0].replace("-", " ").title(),
        )
        for index in range(locations):
            name, street, city, zip_code = _LOCATION_PRESETS[index % len(_LOCATION_PRESETS)]
            location = Location(
                id=self.ids.next("location"),
                name=name if index < len(_LOCATION_PRESETS) else f"{name} {index + 1}",
                address1=street,
                city=city,
                zip=zip_code,
                country="Germany",
                country_code="DE",
                created_at=now,
                updated_at=now,
            )
            shop.locations[location.id] = location
        self.shops[domain] = shop
        return shop

    def shop(self, domain: str) -> Shop:
        try:
            return self.shops[domain]
        except KeyError:
            raise SandboxError(404, "Not Found") from None

    # events ----------------------------------------------------------------------------------

    def emit(self, shop: Shop, changes: list[tuple[str, Any]]) -> None:
        """One merchant action: every topic it triggers shares one event id."""
        if not changes:
            return
        event_id = str(uuid.uuid4())
        for listener in self.listeners:
            listener(shop, event_id, changes)

    # inventory -------------------------------------------------------------------------------

    def level(self, shop: Shop, inventory_item_id: int, location_id: int) -> InventoryLevel:
        level = shop.levels.get((inventory_item_id, location_id))
        if level is None:
            raise SandboxError(422, {"base": ["Inventory item is not stocked at the location"]})
        return level

    def set_available(
        self,
        shop: Shop,
        inventory_item_id: int,
        location_id: int,
        *,
        available: int | None = None,
        delta: int | None = None,
        connect: bool = False,
        notify: bool = True,
    ) -> InventoryLevel:
        """Set (or move by ``delta``) the ``available`` quantity of one level; fires
        ``inventory_levels/update`` when it changes."""
        if inventory_item_id not in shop.variants_by_item:
            raise SandboxError(422, {"inventory_item_id": ["Inventory item does not exist"]})
        if location_id not in shop.locations:
            raise SandboxError(422, {"location_id": ["Location does not exist"]})
        key = (inventory_item_id, location_id)
        level = shop.levels.get(key)
        if level is None:
            if not connect:
                raise SandboxError(422, {"base": ["Inventory item is not stocked at the location"]})
            level = InventoryLevel(inventory_item_id, location_id, 0, self.now())
            shop.add_level(level)
        new = available if available is not None else level.available + (delta or 0)
        if new != level.available:
            level.available = new
            level.updated_at = self.now()
            if notify:
                self.emit(shop, [("inventory_levels/update", level)])
        return level

    # orders ----------------------------------------------------------------------------------

    def order(self, shop: Shop, order_id: int) -> Order:
        order = shop.orders.get(order_id)
        if order is None:
            raise SandboxError(404, "Not Found")
        return order

    def create_order(
        self,
        shop: Shop,
        lines: Sequence[LineSpec],
        *,
        financial_status: str = "paid",
        customer: bool = True,
        email: str | None = None,
        location_id: int | None = None,
        note: str | None = None,
        tags: str = "",
        test: bool = False,
        adjust_inventory: bool = True,
    ) -> Order:
        """An order placed at the checkout: fires ``orders/create`` (and ``orders/paid``).
        Like Shopify, tracked units move from ``available`` to ``committed`` at the order's
        location (``adjust_inventory``)."""
        if not lines:
            raise SandboxError(422, {"line_items": ["must have at least one line item"]})
        location_id = location_id or shop.primary_location_id
        if location_id is not None and location_id not in shop.locations:
            raise SandboxError(422, {"location_id": ["Location does not exist"]})
        now = self.now()
        items = [self._line_item(shop, spec) for spec in lines]
        buyer = None
        if customer and shop.customers:
            buyer = shop.customers[(shop.next_order_number * 7919) % len(shop.customers)]
        elif customer:
            buyer = self._new_customer(shop, now)
        order = Order(
            id=self.ids.next("order", gap=1 + (shop.next_order_number * 7919) % 997),
            number=shop.next_order_number,
            created_at=now,
            updated_at=now,
            processed_at=now,
            financial_status=financial_status,
            currency=shop.currency,
            customer=buyer,
            email=email or (buyer.email if buyer else f"guest{shop.next_order_number}@example.com"),
            address=buyer.address if buyer else _GUEST_ADDRESS,
            line_items=items,
            location_id=location_id,
            note=note,
            tags=tags,
            test=test,
        )
        shop.next_order_number += 1
        shop.add_order(order)
        changes: list[tuple[str, Any]] = [("orders/create", order)]
        if financial_status == "paid":
            changes.append(("orders/paid", order))
        self.emit(shop, changes)
        if adjust_inventory and location_id is not None:
            for item in items:
                self._commit(shop, item, location_id, item.quantity)
        return order

    def _commit(self, shop: Shop, item: LineItem, location_id: int, quantity: int) -> None:
        """Move units between available and committed (negative: back to available)."""
        if item.inventory_item_id is None or quantity == 0:
            return
        level = shop.levels.get((item.inventory_item_id, location_id))
        if level is None:
            return
        level.available -= quantity
        level.committed = max(0, level.committed + quantity)
        level.updated_at = self.now()
        self.emit(shop, [("inventory_levels/update", level)])

    def _line_item(self, shop: Shop, spec: LineSpec) -> LineItem:
        if spec.quantity < 1:
            raise SandboxError(422, {"line_items": ["quantity must be at least 1"]})
        variant: Variant | None = None
        if spec.variant_id is not None:
            variant = shop.variants.get(spec.variant_id)
            if variant is None:
                raise SandboxError(422, {"line_items": [f"variant {spec.variant_id} not found"]})
        elif spec.sku is not None:
            variant = shop.variants_by_sku.get(spec.sku)
            if variant is None:
                raise SandboxError(422, {"line_items": [f"no variant with SKU {spec.sku}"]})
        if variant is None:
            if not spec.title:
                raise SandboxError(422, {"line_items": ["a line needs variant_id, sku or a title"]})
            return LineItem(
                id=self.ids.next("line_item"),
                variant_id=None,
                product_id=None,
                sku=None,
                title=spec.title,
                variant_title=None,
                vendor=None,
                quantity=spec.quantity,
                price_cents=spec.price_cents if spec.price_cents is not None else 0,
                grams=0,
                current_quantity=spec.quantity,
            )
        product = shop.products[variant.product_id]
        return LineItem(
            id=self.ids.next("line_item"),
            variant_id=variant.id,
            product_id=product.id,
            sku=variant.sku,
            title=product.title,
            variant_title=variant.title if variant.title != "Default Title" else None,
            vendor=product.vendor,
            quantity=spec.quantity,
            price_cents=spec.price_cents if spec.price_cents is not None else variant.price_cents,
            grams=variant.grams,
            current_quantity=spec.quantity,
            inventory_item_id=variant.inventory_item_id,
        )

    def _new_customer(self, shop: Shop, now: int) -> Customer:
        index = len(shop.customers)
        first = _FIRST_NAMES[index % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(index * 7) % len(_LAST_NAMES)]
        customer = Customer(
            id=self.ids.next("customer"),
            first_name=first,
            last_name=last,
            email=f"{first.lower()}.{last.lower()}{index}@example.com",
            phone=None,
            address=Address(
                first, last, "Hauptstrasse 1", "Berlin", "10115", None, None, "Germany", "DE"
            ),
            created_at=now,
        )
        shop.customers.append(customer)
        return customer

    def update_order(
        self,
        shop: Shop,
        order: Order,
        *,
        note: str | None = None,
        tags: str | None = None,
        email: str | None = None,
        quantities: dict[int, int] | None = None,
        add_lines: Sequence[LineSpec] = (),
    ) -> Order:
        """A merchant edit: fires ``orders/updated`` (and ``orders/edited`` when lines change);
        removed units go back to ``available``."""
        if order.cancelled_at is not None and (quantities or add_lines):
            raise SandboxError(422, {"base": ["A cancelled order cannot be edited"]})
        additions: list[tuple[int, int]] = []
        removals: list[tuple[int, int]] = []
        lines = {line.id: line for line in order.line_items}
        for line_id, quantity in (quantities or {}).items():
            line = lines.get(line_id)
            if line is None:
                raise SandboxError(422, {"line_items": [f"line item {line_id} not found"]})
            if not line.fulfilled_quantity <= quantity <= line.quantity:
                raise SandboxError(
                    422,
                    {
                        "line_items": [
                            f"quantity of {line_id} must be between the fulfilled "
                            "quantity and the ordered quantity"
                        ]
                    },
                )
            removed = line.current_quantity - quantity
            if removed:
                line.current_quantity = quantity
                if removed > 0:
                    removals.append((line.id, removed))
                else:
                    additions.append((line.id, -removed))
                if order.location_id is not None:
                    self._commit(shop, line, order.location_id, -removed)
        new_items = [self._line_item(shop, spec) for spec in add_lines]
        if new_items:
            order.line_items.extend(new_items)
            additions.extend((item.id, item.quantity) for item in new_items)
            if order.location_id is not None:
                for item in new_items:
                    self._commit(shop, item, order.location_id, item.quantity)
        if note is not None:
            order.note = note
        if tags is not None:
            order.tags = tags
        if email is not None:
            order.email = email
        self._advance(shop, order)
        changes: list[tuple[str, Any]] = [("orders/updated", order)]
        if additions or removals:
            edit = OrderEdit(
                self.ids.next("order_edit"), order, order.updated_at, additions, removals
            )
            changes.insert(0, ("orders/edited", edit))
        self.emit(shop, changes)
        return order

    def _advance(self, shop: Shop, order: Order) -> None:
        """Every change moves ``updated_at``: to now, or one second on when the clock is
        frozen at or before the last change (so consumers can order the versions)."""
        now = self.now()
        shop.touch_order(order, now if now > order.updated_at else order.updated_at + 1)

    def cancel_order(
        self, shop: Shop, order: Order, *, reason: str = "customer", restock: bool = True
    ) -> Order:
        if order.cancelled_at is not None:
            raise SandboxError(422, {"base": ["Order has already been cancelled"]})
        if order.fulfillment_status == "fulfilled":
            raise SandboxError(422, {"base": ["Cannot cancel a fulfilled order"]})
        self._advance(shop, order)
        order.cancelled_at = order.updated_at
        order.closed_at = order.updated_at
        order.cancel_reason = reason
        if order.financial_status in ("paid", "partially_paid"):
            order.financial_status = "refunded"
        elif order.financial_status in ("pending", "authorized"):
            order.financial_status = "voided"
        self.emit(shop, [("orders/cancelled", order), ("orders/updated", order)])
        if restock and order.location_id is not None:
            for line in order.line_items:
                self._commit(shop, line, order.location_id, -line.fulfillable_quantity)
        return order

    def pay_order(self, shop: Shop, order: Order) -> Order:
        if order.cancelled_at is not None:
            raise SandboxError(422, {"base": ["A cancelled order cannot be paid"]})
        if order.financial_status == "paid":
            raise SandboxError(422, {"base": ["Order is already paid"]})
        order.financial_status = "paid"
        self._advance(shop, order)
        self.emit(shop, [("orders/paid", order), ("orders/updated", order)])
        return order

    def close_order(self, shop: Shop, order: Order) -> Order:
        if order.closed_at is None:
            self._advance(shop, order)
            order.closed_at = order.updated_at
            self.emit(shop, [("orders/updated", order)])
        return order

    # fulfillment orders and fulfillments -----------------------------------------------------

    def fulfillment_order(self, shop: Shop, order: Order) -> FulfillmentOrder | None:
        """The order's fulfilment order, created on first use (Shopify creates it with the
        order; creating it lazily keeps generation cheap and is not observable)."""
        if order.fulfillment_order is None:
            location_id = order.location_id or shop.primary_location_id
            if location_id is None:
                return None
            fulfillment_order = FulfillmentOrder(
                id=self.ids.next("fulfillment_order"),
                order_id=order.id,
                location_id=location_id,
                created_at=order.created_at,
                updated_at=order.created_at,
                line_ids={},
            )
            order.fulfillment_order = fulfillment_order
            shop.fulfillment_orders[fulfillment_order.id] = fulfillment_order
        fulfillment_order = order.fulfillment_order
        for line in order.line_items:  # lines added by an edit get their FO line now
            if line.requires_shipping and line.id not in fulfillment_order.line_ids:
                fo_line_id = self.ids.next("fulfillment_order_line_item")
                fulfillment_order.line_ids[line.id] = fo_line_id
                shop.fulfillment_order_lines[fo_line_id] = (fulfillment_order.id, line.id)
        return fulfillment_order

    @staticmethod
    def fulfillment_order_status(order: Order) -> str:
        shippable = [line for line in order.line_items if line.requires_shipping]
        if order.cancelled_at is not None:
            return "closed"
        remaining = sum(line.fulfillable_quantity for line in shippable)
        fulfilled = sum(line.fulfilled_quantity for line in shippable)
        if remaining == 0:
            return "closed"
        return "in_progress" if fulfilled else "open"

    def create_fulfillment(
        self,
        shop: Shop,
        requested: Sequence[tuple[int, Sequence[tuple[int, int]] | None]],
        *,
        tracking_company: str | None = None,
        tracking_numbers: Sequence[str] = (),
        tracking_urls: Sequence[str] = (),
        notify_customer: bool = False,
    ) -> Fulfillment:
        """A fulfilment of fulfilment order lines: ``requested`` is
        ``[(fulfillment_order_id, [(fo_line_item_id, quantity)] or None for everything)]``.
        Validated whole before anything changes."""
        if not requested:
            raise SandboxError(422, {"base": ["line_items_by_fulfillment_order is required"]})
        order: Order | None = None
        quantities: dict[int, int] = {}
        for fulfillment_order_id, lines in requested:
            fulfillment_order = shop.fulfillment_orders.get(fulfillment_order_id)
            if fulfillment_order is None:
                raise SandboxError(404, "Not Found")
            this_order = shop.orders[fulfillment_order.order_id]
            if order is not None and this_order.id != order.id:
                raise SandboxError(422, ["All fulfillment orders must belong to the same order."])
            order = this_order
            self.fulfillment_order(shop, order)  # lines added by edits
            status = self.fulfillment_order_status(order)
            if status not in ("open", "in_progress"):
                raise SandboxError(
                    422,
                    [
                        f"Fulfillment order {fulfillment_order_id} has an unfulfillable "
                        f"status= {status}."
                    ],
                )
            by_line = {line.id: line for line in order.line_items}
            if lines is None:
                for line_id in fulfillment_order.line_ids:
                    if by_line[line_id].fulfillable_quantity:
                        quantities[line_id] = by_line[line_id].fulfillable_quantity
                continue
            for fo_line_id, quantity in lines:
                located = shop.fulfillment_order_lines.get(fo_line_id)
                if located is None or located[0] != fulfillment_order_id:
                    raise SandboxError(
                        422,
                        [
                            f"Fulfillment order line item {fo_line_id} does not belong to "
                            f"fulfillment order {fulfillment_order_id}."
                        ],
                    )
                line = by_line[located[1]]
                total = quantities.get(line.id, 0) + quantity
                if quantity < 1 or total > line.fulfillable_quantity:
                    raise SandboxError(
                        422, ["Invalid fulfillment order line item quantity requested."]
                    )
                quantities[line.id] = total
        assert order is not None
        if not quantities:
            raise SandboxError(422, ["Fulfillment order has no remaining line items."])
        fulfillment_order = order.fulfillment_order
        assert fulfillment_order is not None
        self._advance(shop, order)
        now = order.updated_at
        fulfillment = Fulfillment(
            id=self.ids.next("fulfillment"),
            order_id=order.id,
            location_id=fulfillment_order.location_id,
            name=f"#{1000 + order.number}.{len(order.fulfillment_ids) + 1}",
            created_at=now,
            updated_at=now,
            quantities=quantities,
            tracking_company=tracking_company,
            tracking_numbers=list(tracking_numbers),
            tracking_urls=list(tracking_urls),
            notify_customer=notify_customer,
        )
        shop.fulfillments[fulfillment.id] = fulfillment
        order.fulfillment_ids.append(fulfillment.id)
        fulfillment_order.updated_at = now
        for line in order.line_items:
            fulfilled = quantities.get(line.id, 0)
            if fulfilled:
                line.fulfilled_quantity += fulfilled
                if line.inventory_item_id is not None:
                    level = shop.levels.get((line.inventory_item_id, fulfillment.location_id))
                    if level is not None:  # shipped: leaves committed (and on hand)
                        level.committed = max(0, level.committed - fulfilled)
        status_topic = (
            "orders/fulfilled"
            if order.fulfillment_status == "fulfilled"
            else "orders/partially_fulfilled"
        )
        self.emit(
            shop,
            [
                ("fulfillments/create", fulfillment),
                (status_topic, order),
                ("orders/updated", order),
            ],
        )
        return fulfillment

    def update_tracking(
        self,
        shop: Shop,
        fulfillment: Fulfillment,
        *,
        company: str | None,
        numbers: Sequence[str],
        urls: Sequence[str],
        notify_customer: bool,
    ) -> Fulfillment:
        if fulfillment.status == "cancelled":
            raise SandboxError(422, ["Fulfillment is cancelled and cannot be updated."])
        fulfillment.tracking_company = company
        fulfillment.tracking_numbers = list(numbers)
        fulfillment.tracking_urls = list(urls)
        fulfillment.notify_customer = notify_customer
        fulfillment.updated_at = max(self.now(), fulfillment.updated_at + 1)
        self.emit(shop, [("fulfillments/update", fulfillment)])
        return fulfillment

    def cancel_fulfillment(self, shop: Shop, fulfillment: Fulfillment) -> Fulfillment:
        if fulfillment.status == "cancelled":
            raise SandboxError(422, ["Fulfillment is already cancelled."])
        order = shop.orders[fulfillment.order_id]
        fulfillment.status = "cancelled"
        for line in order.line_items:
            line.fulfilled_quantity -= fulfillment.quantities.get(line.id, 0)
        self._advance(shop, order)
        fulfillment.updated_at = order.updated_at
        self.emit(shop, [("fulfillments/update", fulfillment), ("orders/updated", order)])
        return fulfillment

    # webhooks --------------------------------------------------------------------------------

    def subscriptions(self, shop: Shop, topic: str) -> Iterable[WebhookSubscription]:
        return [hook for hook in shop.webhooks.values() if hook.topic == topic]


_LOCATION_PRESETS = [
    ("Main warehouse", "Lagerstrasse 5", "Berlin", "10115"),
    ("Hamburg store", "Jungfernstieg 10", "Hamburg", "20354"),
    ("Munich outlet", "Leopoldstrasse 20", "Munich", "80802"),
]

_FIRST_NAMES = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Edsger",
    "Barbara",
    "Ken",
    "Frances",
    "Donald",
    "Hedy",
    "Niklaus",
    "Radia",
    "Tim",
    "Katherine",
    "Dennis",
]
_LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Allen",
    "Knuth",
    "Lamarr",
    "Wirth",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "Ritchie",
]
_GUEST_ADDRESS = Address(
    "Guest", "Buyer", "Marktplatz 3", "Leipzig", "04109", None, None, "Germany", "DE"
)
