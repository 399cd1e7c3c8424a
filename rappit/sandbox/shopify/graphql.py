"""The GraphQL Admin API at ``/shops/{shop}/admin/api/{version}/graphql.json``.

Not a full GraphQL server: the operations a client uses are recognised by their root field and
answered with Shopify's shapes, projected onto the client's selection (``gql.Projector``).

- Queries: ``shop``, ``orders``/``products``/``productVariants``/``locations``/
  ``inventoryItems`` connections (``first``/``last``/``after``/``before``, ``query:`` search
  syntax, ``sortKey``, ``reverse``), ``order``, ``product``, ``productVariant``,
  ``inventoryItem``, ``location``, ``fulfillmentOrder``, ``node``/``nodes`` by GID,
  ``currentBulkOperation`` and ``bulkOperation``.
- Mutations: ``bulkOperationRunQuery``, ``bulkOperationCancel``, ``inventorySetQuantities``
  and ``inventoryAdjustQuantities`` (compare-and-set, ``@idempotent(key:)``),
  ``fulfillmentCreate`` and ``fulfillmentTrackingInfoUpdate``.
- Webhook subscriptions: ``webhookSubscriptions`` and ``webhookSubscriptionCreate|Update|Delete``
  (``graphql_webhooks``), the same subscriptions as REST's ``webhooks.json``.

Every answer carries ``extensions.cost`` from the shop's cost bucket (reference/channel-apis.md
§2.2): the requested cost is taken up front and the unused part refunded; a request that does
not fit is answered ``THROTTLED`` (HTTP 200) and nothing runs.

Bulk operations (§2.3) run on the server's loop and write JSONL where each nested connection's
nodes are lines of their own carrying ``__parentId``; the file is served at
``/bulk/{id}.jsonl``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from rappit.sandbox.shopify import graphql_webhooks, payloads
from rappit.sandbox.shopify.gql import (
    Document,
    Field,
    GraphQLError,
    Operation,
    Projector,
    Resolved,
    coerce_variables,
    parse,
    requested_cost,
    resolve_arguments,
    resolve_value,
    selected_fields,
)
from rappit.sandbox.shopify.http import admin, sandbox_state, version_at_least
from rappit.sandbox.shopify.pagination import (
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    key_from_json,
)
from rappit.sandbox.shopify.queries import (
    OrderSort,
    order_filter_from_search,
    order_page,
    order_sort_key,
    product_filter_from_search,
    product_page,
)
from rappit.sandbox.shopify.state import (
    BulkOperation,
    Fulfillment,
    FulfillmentOrder,
    InventoryLevel,
    LineItem,
    Location,
    Order,
    Product,
    SandboxError,
    SandboxState,
    Shop,
    Variant,
)

logger = logging.getLogger(__name__)

router = APIRouter(tags=["Shopify GraphQL"])

MAX_QUERY_COST = 1000
MUTATION_COST = 10
MAX_PAGE = 250
MAX_CONCURRENT_BULK = 5  # from 2026-01; one bulk query at a time before
BULK_CHUNK = 500
INVENTORY_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
IDEMPOTENCY_REQUIRED_FROM = "2026-04"


def utc(timestamp: int | None) -> str | None:
    """GraphQL ``DateTime``: UTC with ``Z``."""
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def parse_gid(value: Any, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    tail = value[len(prefix) :].split("?", 1)[0]
    return int(tail) if tail.isdigit() else None


# --- objects -----------------------------------------------------------------------------------


@dataclass
class Ctx:
    state: SandboxState
    shop: Shop
    version: str
    base_url: str


def _money(cents: int, currency: str) -> Resolved:
    return {"__typename": "MoneyV2", "amount": payloads.money(cents), "currencyCode": currency}


def _money_bag(cents: int, currency: str) -> Resolved:
    return {
        "__typename": "MoneyBag",
        "shopMoney": _money(cents, currency),
        "presentmentMoney": _money(cents, currency),
    }


def connection(
    typename: str,
    items: Sequence[Any],
    node: Callable[[Any], Resolved],
    arguments: dict[str, Any],
) -> Resolved:
    """A connection over an in-memory list (cursor = position)."""
    if arguments.get("__bulk"):
        return {"__typename": f"{typename}Connection", "__all": [node(item) for item in items]}
    first, last = _page_size(arguments)
    start, end = 0, len(items)
    try:
        if arguments.get("after") is not None:
            start = int(decode_cursor(str(arguments["after"]))["i"]) + 1
        if arguments.get("before") is not None:
            end = int(decode_cursor(str(arguments["before"]))["i"])
    except (InvalidCursor, KeyError, TypeError, ValueError):
        raise GraphQLError("Invalid cursor for the connection", code="BAD_REQUEST") from None
    indexes = list(range(max(0, start), min(len(items), end)))
    if first is not None:
        chosen = indexes[:first]
    else:
        assert last is not None
        chosen = indexes[-last:] if last else []
    return _connection_dict(
        typename,
        [(encode_cursor({"i": i}), node(items[i])) for i in chosen],
        has_next=bool(chosen) and chosen[-1] < len(items) - 1,
        has_previous=bool(chosen) and chosen[0] > 0,
    )


def _page_size(arguments: dict[str, Any]) -> tuple[int | None, int | None]:
    first, last = arguments.get("first"), arguments.get("last")
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last", code="BAD_REQUEST")
    for name, value in (("first", first), ("last", last)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise GraphQLError(f"{name} must be a positive integer", code="BAD_REQUEST")
        if isinstance(value, int) and value > MAX_PAGE:
            raise GraphQLError(
                f"The maximum number of records that can be requested is {MAX_PAGE}",
                code="BAD_REQUEST",
            )
    return (first, None) if first is not None else (None, last)


def _connection_dict(
    typename: str, edges: list[tuple[str, Resolved]], *, has_next: bool, has_previous: bool
) -> Resolved:
    return {
        "__typename": f"{typename}Connection",
        "edges": [
            {"__typename": f"{typename}Edge", "cursor": cursor, "node": node}
            for cursor, node in edges
        ],
        "nodes": [node for _, node in edges],
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": edges[0][0] if edges else None,
            "endCursor": edges[-1][0] if edges else None,
        },
    }


def gql_location(ctx: Ctx, location: Location) -> Resolved:
    shop = ctx.shop
    return {
        "__typename": "Location",
        "__implements": ("Node",),
        "id": payloads.gid("Location", location.id),
        "legacyResourceId": str(location.id),
        "name": location.name,
        "isActive": location.active,
        "fulfillsOnlineOrders": True,
        "createdAt": utc(location.created_at),
        "updatedAt": utc(location.updated_at),
        "address": {
            "__typename": "LocationAddress",
            "address1": location.address1,
            "address2": None,
            "city": location.city,
            "zip": location.zip,
            "country": location.country,
            "countryCode": location.country_code,
            "province": None,
            "provinceCode": None,
        },
        "inventoryLevels": lambda args: connection(
            "InventoryLevel",
            [shop.levels[key] for key in sorted(shop.levels) if key[1] == location.id],
            lambda level: gql_level(ctx, level),
            args,
        ),
        "inventoryLevel": lambda args: _level_or_none(
            ctx, parse_gid(args.get("inventoryItemId"), "InventoryItem"), location.id
        ),
    }


def _level_or_none(ctx: Ctx, item_id: int | None, location_id: int | None) -> Resolved | None:
    if item_id is None or location_id is None:
        return None
    level = ctx.shop.levels.get((item_id, location_id))
    return gql_level(ctx, level) if level else None


def gql_level(ctx: Ctx, level: InventoryLevel) -> Resolved:
    quantities = {
        "available": level.available,
        "committed": level.committed,
        "on_hand": level.available + level.committed,
        "reserved": 0,
        "incoming": 0,
        "damaged": 0,
        "quality_control": 0,
        "safety_stock": 0,
    }

    def named(args: dict[str, Any]) -> list[Resolved]:
        names = args.get("names") or []
        return [
            {
                "__typename": "InventoryQuantity",
                "id": f"{name}-{level.location_id}",
                "name": name,
                "quantity": quantities[name],
                "updatedAt": utc(level.updated_at),
            }
            for name in names
            if name in quantities
        ]

    return {
        "__typename": "InventoryLevel",
        "__implements": ("Node",),
        "id": (
            f"gid://shopify/InventoryLevel/{level.location_id}"
            f"?inventory_item_id={level.inventory_item_id}"
        ),
        "createdAt": utc(level.updated_at),
        "updatedAt": utc(level.updated_at),
        "canDeactivate": True,
        "quantities": named,
        "location": lambda _: gql_location(ctx, ctx.shop.locations[level.location_id]),
        "item": lambda _: gql_inventory_item(
            ctx, ctx.shop.variants_by_item[level.inventory_item_id]
        ),
    }


def gql_inventory_item(ctx: Ctx, variant: Variant) -> Resolved:
    shop = ctx.shop
    item_id = variant.inventory_item_id
    return {
        "__typename": "InventoryItem",
        "__implements": ("Node",),
        "id": payloads.gid("InventoryItem", item_id),
        "legacyResourceId": str(item_id),
        "sku": variant.sku,
        "tracked": variant.tracked,
        "requiresShipping": variant.requires_shipping,
        "createdAt": utc(variant.created_at),
        "updatedAt": utc(variant.updated_at),
        "variant": lambda _: gql_variant(ctx, variant),
        "inventoryLevels": lambda args: connection(
            "InventoryLevel",
            [shop.levels[(item_id, loc)] for loc in shop.levels_by_item.get(item_id, ())],
            lambda level: gql_level(ctx, level),
            args,
        ),
        "inventoryLevel": lambda args: _level_or_none(
            ctx, item_id, parse_gid(args.get("locationId"), "Location")
        ),
    }


def gql_variant(ctx: Ctx, variant: Variant) -> Resolved:
    shop = ctx.shop
    return {
        "__typename": "ProductVariant",
        "__implements": ("Node",),
        "id": payloads.gid("ProductVariant", variant.id),
        "legacyResourceId": str(variant.id),
        "title": variant.title,
        "displayName": f"{shop.products[variant.product_id].title} - {variant.title}",
        "sku": variant.sku,
        "barcode": variant.barcode,
        "price": payloads.money(variant.price_cents),
        "position": variant.position,
        "inventoryQuantity": shop.inventory_quantity(variant),
        "createdAt": utc(variant.created_at),
        "updatedAt": utc(variant.updated_at),
        "product": lambda _: gql_product(ctx, shop.products[variant.product_id]),
        "inventoryItem": lambda _: gql_inventory_item(ctx, variant),
    }


def gql_product(ctx: Ctx, product: Product) -> Resolved:
    shop = ctx.shop
    return {
        "__typename": "Product",
        "__implements": ("Node",),
        "id": payloads.gid("Product", product.id),
        "legacyResourceId": str(product.id),
        "title": product.title,
        "handle": product.handle,
        "status": product.status.upper(),
        "vendor": product.vendor,
        "productType": product.product_type,
        "tags": [tag.strip() for tag in product.tags.split(",") if tag.strip()],
        "createdAt": utc(product.created_at),
        "updatedAt": utc(product.updated_at),
        "totalInventory": sum(shop.inventory_quantity(v) for v in product.variants),
        "variants": lambda args: connection(
            "ProductVariant", product.variants, lambda v: gql_variant(ctx, v), args
        ),
    }


def _address(address: Any) -> Resolved | None:
    if address is None:
        return None
    return {
        "__typename": "MailingAddress",
        "firstName": address.first_name,
        "lastName": address.last_name,
        "name": f"{address.first_name} {address.last_name}",
        "company": address.company,
        "address1": address.address1,
        "address2": address.address2,
        "city": address.city,
        "province": address.province,
        "provinceCode": address.province_code,
        "zip": address.zip,
        "country": address.country,
        "countryCodeV2": address.country_code,
        "phone": address.phone,
    }


def gql_line_item(ctx: Ctx, order: Order, line: LineItem) -> Resolved:
    shop = ctx.shop
    cancelled = order.cancelled_at is not None
    variant = shop.variants.get(line.variant_id) if line.variant_id else None
    product = shop.products.get(line.product_id) if line.product_id else None
    return {
        "__typename": "LineItem",
        "__implements": ("Node",),
        "id": payloads.gid("LineItem", line.id),
        "name": f"{line.title} - {line.variant_title}" if line.variant_title else line.title,
        "title": line.title,
        "variantTitle": line.variant_title,
        "vendor": line.vendor,
        "sku": line.sku,
        "quantity": line.quantity,
        "currentQuantity": 0 if cancelled else line.current_quantity,
        "unfulfilledQuantity": 0 if cancelled else line.fulfillable_quantity,
        "fulfillableQuantity": 0 if cancelled else line.fulfillable_quantity,
        "requiresShipping": line.requires_shipping,
        "isGiftCard": False,
        "taxable": True,
        "originalUnitPriceSet": _money_bag(line.price_cents, order.currency),
        "discountedUnitPriceSet": _money_bag(line.price_cents, order.currency),
        "originalTotalSet": _money_bag(line.price_cents * line.quantity, order.currency),
        "discountAllocations": [],
        "variant": (lambda _: gql_variant(ctx, variant)) if variant else None,
        "product": (lambda _: gql_product(ctx, product)) if product else None,
    }


_FULFILLMENT_STATUS = {
    None: "UNFULFILLED",
    "partial": "PARTIALLY_FULFILLED",
    "fulfilled": "FULFILLED",
}


def _tax_line(cents: int, currency: str) -> Resolved:
    return {
        "__typename": "TaxLine",
        "title": "MwSt",
        "rate": payloads.TAX_RATE_PERCENT / 100,
        "ratePercentage": float(payloads.TAX_RATE_PERCENT),
        "priceSet": _money_bag(cents, currency),
        "channelLiable": False,
    }


def gql_shipping_line(order: Order) -> Resolved:
    """The order's one shipping line, as the REST ``shipping_lines`` entry shows it."""
    cents, currency = order.shipping_cents, order.currency
    return {
        "__typename": "ShippingLine",
        "id": payloads.gid("ShippingLine", order.id + 3),
        "code": "Standard",
        "title": "Standard" if cents else "Free shipping",
        "source": "shopify",
        "carrierIdentifier": None,
        "phone": None,
        "isRemoved": False,
        "custom": False,
        "originalPriceSet": _money_bag(cents, currency),
        "discountedPriceSet": _money_bag(cents, currency),
        "requestedFulfillmentService": None,
        "taxLines": [],
        "discountAllocations": [],
    }


