"""Filtering and paging orders and products, shared by REST and GraphQL.

Orders are indexed by id, ``(created_at, id)`` and ``(updated_at, id)``; a time range on the
sort field narrows the scan with a binary search, so paging 100,000 orders by ``updated_at``
costs a page's worth of work per request.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from rappit.sandbox.shopify.pagination import Page, keyset_page
from rappit.sandbox.shopify.state import Order, Product, Shop

OrderSort = Literal["id", "created_at", "updated_at"]
_MAX = 2**63

ORDER_STATUSES = frozenset({"open", "closed", "cancelled", "any"})
FINANCIAL_STATUSES = frozenset(
    {
        "authorized",
        "pending",
        "paid",
        "partially_paid",
        "refunded",
        "voided",
        "partially_refunded",
        "any",
        "unpaid",
    }
)
FULFILLMENT_STATUSES = frozenset({"shipped", "partial", "unshipped", "any", "unfulfilled"})


def parse_time(value: str) -> int:
    """ISO 8601 with an offset (or ``Z``), or a date (midnight UTC), as epoch seconds."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed_date = date.fromisoformat(text)  # raises ValueError too
        parsed = datetime(parsed_date.year, parsed_date.month, parsed_date.day, tzinfo=UTC)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


@dataclass(slots=True)
class OrderFilter:
    status: str = "any"
    ids: frozenset[int] | None = None
    since_id: int | None = None
    created_min: int | None = None
    created_max: int | None = None
    updated_min: int | None = None
    updated_max: int | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None

    def matches(self, order: Order) -> bool:
        status = self.status
        if status == "open" and (order.closed_at is not None or order.cancelled_at is not None):
            return False
        if status == "closed" and order.closed_at is None:  # archived, cancelled ones included
            return False
        if status == "cancelled" and order.cancelled_at is None:
            return False
        if self.ids is not None and order.id not in self.ids:
            return False
        if self.since_id is not None and order.id <= self.since_id:
            return False
        if self.created_min is not None and order.created_at < self.created_min:
            return False
        if self.created_max is not None and order.created_at > self.created_max:
            return False
        if self.updated_min is not None and order.updated_at < self.updated_min:
            return False
        if self.updated_max is not None and order.updated_at > self.updated_max:
            return False
        financial = self.financial_status
        if financial not in (None, "any"):
            if financial == "unpaid":
                if order.financial_status not in ("pending", "authorized", "partially_paid"):
                    return False
            elif order.financial_status != financial:
                return False
        fulfillment = self.fulfillment_status
        if fulfillment not in (None, "any"):
            current = order.fulfillment_status
            if fulfillment == "shipped" and current != "fulfilled":
                return False
            if fulfillment == "partial" and current != "partial":
                return False
            if fulfillment == "unshipped" and current is not None:
                return False
            if fulfillment == "unfulfilled" and current == "fulfilled":
                return False
        return True


def order_page(
    shop: Shop,
    flt: OrderFilter,
    *,
    sort: OrderSort,
    descending: bool,
    limit: int,
    after: int | tuple[int, int] | None = None,
    before: int | tuple[int, int] | None = None,
) -> tuple[list[Order], Page[int] | Page[tuple[int, int]]]:
    orders = shop.orders
    if sort == "id":
        id_page = keyset_page(
            shop.order_ids,
            limit=limit,
            descending=descending,
            after=after if isinstance(after, int) else None,
            before=before if isinstance(before, int) else None,
            match=lambda key: flt.matches(orders[key]),
            lo=bisect.bisect_right(shop.order_ids, flt.since_id or 0),
        )
        return [orders[key] for key in id_page.keys], id_page
    keys = shop.orders_by_updated if sort == "updated_at" else shop.orders_by_created
    low = flt.updated_min if sort == "updated_at" else flt.created_min
    high = flt.updated_max if sort == "updated_at" else flt.created_max
    lo = bisect.bisect_left(keys, (low, -1)) if low is not None else 0
    hi = bisect.bisect_right(keys, (high, _MAX)) if high is not None else len(keys)
    page = keyset_page(
        keys,
        limit=limit,
        descending=descending,
        after=after if isinstance(after, tuple) else None,
        before=before if isinstance(before, tuple) else None,
        match=lambda key: flt.matches(orders[key[1]]),
        lo=lo,
        hi=hi,
    )
    return [orders[key[1]] for key in page.keys], page


def order_sort_key(order: Order, sort: OrderSort) -> int | tuple[int, int]:
    if sort == "id":
        return order.id
    return (order.updated_at if sort == "updated_at" else order.created_at, order.id)