def gql_order(ctx: Ctx, order: Order) -> Resolved:
    shop = ctx.shop
    currency = order.currency
    totals = payloads.order_totals(order)
    # POS orders carry the shop location they were sold at (REST ``location_id``).
    retail_location = (
        shop.locations.get(order.location_id)
        if order.source_name != "web" and order.location_id
        else None
    )

    def fulfillment_orders(args: dict[str, Any]) -> Resolved:
        fulfillment_order = ctx.state.fulfillment_order(shop, order)
        items = [fulfillment_order] if fulfillment_order else []
        return connection(
            "FulfillmentOrder", items, lambda fo: gql_fulfillment_order(ctx, order, fo), args
        )

    return {
        "__typename": "Order",
        "__implements": ("Node",),
        "id": payloads.gid("Order", order.id),
        "legacyResourceId": str(order.id),
        "name": f"#{1000 + order.number}",
        # The number in the name (REST ``order_number``), not REST's ``number``.
        "number": 1000 + order.number,
        "email": order.email,
        "phone": None,
        "createdAt": utc(order.created_at),
        "updatedAt": utc(order.updated_at),
        "processedAt": utc(order.processed_at),
        "cancelledAt": utc(order.cancelled_at),
        "cancelReason": order.cancel_reason.upper() if order.cancel_reason else None,
        "closed": order.closed_at is not None,
        "closedAt": utc(order.closed_at),
        "test": order.test,
        "note": order.note,
        "tags": [tag.strip() for tag in order.tags.split(",") if tag.strip()],
        "sourceName": order.source_name,
        "currencyCode": currency,
        "presentmentCurrencyCode": currency,
        "displayFinancialStatus": order.financial_status.upper(),
        "displayFulfillmentStatus": _FULFILLMENT_STATUS[order.fulfillment_status],
        "fullyPaid": order.financial_status == "paid",
        "unpaid": order.financial_status in ("pending", "authorized"),
        "totalPriceSet": _money_bag(totals["total"], currency),
        "subtotalPriceSet": _money_bag(totals["subtotal"], currency),
        "totalTaxSet": _money_bag(totals["tax"], currency),
        "currentTotalPriceSet": _money_bag(totals["current_total"], currency),
        "currentSubtotalPriceSet": _money_bag(totals["current_subtotal"], currency),
        "totalShippingPriceSet": _money_bag(order.shipping_cents, currency),
        "totalDiscountsSet": _money_bag(0, currency),
        "currentTotalTaxSet": _money_bag(totals["current_tax"], currency),
        "taxesIncluded": True,
        "taxLines": [_tax_line(totals["tax"], currency)],
        "discountCodes": [],
        "customAttributes": [],
        "retailLocation": (
            (lambda _, loc=retail_location: gql_location(ctx, loc)) if retail_location else None
        ),
        "shippingLines": lambda args: connection("ShippingLine", [order], gql_shipping_line, args),
        "discountApplications": lambda args: connection(
            "DiscountApplication", [], lambda item: item, args
        ),
        "customer": None
        if order.customer is None
        else {
            "__typename": "Customer",
            "id": payloads.gid("Customer", order.customer.id),
            "legacyResourceId": str(order.customer.id),
            "firstName": order.customer.first_name,
            "lastName": order.customer.last_name,
            "email": order.customer.email,
            "phone": order.customer.phone,
        },
        "shippingAddress": _address(order.address),
        "billingAddress": _address(order.address),
        "lineItems": lambda args: connection(
            "LineItem", order.line_items, lambda line: gql_line_item(ctx, order, line), args
        ),
        "fulfillmentOrders": fulfillment_orders,
        "fulfillments": lambda args: [
            gql_fulfillment(ctx, shop.fulfillments[f])
            for f in order.fulfillment_ids[: args.get("first") or None]
        ],
    }


def gql_fulfillment_order(ctx: Ctx, order: Order, fulfillment_order: FulfillmentOrder) -> Resolved:
    shop = ctx.shop
    lines = {line.id: line for line in order.line_items}
    status = ctx.state.fulfillment_order_status(order).upper()
    location = shop.locations[fulfillment_order.location_id]

    def fo_line(pair: tuple[int, int]) -> Resolved:
        line_id, fo_line_id = pair
        line = lines[line_id]
        variant = shop.variants.get(line.variant_id) if line.variant_id else None
        return {
            "__typename": "FulfillmentOrderLineItem",
            "__implements": ("Node",),
            "id": payloads.gid("FulfillmentOrderLineItem", fo_line_id),
            "totalQuantity": 0 if order.cancelled_at else line.current_quantity,
            "remainingQuantity": 0 if order.cancelled_at else line.fulfillable_quantity,
            "sku": line.sku,
            "productTitle": line.title,
            "variantTitle": line.variant_title,
            "inventoryItemId": (
                payloads.gid("InventoryItem", line.inventory_item_id)
                if line.inventory_item_id
                else None
            ),
            "lineItem": lambda _: gql_line_item(ctx, order, line),
            "variant": (
                (lambda _, v=variant: gql_variant(ctx, v)) if variant is not None else None
            ),
        }

    open_ = status in ("OPEN", "IN_PROGRESS")
    return {
        "__typename": "FulfillmentOrder",
        "__implements": ("Node",),
        "id": payloads.gid("FulfillmentOrder", fulfillment_order.id),
        "status": status,
        "requestStatus": "UNSUBMITTED",
        "createdAt": utc(fulfillment_order.created_at),
        "updatedAt": utc(fulfillment_order.updated_at),
        "fulfillAt": utc(fulfillment_order.created_at),
        "supportedActions": [
            {"__typename": "FulfillmentOrderSupportedAction", "action": action}
            for action in (["CREATE_FULFILLMENT", "MOVE", "HOLD", "SPLIT"] if open_ else [])
        ],
        "assignedLocation": {
            "__typename": "FulfillmentOrderAssignedLocation",
            "name": location.name,
            "address1": location.address1,
            "city": location.city,
            "zip": location.zip,
            "countryCode": location.country_code,
            "location": lambda _: gql_location(ctx, location),
        },
        "order": lambda _: gql_order(ctx, order),
        "lineItems": lambda args: connection(
            "FulfillmentOrderLineItem", list(fulfillment_order.line_ids.items()), fo_line, args
        ),
    }