def count_orders(shop: Shop, flt: OrderFilter) -> int:
    return sum(1 for order in shop.orders.values() if flt.matches(order))


@dataclass(slots=True)
class ProductFilter:
    ids: frozenset[int] | None = None
    since_id: int | None = None
    created_min: int | None = None
    created_max: int | None = None
    updated_min: int | None = None
    updated_max: int | None = None
    status: frozenset[str] | None = None
    vendor: str | None = None
    product_type: str | None = None
    handle: frozenset[str] | None = None
    sku: str | None = None

    def matches(self, product: Product) -> bool:
        if self.ids is not None and product.id not in self.ids:
            return False
        if self.since_id is not None and product.id <= self.since_id:
            return False
        if self.created_min is not None and product.created_at < self.created_min:
            return False
        if self.created_max is not None and product.created_at > self.created_max:
            return False
        if self.updated_min is not None and product.updated_at < self.updated_min:
            return False
        if self.updated_max is not None and product.updated_at > self.updated_max:
            return False
        if self.status is not None and product.status not in self.status:
            return False
        if self.vendor is not None and product.vendor != self.vendor:
            return False
        if self.product_type is not None and product.product_type != self.product_type:
            return False
        if self.handle is not None and product.handle not in self.handle:
            return False
        return self.sku is None or any(v.sku == self.sku for v in product.variants)


def product_page(
    shop: Shop,
    flt: ProductFilter,
    *,
    limit: int,
    descending: bool = False,
    after: int | None = None,
    before: int | None = None,
) -> tuple[list[Product], Page[int]]:
    page = keyset_page(
        shop.product_ids,
        limit=limit,
        descending=descending,
        after=after,
        before=before,
        match=lambda key: flt.matches(shop.products[key]),
    )
    return [shop.products[key] for key in page.keys], page


# --- GraphQL search syntax (``query: "updated_at:>'2025-06-01T00:00:00Z' status:open"``) ------

_TERM = re.compile(r"""(-?)([A-Za-z_]+):(>=|<=|>|<)?('[^']*'|"[^"]*"|\S+)""")


def search_terms(query: str | None) -> list[tuple[bool, str, str, str]]:
    """(negated, field, operator, value) for each ``field:value`` term; bare words and
    ``AND`` are ignored (Shopify ignores unknown terms too, with a warning)."""
    terms = []
    for negated, name, operator, value in _TERM.findall(query or ""):
        terms.append((negated == "-", name.lower(), operator or ":", value.strip("'\"")))
    return terms


def _bound(flt: OrderFilter | ProductFilter, name: str, operator: str, value: str) -> None:
    moment = parse_time(value)
    if operator in (">", ">="):
        setattr(flt, f"{name}_min", moment + (1 if operator == ">" else 0))
    elif operator in ("<", "<="):
        setattr(flt, f"{name}_max", moment - (1 if operator == "<" else 0))
    else:
        setattr(flt, f"{name}_min", moment)
        setattr(flt, f"{name}_max", moment)


def order_filter_from_search(query: str | None) -> OrderFilter:
    flt = OrderFilter(status="any")
    for negated, name, operator, value in search_terms(query):
        if negated:
            continue
        if name in ("updated_at", "created_at", "processed_at"):
            _bound(flt, "updated" if name == "updated_at" else "created", operator, value)
        elif name == "status" and value.lower() in ORDER_STATUSES:
            flt.status = value.lower()
        elif name == "financial_status":
            flt.financial_status = value.lower()
        elif name == "fulfillment_status":
            flt.fulfillment_status = {"fulfilled": "shipped", "unfulfilled": "unshipped"}.get(
                value.lower(), value.lower()
            )
        elif name == "id" and value.isdigit():
            if operator in (">", ">="):
                flt.since_id = int(value) - (0 if operator == ">" else 1)
            elif operator == ":":
                flt.ids = frozenset({int(value)})
    return flt


def product_filter_from_search(query: str | None) -> ProductFilter:
    flt = ProductFilter()
    for negated, name, operator, value in search_terms(query):
        if negated:
            continue
        if name in ("updated_at", "created_at"):
            _bound(flt, "updated" if name == "updated_at" else "created", operator, value)
        elif name == "status":
            flt.status = frozenset(part.strip().lower() for part in value.split(","))
        elif name == "vendor":
            flt.vendor = value
        elif name == "product_type":
            flt.product_type = value
        elif name == "handle":
            flt.handle = frozenset({value})
        elif name == "sku":
            flt.sku = value
        elif name == "id" and value.isdigit():
            if operator in (">", ">="):
                flt.since_id = int(value) - (0 if operator == ">" else 1)
            elif operator == ":":
                flt.ids = frozenset({int(value)})
    return flt