def gql_fulfillment(ctx: Ctx, fulfillment: Fulfillment) -> Resolved:
    shop = ctx.shop
    rest = payloads.fulfillment_json(shop, fulfillment)
    order = shop.orders[fulfillment.order_id]
    return {
        "__typename": "Fulfillment",
        "__implements": ("Node",),
        "id": payloads.gid("Fulfillment", fulfillment.id),
        "legacyResourceId": str(fulfillment.id),
        "name": fulfillment.name,
        "status": fulfillment.status.upper(),
        "displayStatus": None,
        "createdAt": utc(fulfillment.created_at),
        "updatedAt": utc(fulfillment.updated_at),
        "trackingInfo": lambda args: [
            {
                "__typename": "FulfillmentTrackingInfo",
                "company": fulfillment.tracking_company,
                "number": number,
                "url": (rest["tracking_urls"][i] if i < len(rest["tracking_urls"]) else None),
            }
            for i, number in enumerate(fulfillment.tracking_numbers[: args.get("first") or None])
        ],
        "fulfillmentLineItems": lambda args: connection(
            "FulfillmentLineItem",
            [line for line in order.line_items if line.id in fulfillment.quantities],
            lambda line: {
                "__typename": "FulfillmentLineItem",
                "__implements": ("Node",),
                # One per order line and fulfilment: derived ids stay stable across reads.
                "id": payloads.gid("FulfillmentLineItem", fulfillment.id + line.id),
                "quantity": fulfillment.quantities[line.id],
                "lineItem": lambda _: gql_line_item(ctx, order, line),
            },
            args,
        ),
        "location": lambda _: gql_location(ctx, shop.locations[fulfillment.location_id]),
        "order": lambda _: gql_order(ctx, order),
    }


def gql_bulk_operation(ctx: Ctx, operation: BulkOperation) -> Resolved:
    completed = operation.status == "COMPLETED"
    has_file = completed and operation.object_count > 0
    return {
        "__typename": "BulkOperation",
        "__implements": ("Node",),
        "id": payloads.gid("BulkOperation", operation.id),
        "status": operation.status,
        "type": operation.type,
        "errorCode": operation.error_code,
        "createdAt": utc(operation.created_at),
        "completedAt": utc(operation.completed_at),
        "objectCount": str(operation.object_count),
        "rootObjectCount": str(operation.root_object_count),
        "fileSize": str(operation.file_size) if operation.file_size is not None else None,
        "url": f"{ctx.base_url}/bulk/{operation.id}.jsonl" if has_file else None,
        "partialDataUrl": None,
        "query": operation.query,
    }


def _iana_zone(offset_minutes: int) -> str:
    """The shop's zone as an IANA name that keeps the fixed offset its REST times use (``Etc``
    zones count the other way round: ``Etc/GMT-1`` is UTC+1). An offset no ``Etc`` zone has
    gets a name no zone database knows, and clients fall back on ``timezoneOffsetMinutes``."""
    if offset_minutes == 0:
        return "UTC"
    hours, minutes = divmod(abs(offset_minutes), 60)
    if minutes or not (-12 * 60 <= offset_minutes <= 14 * 60):
        return f"Sandbox/UTC{_offset_text(offset_minutes)}"
    return f"Etc/GMT{'-' if offset_minutes > 0 else '+'}{hours}"


def _offset_text(offset_minutes: int) -> str:
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{'-' if offset_minutes < 0 else '+'}{hours:02d}{minutes:02d}"


def gql_shop(ctx: Ctx) -> Resolved:
    shop = ctx.shop
    return {
        "__typename": "Shop",
        "id": payloads.gid("Shop", shop.id),
        "name": shop.name,
        "myshopifyDomain": shop.domain,
        "currencyCode": shop.currency,
        "ianaTimezone": _iana_zone(shop.utc_offset_minutes),
        "timezoneOffsetMinutes": shop.utc_offset_minutes,
        "timezoneOffset": _offset_text(shop.utc_offset_minutes),
        "plan": {
            "__typename": "ShopPlan",
            "displayName": shop.plan.name.title(),
            "partnerDevelopment": False,
            "shopifyPlus": shop.plan.name == "plus",
        },
    }


# --- root connections --------------------------------------------------------------------------

_ORDER_SORTS: dict[str, OrderSort] = {
    "ID": "id",
    "CREATED_AT": "created_at",
    "PROCESSED_AT": "created_at",
    "UPDATED_AT": "updated_at",
}


def _keyset_arguments(arguments: dict[str, Any]) -> tuple[Any, Any]:
    try:
        after = arguments.get("after")
        before = arguments.get("before")
        return (
            key_from_json(decode_cursor(after)["k"]) if after else None,
            key_from_json(decode_cursor(before)["k"]) if before else None,
        )
    except (InvalidCursor, KeyError, TypeError):
        raise GraphQLError("Invalid cursor for the connection", code="BAD_REQUEST") from None


def orders_connection(ctx: Ctx, arguments: dict[str, Any]) -> Resolved:
    flt = order_filter_from_search(arguments.get("query"))
    sort = _ORDER_SORTS.get(str(arguments.get("sortKey") or "ID"), "id")
    if arguments.get("__bulk"):
        keys = ctx.shop.order_ids
        orders = [ctx.shop.orders[key] for key in keys if flt.matches(ctx.shop.orders[key])]
        return {"__typename": "OrderConnection", "__all": orders, "__node": "Order"}
    first, last = _page_size(arguments)
    after, before = _keyset_arguments(arguments)
    descending = bool(arguments.get("reverse"))
    if last is not None and before is None:  # the last n: walk from the other end
        descending = not descending
        orders, page = order_page(ctx.shop, flt, sort=sort, descending=descending, limit=last)
        orders.reverse()
        has_next, has_previous = False, page.has_next
    else:
        orders, page = order_page(
            ctx.shop,
            flt,
            sort=sort,
            descending=descending,
            limit=first or last or 0,
            after=after,
            before=before,
        )
        has_next, has_previous = page.has_next, page.has_previous
    edges = [(_key_cursor(order_sort_key(order, sort)), gql_order(ctx, order)) for order in orders]
    return _connection_dict("Order", edges, has_next=has_next, has_previous=has_previous)


def _key_cursor(key: int | tuple[int, int]) -> str:
    return encode_cursor({"k": list(key) if isinstance(key, tuple) else key})


def products_connection(ctx: Ctx, arguments: dict[str, Any]) -> Resolved:
    flt = product_filter_from_search(arguments.get("query"))
    if arguments.get("__bulk"):
        products = [
            ctx.shop.products[k] for k in ctx.shop.product_ids if flt.matches(ctx.shop.products[k])
        ]
        return {"__typename": "ProductConnection", "__all": products, "__node": "Product"}
    first, last = _page_size(arguments)
    after, before = _keyset_arguments(arguments)
    descending = bool(arguments.get("reverse"))
    if last is not None and before is None:
        products, page = product_page(ctx.shop, flt, limit=last, descending=not descending)
        products.reverse()
        has_next, has_previous = False, page.has_next
    else:
        products, page = product_page(
            ctx.shop,
            flt,
            limit=first or last or 0,
            descending=descending,
            after=after if isinstance(after, int) else None,
            before=before if isinstance(before, int) else None,
        )
        has_next, has_previous = page.has_next, page.has_previous
    edges = [(_key_cursor(product.id), gql_product(ctx, product)) for product in products]
    return _connection_dict("Product", edges, has_next=has_next, has_previous=has_previous)


def _all_variants(ctx: Ctx) -> list[Variant]:
    return [v for key in ctx.shop.product_ids for v in ctx.shop.products[key].variants]


def _bulk_or_connection(
    typename: str, items: Sequence[Any], node: Callable[[Any], Resolved], arguments: dict[str, Any]
) -> Resolved:
    if arguments.get("__bulk"):
        return {"__typename": f"{typename}Connection", "__all": list(items), "__node": typename}
    return connection(typename, items, node, arguments)


# --- node lookup -------------------------------------------------------------------------------


def node_by_gid(ctx: Ctx, value: Any) -> Resolved | None:
    shop = ctx.shop
    if not isinstance(value, str) or not value.startswith("gid://shopify/"):
        return None
    kind = value[len("gid://shopify/") :].split("/", 1)[0]
    if kind == "InventoryLevel":
        location_id = parse_gid(value, "InventoryLevel")
        _, _, query = value.partition("?inventory_item_id=")
        return _level_or_none(ctx, int(query) if query.isdigit() else None, location_id)
    id_ = parse_gid(value, kind)
    if id_ is None:
        return None
    if kind == "Order" and id_ in shop.orders:
        return gql_order(ctx, shop.orders[id_])
    if kind == "Product" and id_ in shop.products:
        return gql_product(ctx, shop.products[id_])
    if kind == "ProductVariant" and id_ in shop.variants:
        return gql_variant(ctx, shop.variants[id_])
    if kind == "InventoryItem" and id_ in shop.variants_by_item:
        return gql_inventory_item(ctx, shop.variants_by_item[id_])
    if kind == "Location" and id_ in shop.locations:
        return gql_location(ctx, shop.locations[id_])
    if kind == "FulfillmentOrder" and id_ in shop.fulfillment_orders:
        fulfillment_order = shop.fulfillment_orders[id_]
        order = shop.orders[fulfillment_order.order_id]
        ctx.state.fulfillment_order(shop, order)
        return gql_fulfillment_order(ctx, order, fulfillment_order)
    if kind == "Fulfillment" and id_ in shop.fulfillments:
        return gql_fulfillment(ctx, shop.fulfillments[id_])
    if kind == "BulkOperation" and id_ in shop.bulk_operations:
        return gql_bulk_operation(ctx, shop.bulk_operations[id_])
    return None


def query_root(ctx: Ctx) -> Resolved:
    shop = ctx.shop

    def current_bulk(args: dict[str, Any]) -> Resolved | None:
        kind = str(args.get("type") or "QUERY")
        operations = [op for op in shop.bulk_operations.values() if op.type == kind]
        return (
            gql_bulk_operation(ctx, max(operations, key=lambda op: op.id)) if operations else None
        )

    def typed(kind: str) -> Callable[[dict[str, Any]], Resolved | None]:
        return lambda args: _typed_node(ctx, args.get("id"), kind)

    return {
        "__typename": "QueryRoot",
        "shop": lambda _: gql_shop(ctx),
        "node": lambda args: node_by_gid(ctx, args.get("id")),
        "nodes": lambda args: [node_by_gid(ctx, value) for value in args.get("ids") or []],
        "order": typed("Order"),
        "product": typed("Product"),
        "productVariant": typed("ProductVariant"),
        "inventoryItem": typed("InventoryItem"),
        "inventoryLevel": typed("InventoryLevel"),
        "location": typed("Location"),
        "fulfillmentOrder": typed("FulfillmentOrder"),
        "fulfillment": typed("Fulfillment"),
        "bulkOperation": typed("BulkOperation"),
        "currentBulkOperation": current_bulk,
        "orders": lambda args: orders_connection(ctx, args),
        "products": lambda args: products_connection(ctx, args),
        "productVariants": lambda args: _bulk_or_connection(
            "ProductVariant", _all_variants(ctx), lambda v: gql_variant(ctx, v), args
        ),
        "inventoryItems": lambda args: _bulk_or_connection(
            "InventoryItem", _all_variants(ctx), lambda v: gql_inventory_item(ctx, v), args
        ),
        "locations": lambda args: _bulk_or_connection(
            "Location",
            [shop.locations[k] for k in sorted(shop.locations)],
            lambda location: gql_location(ctx, location),
            args,
        ),
        "webhookSubscriptions": lambda args: connection(
            "WebhookSubscription",
            graphql_webhooks.matching(shop, args),
            graphql_webhooks.node,
            args,
        ),
    }


def _typed_node(ctx: Ctx, value: Any, kind: str) -> Resolved | None:
    node = node_by_gid(ctx, value)
    return node if node is not None and node["__typename"] == kind else None


# --- mutations ---------------------------------------------------------------------------------


def _user_error(field: list[str], message: str, code: str | None = None) -> Resolved:
    error: Resolved = {"__typename": "UserError", "field": field, "message": message}
    error["code"] = code
    return error


def _quantity_changes(ctx: Ctx, arguments: dict[str, Any], *, absolute: bool) -> Resolved:
    """``inventorySetQuantities`` (absolute) and ``inventoryAdjustQuantities`` (deltas): checked
    whole, then applied whole, or nothing changes."""
    shop, state = ctx.shop, ctx.state
    typename = "InventorySetQuantitiesPayload" if absolute else "InventoryAdjustQuantitiesPayload"
    data = arguments.get("input")
    if not isinstance(data, dict):
        raise GraphQLError(
            "Variable $input of type ... was provided invalid value", code="INVALID_VARIABLE"
        )
    rows_name = "quantities" if absolute else "changes"
    rows = data.get(rows_name) or []
    errors: list[Resolved] = []
    name = data.get("name")
    if name not in ("available", "on_hand"):
        errors.append(
            _user_error(
                ["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
                "INVALID_NAME",
            )
        )
    if data.get("reason") not in INVENTORY_REASONS:
        errors.append(
            _user_error(["input", "reason"], "The specified reason is invalid.", "INVALID_REASON")
        )
    if not isinstance(rows, list) or len(rows) > MAX_PAGE:
        errors.append(
            _user_error(
                ["input", rows_name],
                f"At most {MAX_PAGE} items can be changed at once.",
                "INVALID_QUANTITY_INPUT",
            )
        )
        rows = []
    require_check = version_at_least(ctx.version, "2026-04") and not data.get(
        "ignoreCompareQuantity"
    )
    planned: list[tuple[InventoryLevel, int]] = []
    for index, row in enumerate(rows):
        path = ["input", rows_name, str(index)]
        item_id = parse_gid(row.get("inventoryItemId"), "InventoryItem")
        location_id = parse_gid(row.get("locationId"), "Location")
        if item_id is None or item_id not in shop.variants_by_item:
            errors.append(
                _user_error(
                    [*path, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                    "INVALID_INVENTORY_ITEM",
                )
            )
            continue
        if location_id is None or location_id not in shop.locations:
            errors.append(
                _user_error(
                    [*path, "locationId"],
                    "The specified location could not be found.",
                    "INVALID_LOCATION",
                )
            )
            continue
        level = shop.levels.get((item_id, location_id))
        if level is None:
            errors.append(
                _user_error(
                    [*path, "locationId"],
                    "The specified inventory item is not stocked at the location.",
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                )
            )
            continue
        amount = row.get("quantity" if absolute else "delta")
        if isinstance(amount, bool) or not isinstance(amount, int):
            errors.append(
                _user_error(
                    [*path, "quantity" if absolute else "delta"],
                    "The quantity must be an integer.",
                    "INVALID_QUANTITY_INPUT",
                )
            )
            continue
        current = level.available if name != "on_hand" else level.available + level.committed
        checks = [
            (key, code)
            for key, code in (
                ("changeFromQuantity", "CHANGE_FROM_QUANTITY_STALE"),
                ("compareQuantity", "COMPARE_QUANTITY_STALE"),
            )
            if key in row
        ]
        if not checks and require_check:
            errors.append(
                _user_error(
                    [*path, "changeFromQuantity"],
                    "changeFromQuantity is required (pass null to skip the check).",
                    "CHANGE_FROM_QUANTITY_REQUIRED",
                )
            )
            continue
        stale = False
        for key, code in checks:
            expected = row[key]
            if expected is not None and expected != current:
                errors.append(
                    _user_error(
                        [*path, key],
                        f"The specified {key} does not match the current quantity.",
                        code,
                    )
                )
                stale = True
        if stale:
            continue
        planned.append((level, amount - current if absolute else amount))
    if errors:
        return {"__typename": typename, "inventoryAdjustmentGroup": None, "userErrors": errors}
    now = state.now()
    changes: list[Resolved] = []
    changed: list[tuple[str, Any]] = []
    for level, delta in planned:
        level.available += delta
        if delta:
            level.updated_at = now
            changed.append(("inventory_levels/update", level))
        variant = shop.variants_by_item[level.inventory_item_id]
        location = shop.locations[level.location_id]
        for quantity_name, after in (
            ("available", level.available),
            ("on_hand", level.available + level.committed),
        ):
            changes.append(
                {
                    "__typename": "InventoryChange",
                    "name": quantity_name,
                    "delta": delta,
                    "quantityAfterChange": after,
                    "ledgerDocumentUri": None,
                    "item": lambda _, v=variant: gql_inventory_item(ctx, v),
                    "location": lambda _, loc=location: gql_location(ctx, loc),
                }
            )
    state.emit(shop, changed)
    group_id = state.ids.next("adjustment_group")
    return {
        "__typename": typename,
        "inventoryAdjustmentGroup": {
            "__typename": "InventoryAdjustmentGroup",
            "id": payloads.gid("InventoryAdjustmentGroup", group_id),
            "createdAt": utc(now),
            "reason": data.get("reason"),
            "referenceDocumentUri": data.get("referenceDocumentUri"),
            "changes": lambda args: [
                change
                for change in changes
                if not args.get("quantityNames") or change["name"] in args["quantityNames"]
            ],
        },
        "userErrors": [],
    }


def _fulfillment_create(ctx: Ctx, arguments: dict[str, Any]) -> Resolved:
    data = arguments.get("fulfillment") or {}
    groups = data.get("lineItemsByFulfillmentOrder") or []
    requested: list[tuple[int, list[tuple[int, int]] | None]] = []
    for group in groups:
        fo_id = parse_gid(group.get("fulfillmentOrderId"), "FulfillmentOrder")
        if fo_id is None:
            return _fulfillment_error("Invalid fulfillment order id.")
        lines = group.get("fulfillmentOrderLineItems")
        if lines is None:
            requested.append((fo_id, None))
            continue
        parsed: list[tuple[int, int]] = []
        for line in lines:
            line_id = parse_gid(line.get("id"), "FulfillmentOrderLineItem")
            if line_id is None or not isinstance(line.get("quantity"), int):
                return _fulfillment_error("Invalid fulfillment order line item.")
            parsed.append((line_id, line["quantity"]))
        requested.append((fo_id, parsed))
    tracking = data.get("trackingInfo") or {}
    numbers = tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else [])
    urls = tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else [])
    try:
        fulfillment = ctx.state.create_fulfillment(
            ctx.shop,
            requested,
            tracking_company=tracking.get("company"),
            tracking_numbers=[str(n) for n in numbers],
            tracking_urls=[str(u) for u in urls],
            notify_customer=bool(data.get("notifyCustomer", False)),
        )
    except SandboxError as exc:
        messages = exc.errors if isinstance(exc.errors, list) else [str(exc.errors)]
        return _fulfillment_error(*(str(message) for message in messages))
    return {
        "__typename": "FulfillmentCreatePayload",
        "fulfillment": gql_fulfillment(ctx, fulfillment),
        "userErrors": [],
    }


def _fulfillment_error(*messages: str) -> Resolved:
    return {
        "__typename": "FulfillmentCreatePayload",
        "fulfillment": None,
        "userErrors": [_user_error(["fulfillment"], message) for message in messages],
    }


def _tracking_update(ctx: Ctx, arguments: dict[str, Any]) -> Resolved:
    fulfillment_id = parse_gid(arguments.get("fulfillmentId"), "Fulfillment")
    fulfillment = ctx.shop.fulfillments.get(fulfillment_id or 0)
    typename = "FulfillmentTrackingInfoUpdatePayload"
    if fulfillment is None:
        return {
            "__typename": typename,
            "fulfillment": None,
            "userErrors": [_user_error(["fulfillmentId"], "Fulfillment does not exist.")],
        }
    tracking = arguments.get("trackingInfoInput") or {}
    numbers = tracking.get("numbers") or ([tracking["number"]] if tracking.get("number") else [])
    urls = tracking.get("urls") or ([tracking["url"]] if tracking.get("url") else [])
    try:
        ctx.state.update_tracking(
            ctx.shop,
            fulfillment,
            company=tracking.get("company") or fulfillment.tracking_company,
            numbers=[str(n) for n in numbers],
            urls=[str(u) for u in urls],
            notify_customer=bool(arguments.get("notifyCustomer", False)),
        )
    except SandboxError as exc:
        return {
            "__typename": typename,
            "fulfillment": None,
            "userErrors": [_user_error(["fulfillmentId"], str(exc.errors))],
        }
    return {
        "__typename": typename,
        "fulfillment": gql_fulfillment(ctx, fulfillment),
        "userErrors": [],
    }


IDEMPOTENT_MUTATIONS = frozenset({"inventorySetQuantities", "inventoryAdjustQuantities"})


def run_mutation(ctx: Ctx, selected: Field, variables: dict[str, Any]) -> Resolved:
    arguments = resolve_arguments(selected.arguments, variables)
    name = selected.name
    key: str | None = None
    for directive in selected.directives:
        if directive.name == "idempotent":
            value = resolve_value(directive.arguments.get("key"), variables)
            if not isinstance(value, str) or not value:
                raise GraphQLError(
                    "The idempotency key must be a non-empty string", code="BAD_REQUEST"
                )
            key = value
    if name in IDEMPOTENT_MUTATIONS:
        if key is None and version_at_least(ctx.version, IDEMPOTENCY_REQUIRED_FROM):
            raise GraphQLError(
                f"The @idempotent directive is required for {name} from "
                f"{IDEMPOTENCY_REQUIRED_FROM} on",
                code="BAD_REQUEST",
                path=[selected.key],
            )
        fingerprint = json.dumps([name, arguments], sort_keys=True, default=str)
        if key is not None and key in ctx.shop.idempotency:
            seen, result = ctx.shop.idempotency[key]
            if seen != fingerprint:
                raise GraphQLError(
                    "The idempotency key was already used with different arguments",
                    code="IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    path=[selected.key],
                )
            return result
        result = _quantity_changes(ctx, arguments, absolute=name == "inventorySetQuantities")
        if key is not None and not result["userErrors"]:
            ctx.shop.idempotency[key] = (fingerprint, result)
        return result
    if name == "bulkOperationRunQuery":
        return _bulk_run(ctx, arguments)
    if name == "bulkOperationCancel":
        return _bulk_cancel(ctx, arguments)
    if name == "fulfillmentCreate":
        return _fulfillment_create(ctx, arguments)
    if name == "fulfillmentTrackingInfoUpdate":
        return _tracking_update(ctx, arguments)
    if name in graphql_webhooks.MUTATIONS:
        return graphql_webhooks.mutate(ctx.state, ctx.shop, ctx.version, name, arguments)
    raise GraphQLError(
        f"Field '{name}' doesn't exist on type 'Mutation'",
        code="undefinedField",
        path=["mutation", selected.key],
        line=selected.line,
        column=selected.column,
        extensions={"typeName": "Mutation", "fieldName": name},
    )


# --- bulk operations ---------------------------------------------------------------------------

BULK_ROOTS = frozenset({"orders", "products", "productVariants", "inventoryItems", "locations"})


def _bulk_root(query: str) -> tuple[Document, Field]:
    document = parse(query)
    operation = document.operation(None)
    if operation.kind != "query":
        raise GraphQLError("Bulk queries must be queries")
    roots = [s for s in operation.selections if isinstance(s, Field)]
    if len(roots) != 1 or roots[0].name not in BULK_ROOTS:
        raise GraphQLError(
            "Bulk queries must contain exactly one top-level connection field "
            f"({', '.join(sorted(BULK_ROOTS))})"
        )
    return document, roots[0]


def _bulk_run(ctx: Ctx, arguments: dict[str, Any]) -> Resolved:
    typename = "BulkOperationRunQueryPayload"
    query = arguments.get("query")
    if not isinstance(query, str):
        return {
            "__typename": typename,
            "bulkOperation": None,
            "userErrors": [_user_error(["query"], "query is required", "INVALID")],
        }
    try:
        _bulk_root(query)
    except GraphQLError as exc:
        return {
            "__typename": typename,
            "bulkOperation": None,
            "userErrors": [_user_error(["query"], f"Invalid bulk query: {exc.message}", "INVALID")],
        }
    running = [
        op
        for op in ctx.shop.bulk_operations.values()
        if op.type == "QUERY" and op.status in ("CREATED", "RUNNING", "CANCELING")
    ]
    limit = MAX_CONCURRENT_BULK if version_at_least(ctx.version, "2026-01") else 1
    if len(running) >= limit:
        return {
            "__typename": typename,
            "bulkOperation": None,
            "userErrors": [
                _user_error(
                    [],
                    "A bulk query operation for this app and shop is already in progress: "
                    f"{payloads.gid('BulkOperation', running[0].id)}.",
                    "OPERATION_IN_PROGRESS",
                )
            ],
        }
    operation = BulkOperation(
        id=ctx.state.ids.next("bulk_operation"), query=query, created_at=ctx.state.now()
    )
    ctx.shop.bulk_operations[operation.id] = operation
    task = asyncio.get_running_loop().create_task(run_bulk_operation(ctx, operation))
    ctx.state.tasks.add(task)
    task.add_done_callback(ctx.state.tasks.discard)
    return {
        "__typename": typename,
        "bulkOperation": gql_bulk_operation(ctx, operation),
        "userErrors": [],
    }


def _bulk_cancel(ctx: Ctx, arguments: dict[str, Any]) -> Resolved:
    typename = "BulkOperationCancelPayload"
    operation_id = parse_gid(arguments.get("id"), "BulkOperation")
    operation = ctx.shop.bulk_operations.get(operation_id or 0)
    if operation is None:
        return {
            "__typename": typename,
            "bulkOperation": None,
            "userErrors": [_user_error(["id"], "Bulk operation does not exist")],
        }
    if operation.status not in ("CREATED", "RUNNING"):
        return {
            "__typename": typename,
            "bulkOperation": gql_bulk_operation(ctx, operation),
            "userErrors": [
                _user_error(
                    [], f"A bulk operation cannot be canceled when it is {operation.status.lower()}"
                )
            ],
        }
    operation.status = "CANCELING"
    return {
        "__typename": typename,
        "bulkOperation": gql_bulk_operation(ctx, operation),
        "userErrors": [],
    }


def _node_selections(connection_field: Field, document: Document) -> list[Any]:
    for child in selected_fields(connection_field.selections, document.fragments):
        if child.name == "nodes":
            return child.selections
        if child.name == "edges":
            for grandchild in selected_fields(child.selections, document.fragments):
                if grandchild.name == "node":
                    return grandchild.selections
    raise GraphQLError(f"The connection {connection_field.name} selects no nodes")


class _BulkWriter:
    def __init__(self, ctx: Ctx, document: Document, out: TextIO) -> None:
        self.ctx = ctx
        self.document = document
        self.out = out
        self.projector = Projector(document.fragments, {}, charge=False)
        self.objects = 0

    def node(self, obj: Resolved, selections: list[Any], parent_id: str | None) -> None:
        line: dict[str, Any] = {}
        nested: list[tuple[Field, Resolved]] = []
        for selected in selected_fields(selections, self.document.fragments):
            if selected.name == "__typename":
                line[selected.key] = obj["__typename"]
                continue
            if selected.name not in obj:
                raise GraphQLError(
                    f"Field '{selected.name}' doesn't exist on type '{obj['__typename']}'"
                )
            raw = obj[selected.name]
            if callable(raw):
                arguments = resolve_arguments(selected.arguments, {})
                value = raw({**arguments, "__bulk": True})
                if isinstance(value, dict) and "__all" in value:
                    nested.append((selected, value))
                    continue
                line[selected.key] = self.projector.value(value, selected, [])
            else:
                line[selected.key] = self.projector.value(raw, selected, [])
        if parent_id is not None:
            line["__parentId"] = parent_id
        self.out.write(json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n")
        self.objects += 1
        for selected, value in nested:
            child_selections = _node_selections(selected, self.document)
            for child in value["__all"]:
                self.node(child, child_selections, str(obj["id"]))


async def run_bulk_operation(ctx: Ctx, operation: BulkOperation) -> None:
    """Run a bulk query on the loop, a chunk of root objects at a time, into a JSONL file."""
    path = ctx.state.bulk_dir / f"{operation.id}.jsonl"
    try:
        await asyncio.sleep(0)
        if operation.status == "CANCELING":
            operation.status = "CANCELED"
            return
        operation.status = "RUNNING"
        if ctx.shop.forced_bulk_failures:
            operation.status = "FAILED"
            operation.error_code = ctx.shop.forced_bulk_failures.pop(0)
            return
        document, root = _bulk_root(operation.query)
        arguments = resolve_arguments(root.arguments, {})
        connection_value = query_root(ctx)[root.name]({**arguments, "__bulk": True})
        roots: list[Any] = connection_value["__all"]
        build = _BULK_BUILDERS[connection_value.get("__node", "")]
        selections = _node_selections(root, document)
        with path.open("w", encoding="utf-8") as out:
            writer = _BulkWriter(ctx, document, out)
            for start in range(0, len(roots), BULK_CHUNK):
                if operation.status == "CANCELING":
                    operation.status = "CANCELED"
                    operation.object_count = writer.objects
                    return
                for item in roots[start : start + BULK_CHUNK]:
                    writer.node(build(ctx, item), selections, None)
                    operation.root_object_count += 1
                operation.object_count = writer.objects
                await asyncio.sleep(0)
        operation.path = path
        operation.object_count = writer.objects
        operation.file_size = path.stat().st_size
        operation.status = "COMPLETED"
    except GraphQLError as exc:
        logger.info("sandbox bulk operation %s failed: %s", operation.id, exc.message)
        operation.status = "FAILED"
        operation.error_code = "INTERNAL_SERVER_ERROR"
    finally:
        if operation.status in ("COMPLETED", "FAILED", "CANCELED"):
            operation.completed_at = ctx.state.now()
            ctx.state.emit(
                ctx.shop,
                [
                    (
                        "bulk_operations/finish",
                        {
                            "admin_graphql_api_id": payloads.gid("BulkOperation", operation.id),
                            "completed_at": utc(operation.completed_at),
                            "created_at": utc(operation.created_at),
                            "error_code": operation.error_code.lower()
                            if operation.error_code
                            else None,
                            "status": operation.status.lower(),
                            "type": operation.type.lower(),
                        },
                    )
                ],
            )


_BULK_BUILDERS: dict[str, Callable[[Ctx, Any], Resolved]] = {
    "Order": gql_order,
    "Product": gql_product,
    "ProductVariant": gql_variant,
    "InventoryItem": gql_inventory_item,
    "Location": gql_location,
}


@router.get("/bulk/{operation_id:int}.jsonl", include_in_schema=False, response_model=None)
async def bulk_file(request: Request, operation_id: int) -> FileResponse | JSONResponse:
    state = sandbox_state(request)
    for shop in state.shops.values():
        operation = shop.bulk_operations.get(operation_id)
        if operation is not None and operation.path is not None:
            return FileResponse(operation.path, media_type="application/jsonl")
    return JSONResponse({"errors": "Not Found"}, status_code=404)


# --- endpoint ----------------------------------------------------------------------------------


def _cost(shop: Shop, now: float, requested: int, actual: int | None) -> dict[str, Any]:
    bucket = shop.graphql_bucket
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": bucket.size,
                "currentlyAvailable": int(bucket.available(now)),
                "restoreRate": bucket.leak_rate,
            },
        }
    }


def _errors_response(
    errors: list[GraphQLError], extensions: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"errors": [error.as_json() for error in errors]}
    if extensions:
        body["extensions"] = extensions
    return JSONResponse(body)


def _operation(body: Any) -> tuple[Document, Operation, dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise GraphQLError("No query string was present")
    document = parse(body["query"])
    name = body.get("operationName")
    operation = document.operation(name if isinstance(name, str) else None)
    variables = body.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise GraphQLError("Variables must be an object")
    return document, operation, coerce_variables(operation, variables)


@router.post("/shops/{shop_domain}/admin/api/{version}/graphql.json")
async def graphql_endpoint(request: Request) -> JSONResponse:
    context = admin(request)
    state, shop = context.state, context.shop
    base = str(request.base_url).rstrip("/")
    ctx = Ctx(state, shop, context.version, base)
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return JSONResponse({"errors": "JSON body is not valid"}, status_code=400)
    try:
        document, operation, variables = _operation(body)
    except GraphQLError as exc:
        return _errors_response([exc])
    mutation = operation.kind == "mutation"
    if operation.kind == "subscription":
        return _errors_response([GraphQLError("Subscriptions are not supported")])
    roots = [s for s in operation.selections if isinstance(s, Field)]
    requested = (
        MUTATION_COST * len(roots)
        if mutation
        else requested_cost(operation.selections, document.fragments, variables)
    )
    now = state.clock.now()
    if requested > MAX_QUERY_COST:
        return _errors_response(
            [
                GraphQLError(
                    f"Query cost is {requested}, which exceeds the single query max cost limit "
                    f"({MAX_QUERY_COST}).\n\nSee "
                    "https://shopify.dev/concepts/about-apis/rate-limits for more information "
                    "on how the cost of a query is calculated.\n\nTo query "
                    "larger amounts of data with fewer limits, bulk operations should be used "
                    "instead.",
                    code="MAX_COST_EXCEEDED",
                    extensions={"cost": requested, "maxCost": MAX_QUERY_COST},
                )
            ],
            _cost(shop, now, requested, None),
        )
    if shop.forced_graphql_throttles > 0:
        shop.forced_graphql_throttles -= 1
        context.throttled = True
    elif shop.graphql_bucket.take(now, requested) is not None:
        context.throttled = True
    if context.throttled:
        return _errors_response(
            [GraphQLError("Throttled", code="THROTTLED")], _cost(shop, now, requested, None)
        )
    projector = Projector(document.fragments, variables, charge=not mutation)
    data: dict[str, Any] = {}
    errors: list[GraphQLError] = []
    root = query_root(ctx)
    for selected in roots:
        shop.log.operations[selected.name] += 1
        try:
            if mutation:
                result = run_mutation(ctx, selected, variables)
                for user_error in result.get("userErrors") or []:
                    if user_error.get("code"):
                        shop.log.user_errors[str(user_error["code"])] += 1
                data[selected.key] = projector.value(result, selected, [selected.key])
            else:
                projected = projector.object(
                    {"__typename": "QueryRoot", selected.name: root.get(selected.name)}
                    if selected.name in root
                    else {"__typename": "QueryRoot"},
                    [selected],
                    [],
                )
                data[selected.key] = projected[selected.key]
        except GraphQLError as exc:
            errors.append(exc)
            data[selected.key] = None
    actual = MUTATION_COST * len(roots) if mutation else min(projector.cost, requested)
    shop.graphql_bucket.refund(requested - actual)
    response: dict[str, Any] = {"data": data}
    if errors:
        response["errors"] = [error.as_json() for error in errors]
    response["extensions"] = _cost(shop, now, requested, actual)
    return JSONResponse(response)


def bulk_path(state: SandboxState, operation_id: int) -> Path | None:
    for shop in state.shops.values():
        operation = shop.bulk_operations.get(operation_id)
        if operation is not None:
            return operation.path
    return None
