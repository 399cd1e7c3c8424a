"""The REST Admin API under ``/shops/{shop}/admin/api/{version}/`` (legacy on Shopify, still
served to custom apps): products, locations, inventory levels, orders, fulfilment orders,
fulfilments and webhook subscriptions, with Shopify's cursor pagination
(reference/channel-apis.md §3, §5, §6).

Lists page with ``limit`` (default 50, at most 250) and a ``Link`` header carrying
``page_info`` cursors; a request with ``page_info`` may add only ``limit`` and ``fields``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rappit.sandbox.shopify import payloads
from rappit.sandbox.shopify.http import admin
from rappit.sandbox.shopify.pagination import (
    InvalidCursor,
    Page,
    decode_cursor,
    encode_cursor,
    key_from_json,
    keyset_page,
)
from rappit.sandbox.shopify.queries import (
    FINANCIAL_STATUSES,
    FULFILLMENT_STATUSES,
    ORDER_STATUSES,
    OrderFilter,
    OrderSort,
    ProductFilter,
    count_orders,
    order_page,
    parse_time,
    product_page,
)
from rappit.sandbox.shopify.state import (
    SandboxError,
    SandboxState,
    Shop,
    WebhookSubscription,
)
from rappit.sandbox.shopify.webhooks import TOPICS

router = APIRouter(prefix="/shops/{shop_domain}/admin/api/{version}", tags=["Shopify REST"])

MAX_LIMIT = 250
MAX_IDS = 50
_PAGE_INFO_COMPANIONS = frozenset({"limit", "fields", "page_info"})


# --- helpers -----------------------------------------------------------------------------------


def _json(
    payload: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers=headers)


async def _body(request: Request, root: str) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise SandboxError(400, "JSON body is not valid") from None
    value = data.get(root) if isinstance(data, dict) else None
    if not isinstance(value, dict):
        raise SandboxError(400, {root: "Required parameter missing or invalid"})
    return value


def _limit(value: str | None) -> int:
    if value is None:
        return 50
    try:
        limit = int(value)
    except ValueError:
        raise SandboxError(400, {"limit": ["must be an integer"]}) from None
    if not 1 <= limit <= MAX_LIMIT:
        raise SandboxError(400, {"limit": [f"must be between 1 and {MAX_LIMIT}"]})
    return limit


def _fields(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _ids(name: str, value: str | None, *, maximum: int | None = None) -> list[int] | None:
    if value is None:
        return None
    try:
        ids = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise SandboxError(422, {name: ["must be a comma-separated list of numeric ids"]}) from None
    if maximum is not None and len(ids) > maximum:
        raise SandboxError(422, {name: [f"must contain at most {maximum} ids"]})
    return ids


def _time(filters: Mapping[str, str], name: str) -> int | None:
    value = filters.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise SandboxError(400, {name: ["is not a valid ISO 8601 date"]}) from None


class Listing:
    """One list request: its filters (from the query, or from the ``page_info`` cursor), limit,
    fields and the cursor's direction and key."""

    def __init__(self, request: Request, resource: str) -> None:
        query = request.query_params
        self.request = request
        self.resource = resource
        if "page" in query:
            raise SandboxError(
                400, {"page": ["page cannot be passed: use cursor-based pagination (page_info)"]}
            )
        self.limit = _limit(query.get("limit"))
        self.fields = _fields(query.get("fields"))
        self.after: Any = None
        self.before: Any = None
        page_info = query.get("page_info")
        if page_info is None:
            self.filters = {
                key: value for key, value in query.items() if key not in _PAGE_INFO_COMPANIONS
            }
            return
        extra = sorted(key for key in query if key not in _PAGE_INFO_COMPANIONS)
        if extra:
            raise SandboxError(
                400,
                {
                    "page_info": [
                        f"{', '.join(extra)} cannot be passed with page_info: only "
                        "limit and fields can (the filters are in the cursor)"
                    ]
                },
            )
        try:
            cursor = decode_cursor(page_info)
            if cursor.get("r") != resource or not isinstance(cursor.get("f"), dict):
                raise InvalidCursor(page_info)
            key = key_from_json(cursor.get("k"))
        except InvalidCursor:
            raise SandboxError(400, {"page_info": ["Invalid value."]}) from None
        self.filters = {str(name): str(value) for name, value in cursor["f"].items()}
        if cursor.get("d") == "p":
            self.before = key
        else:
            self.after = key

    def cursor(self, key: Any, direction: str) -> str:
        return encode_cursor(
            {
                "r": self.resource,
                "f": self.filters,
                "k": list(key) if isinstance(key, tuple) else key,
                "d": direction,
            }
        )

    def link(self, first: Any, last: Any, page: Page[Any]) -> dict[str, str]:
        links = []
        for rel, key, direction, wanted in (
            ("previous", first, "p", page.has_previous),
            ("next", last, "n", page.has_next),
        ):
            if not wanted or key is None:
                continue
            params: dict[str, str | int] = {"limit": self.limit}
            if self.fields:
                params["fields"] = ",".join(self.fields)
            params["page_info"] = self.cursor(key, direction)
            url = self.request.url.replace(query=urlencode(params))
            links.append(f'<{url}>; rel="{rel}"')
        return {"Link": ", ".join(links)} if links else {}


def _listed(
    listing: Listing,
    root: str,
    items: list[dict[str, Any]],
    page: Page[Any],
) -> JSONResponse:
    headers = listing.link(
        page.keys[0] if page.keys else None, page.keys[-1] if page.keys else None, page
    )
    rows = [payloads.select_fields(item, listing.fields) for item in items]
    return _json({root: rows}, headers=headers)


def _context(request: Request) -> tuple[SandboxState, Shop]:
    context = admin(request)
    return context.state, context.shop


# --- shop --------------------------------------------------------------------------------------


@router.get("/shop.json")
async def get_shop(request: Request) -> JSONResponse:
    _, shop = _context(request)
    return _json({"shop": payloads.shop_json(shop)})


# --- products ----------------------------------------------------------------------------------


def _product_filter(filters: Mapping[str, str]) -> ProductFilter:
    ids = _ids("ids", filters.get("ids"))
    since = filters.get("since_id")
    status = filters.get("status")
    handle = filters.get("handle")
    return ProductFilter(
        ids=frozenset(ids) if ids is not None else None,
        since_id=int(since) if since and since.isdigit() else None,
        created_min=_time(filters, "created_at_min"),
        created_max=_time(filters, "created_at_max"),
        updated_min=_time(filters, "updated_at_min"),
        updated_max=_time(filters, "updated_at_max"),
        status=frozenset(s.strip() for s in status.split(",")) if status else None,
        vendor=filters.get("vendor"),
        product_type=filters.get("product_type"),
        handle=frozenset(h.strip() for h in handle.split(",")) if handle else None,
    )


@router.get("/products.json")
async def list_products(request: Request) -> JSONResponse:
    _, shop = _context(request)
    listing = Listing(request, "products")
    flt = _product_filter(listing.filters)
    products, page = product_page(
        shop, flt, limit=listing.limit, after=listing.after, before=listing.before
    )
    items = [payloads.product_json(shop, product) for product in products]
    return _listed(listing, "products", items, page)


@router.get("/products/count.json")
async def count_products(request: Request) -> JSONResponse:
    _, shop = _context(request)
    flt = _product_filter(request.query_params)
    return _json({"count": sum(1 for p in shop.products.values() if flt.matches(p))})


@router.get("/products/{product_id:int}.json")
async def get_product(request: Request, product_id: int) -> JSONResponse:
    _, shop = _context(request)
    product = shop.products.get(product_id)
    if product is None:
        raise SandboxError(404, "Not Found")
    fields = _fields(request.query_params.get("fields"))
    return _json({"product": payloads.select_fields(payloads.product_json(shop, product), fields)})


@router.get("/products/{product_id:int}/variants.json")
async def list_product_variants(request: Request, product_id: int) -> JSONResponse:
    _, shop = _context(request)
    product = shop.products.get(product_id)
    if product is None:
        raise SandboxError(404, "Not Found")
    return _json({"variants": [payloads.variant_json(shop, v) for v in product.variants]})


@router.get("/variants/{variant_id:int}.json")
async def get_variant(request: Request, variant_id: int) -> JSONResponse:
    _, shop = _context(request)
    variant = shop.variants.get(variant_id)
    if variant is None:
        raise SandboxError(404, "Not Found")
    return _json({"variant": payloads.variant_json(shop, variant)})


def _inventory_item_json(shop: Shop, item_id: int) -> dict[str, Any]:
    variant = shop.variants_by_item[item_id]
    offset = shop.utc_offset_minutes
    return {
        "id": item_id,
        "sku": variant.sku,
        "created_at": payloads.iso(variant.created_at, offset),
        "updated_at": payloads.iso(variant.updated_at, offset),
        "requires_shipping": variant.requires_shipping,
        "cost": None,
        "country_code_of_origin": None,
        "province_code_of_origin": None,
        "harmonized_system_code": None,
        "tracked": variant.tracked,
        "country_harmonized_system_codes": [],
        "admin_graphql_api_id": payloads.gid("InventoryItem", item_id),
    }


@router.get("/inventory_items.json")
async def list_inventory_items(request: Request) -> JSONResponse:
    _, shop = _context(request)
    ids = _ids("ids", request.query_params.get("ids"), maximum=100)
    if not ids:
        raise SandboxError(422, {"ids": ["is required"]})
    items = [_inventory_item_json(shop, i) for i in ids if i in shop.variants_by_item]
    return _json({"inventory_items": items})


@router.get("/inventory_items/{item_id:int}.json")
async def get_inventory_item(request: Request, item_id: int) -> JSONResponse:
    _, shop = _context(request)
    if item_id not in shop.variants_by_item:
        raise SandboxError(404, "Not Found")
    return _json({"inventory_item": _inventory_item_json(shop, item_id)})


# --- locations and inventory levels ------------------------------------------------------------


@router.get("/locations.json")
async def list_locations(request: Request) -> JSONResponse:
    _, shop = _context(request)
    locations = [payloads.location_json(shop, shop.locations[i]) for i in sorted(shop.locations)]
    return _json({"locations": locations})


@router.get("/locations/count.json")
async def count_locations(request: Request) -> JSONResponse:
    _, shop = _context(request)
    return _json({"count": len(shop.locations)})


@router.get("/locations/{location_id:int}.json")
async def get_location(request: Request, location_id: int) -> JSONResponse:
    _, shop = _context(request)
    location = shop.locations.get(location_id)
    if location is None:
        raise SandboxError(404, "Not Found")
    return _json({"location": payloads.location_json(shop, location)})


def _level_page(
    shop: Shop,
    listing: Listing,
    item_ids: list[int] | None,
    location_ids: list[int] | None,
) -> JSONResponse:
    updated_min = _time(listing.filters, "updated_at_min")
    locations = set(location_ids) if location_ids is not None else None
    keys: list[tuple[int, int]]
    if item_ids is not None:
        keys = sorted(
            (item, location)
            for item in set(item_ids)
            for location in shop.levels_by_item.get(item, ())
            if locations is None or location in locations
        )
    else:
        keys = sorted(key for key in shop.levels if locations is None or key[1] in locations)

    def match(key: tuple[int, int]) -> bool:
        return updated_min is None or shop.levels[key].updated_at >= updated_min

    page = keyset_page(
        keys, limit=listing.limit, after=listing.after, before=listing.before, match=match
    )
    items = [payloads.inventory_level_json(shop, shop.levels[key]) for key in page.keys]
    return _listed(listing, "inventory_levels", items, page)


@router.get("/inventory_levels.json")
async def list_inventory_levels(request: Request) -> JSONResponse:
    _, shop = _context(request)
    listing = Listing(request, "inventory_levels")
    item_ids = _ids(
        "inventory_item_ids", listing.filters.get("inventory_item_ids"), maximum=MAX_IDS
    )
    location_ids = _ids("location_ids", listing.filters.get("location_ids"), maximum=MAX_IDS)
    if item_ids is None and location_ids is None:
        raise SandboxError(
            422,
            {"base": ["inventory_item_ids, location_ids: one or both are required"]},
        )
    return _level_page(shop, listing, item_ids, location_ids)


@router.get("/locations/{location_id:int}/inventory_levels.json")
async def list_location_levels(request: Request, location_id: int) -> JSONResponse:
    _, shop = _context(request)
    if location_id not in shop.locations:
        raise SandboxError(404, "Not Found")
    listing = Listing(request, f"location_levels:{location_id}")
    return _level_page(shop, listing, None, [location_id])


def _int_field(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SandboxError(422, {name: ["is required"]})
    try:
        return int(value)
    except ValueError:
        raise SandboxError(422, {name: ["must be an integer"]}) from None


async def _raw_body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise SandboxError(400, "JSON body is not valid") from None
    if not isinstance(data, dict):
        raise SandboxError(400, "JSON body must be an object")
    return data


@router.post("/inventory_levels/set.json")
async def set_inventory_level(request: Request) -> JSONResponse:
    state, shop = _context(request)
    body = await _raw_body(request)
    level = state.set_available(
        shop,
        _int_field(body, "inventory_item_id"),
        _int_field(body, "location_id"),
        available=_int_field(body, "available"),
        connect=True,
    )
    return _json({"inventory_level": payloads.inventory_level_json(shop, level)})


@router.post("/inventory_levels/adjust.json")
async def adjust_inventory_level(request: Request) -> JSONResponse:
    state, shop = _context(request)
    body = await _raw_body(request)
    level = state.set_available(
        shop,
        _int_field(body, "inventory_item_id"),
        _int_field(body, "location_id"),
        delta=_int_field(body, "available_adjustment"),
    )
    return _json({"inventory_level": payloads.inventory_level_json(shop, level)})


@router.post("/inventory_levels/connect.json", status_code=201)
async def connect_inventory_level(request: Request) -> JSONResponse:
    state, shop = _context(request)
    body = await _raw_body(request)
    item_id = _int_field(body, "inventory_item_id")
    location_id = _int_field(body, "location_id")
    existing = shop.levels.get((item_id, location_id))
    level = existing or state.set_available(shop, item_id, location_id, delta=0, connect=True)
    return _json(
        {"inventory_level": payloads.inventory_level_json(shop, level)},
        status=200 if existing else 201,
    )


# --- orders ------------------------------------------------------------------------------------


def _order_filter(
    filters: Mapping[str, str], *, count: bool = False
) -> tuple[OrderFilter, OrderSort, bool]:
    status = filters.get("status", "open")
    if status not in ORDER_STATUSES:
        raise SandboxError(400, {"status": ["is not included in the list"]})
    financial = filters.get("financial_status")
    if financial is not None and financial not in FINANCIAL_STATUSES:
        raise SandboxError(400, {"financial_status": ["is not included in the list"]})
    fulfillment = filters.get("fulfillment_status")
    if fulfillment is not None and fulfillment not in FULFILLMENT_STATUSES:
        raise SandboxError(400, {"fulfillment_status": ["is not included in the list"]})
    ids = _ids("ids", filters.get("ids"))
    since = filters.get("since_id")
    if since is not None and not since.isdigit():
        raise SandboxError(400, {"since_id": ["must be an integer"]})
    flt = OrderFilter(
        status=status,
        ids=frozenset(ids) if ids is not None else None,
        since_id=int(since) if since is not None else None,
        created_min=_time(filters, "created_at_min"),
        created_max=_time(filters, "created_at_max"),
        updated_min=_time(filters, "updated_at_min"),
        updated_max=_time(filters, "updated_at_max"),
        financial_status=financial,
        fulfillment_status=fulfillment,
    )
    for name in ("processed_at_min", "processed_at_max"):  # processed_at == created_at here
        moment = _time(filters, name)
        if moment is not None:
            setattr(flt, "created_min" if name.endswith("min") else "created_max", moment)
    sort: OrderSort = "created_at"
    descending = True
    if since is not None:  # since_id lists by id, ascending
        sort, descending = "id", False
    order = filters.get("order", "").split()
    if order:
        field = order[0].lower()
        direction = order[1].lower() if len(order) > 1 else "asc"
        mapped = {
            "id": "id",
            "created_at": "created_at",
            "processed_at": "created_at",
            "updated_at": "updated_at",
        }.get(field)
        if mapped is not None and direction in ("asc", "desc"):
            sort = (
                "id"
                if mapped == "id"
                else ("updated_at" if mapped == "updated_at" else "created_at")
            )
            descending = direction == "desc"
    return flt, sort, descending


@router.get("/orders.json")
async def list_orders(request: Request) -> JSONResponse:
    _, shop = _context(request)
    listing = Listing(request, "orders")
    flt, sort, descending = _order_filter(listing.filters)
    orders, page = order_page(
        shop,
        flt,
        sort=sort,
        descending=descending,
        limit=listing.limit,
        after=listing.after,
        before=listing.before,
    )
    items = [payloads.order_json(shop, order) for order in orders]
    return _listed(listing, "orders", items, page)


@router.get("/orders/count.json")
async def count_orders_endpoint(request: Request) -> JSONResponse:
    _, shop = _context(request)
    flt, _, _ = _order_filter(request.query_params)
    return _json({"count": count_orders(shop, flt)})


@router.get("/orders/{order_id:int}.json")
async def get_order(request: Request, order_id: int) -> JSONResponse:
    state, shop = _context(request)
    order = state.order(shop, order_id)
    fields = _fields(request.query_params.get("fields"))
    return _json({"order": payloads.select_fields(payloads.order_json(shop, order), fields)})


@router.put("/orders/{order_id:int}.json")
async def update_order(request: Request, order_id: int) -> JSONResponse:
    state, shop = _context(request)
    order = state.order(shop, order_id)
    body = await _body(request, "order")
    state.update_order(
        shop,
        order,
        note=body.get("note") if isinstance(body.get("note"), str) else None,
        tags=body.get("tags") if isinstance(body.get("tags"), str) else None,
        email=body.get("email") if isinstance(body.get("email"), str) else None,
    )
    return _json({"order": payloads.order_json(shop, order)})


@router.post("/orders/{order_id:int}/cancel.json")
async def cancel_order(request: Request, order_id: int) -> JSONResponse:
    state, shop = _context(request)
    order = state.order(shop, order_id)
    body = await _raw_body(request)
    state.cancel_order(
        shop,
        order,
        reason=str(body.get("reason") or "other"),
        restock=bool(body.get("restock", False)),
    )
    return _json({"order": payloads.order_json(shop, order)})


@router.get("/orders/{order_id:int}/fulfillment_orders.json")
async def list_fulfillment_orders(request: Request, order_id: int) -> JSONResponse:
    state, shop = _context(request)
    order = state.order(shop, order_id)
    fulfillment_order = state.fulfillment_order(shop, order)
    items = (
        []
        if fulfillment_order is None
        else [payloads.fulfillment_order_json(state, shop, order, fulfillment_order)]
    )
    return _json({"fulfillment_orders": items})


@router.get("/fulfillment_orders/{fulfillment_order_id:int}.json")
async def get_fulfillment_order(request: Request, fulfillment_order_id: int) -> JSONResponse:
    state, shop = _context(request)
    fulfillment_order = shop.fulfillment_orders.get(fulfillment_order_id)
    if fulfillment_order is None:
        raise SandboxError(404, "Not Found")
    order = shop.orders[fulfillment_order.order_id]
    state.fulfillment_order(shop, order)
    return _json(
        {
            "fulfillment_order": payloads.fulfillment_order_json(
                state, shop, order, fulfillment_order
            )
        }
    )


@router.get("/orders/{order_id:int}/fulfillments.json")
async def list_order_fulfillments(request: Request, order_id: int) -> JSONResponse:
    state, shop = _context(request)
    order = state.order(shop, order_id)
    items = [payloads.fulfillment_json(shop, shop.fulfillments[f]) for f in order.fulfillment_ids]
    return _json({"fulfillments": items})


@router.post("/orders/{order_id:int}/fulfillments.json")
async def removed_order_fulfillments(request: Request, order_id: int) -> JSONResponse:
    """Removed from 2022-07 on (reference/channel-apis.md §5.4): every version answers 404."""
    raise SandboxError(404, "Not Found")


@router.get("/orders/{order_id:int}/fulfillments/{fulfillment_id:int}.json")
async def get_order_fulfillment(
    request: Request, order_id: int, fulfillment_id: int
) -> JSONResponse:
    state, shop = _context(request)
    order = state.order(shop, order_id)
    if fulfillment_id not in order.fulfillment_ids:
        raise SandboxError(404, "Not Found")
    return _json(
        {"fulfillment": payloads.fulfillment_json(shop, shop.fulfillments[fulfillment_id])}
    )


# --- fulfillments ------------------------------------------------------------------------------


def _tracking(info: Any) -> tuple[str | None, list[str], list[str]]:
    if not isinstance(info, dict):
        return None, [], []
    numbers = info.get("numbers") or ([info["number"]] if info.get("number") else [])
    urls = info.get("urls") or ([info["url"]] if info.get("url") else [])
    company = info.get("company")
    return (
        str(company) if company else None,
        [str(number) for number in numbers],
        [str(url) for url in urls],
    )


@router.post("/fulfillments.json", status_code=201)
async def create_fulfillment(request: Request) -> JSONResponse:
    state, shop = _context(request)
    body = await _body(request, "fulfillment")
    groups = body.get("line_items_by_fulfillment_order")
    if not isinstance(groups, list) or not groups:
        raise SandboxError(
            400,
            {
                "fulfillment": "Required parameter missing or invalid: "
                "line_items_by_fulfillment_order"
            },
        )
    requested: list[tuple[int, list[tuple[int, int]] | None]] = []
    for group in groups:
        if not isinstance(group, dict):
            raise SandboxError(400, {"fulfillment": "Required parameter missing or invalid"})
        fulfillment_order_id = _int_field(group, "fulfillment_order_id")
        lines = group.get("fulfillment_order_line_items")
        if lines is None:
            requested.append((fulfillment_order_id, None))
            continue
        if not isinstance(lines, list):
            raise SandboxError(400, {"fulfillment": "Required parameter missing or invalid"})
        requested.append(
            (
                fulfillment_order_id,
                [
                    (_int_field(line, "id"), _int_field(line, "quantity"))
                    for line in lines
                    if isinstance(line, dict)
                ],
            )
        )
    company, numbers, urls = _tracking(body.get("tracking_info"))
    fulfillment = state.create_fulfillment(
        shop,
        requested,
        tracking_company=company,
        tracking_numbers=numbers,
        tracking_urls=urls,
        notify_customer=bool(body.get("notify_customer", False)),
    )
    return _json({"fulfillment": payloads.fulfillment_json(shop, fulfillment)}, status=201)


@router.post("/fulfillments/{fulfillment_id:int}/update_tracking.json")
async def update_tracking(request: Request, fulfillment_id: int) -> JSONResponse:
    state, shop = _context(request)
    fulfillment = shop.fulfillments.get(fulfillment_id)
    if fulfillment is None:
        raise SandboxError(404, "Not Found")
    body = await _body(request, "fulfillment")
    company, numbers, urls = _tracking(body.get("tracking_info"))
    state.update_tracking(
        shop,
        fulfillment,
        company=company or fulfillment.tracking_company,
        numbers=numbers,
        urls=urls,
        notify_customer=bool(body.get("notify_customer", False)),
    )
    return _json({"fulfillment": payloads.fulfillment_json(shop, fulfillment)})


@router.post("/fulfillments/{fulfillment_id:int}/cancel.json")
async def cancel_fulfillment(request: Request, fulfillment_id: int) -> JSONResponse:
    state, shop = _context(request)
    fulfillment = shop.fulfillments.get(fulfillment_id)
    if fulfillment is None:
        raise SandboxError(404, "Not Found")
    state.cancel_fulfillment(shop, fulfillment)
    return _json({"fulfillment": payloads.fulfillment_json(shop, fulfillment)})


# --- webhooks ----------------------------------------------------------------------------------


def _valid_address(address: Any) -> bool:
    if not isinstance(address, str) or not address:
        return False
    parts = urlsplit(address)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _webhook_fields(
    shop: Shop, body: Mapping[str, Any], hook: WebhookSubscription | None
) -> tuple[str, str, list[str]]:
    topic = body.get("topic", hook.topic if hook else None)
    address = body.get("address", hook.address if hook else None)
    fields = body.get("fields", hook.fields if hook else [])
    if not isinstance(topic, str) or topic not in TOPICS:
        raise SandboxError(
            422,
            {
                "topic": [
                    f"Invalid topic specified: {topic}. Topics allowed: {', '.join(sorted(TOPICS))}"
                ]
            },
        )
    if not address:
        raise SandboxError(422, {"address": ["can't be blank"]})
    if not _valid_address(address):
        raise SandboxError(422, {"address": ["is invalid"]})
    if body.get("format", "json") != "json":
        raise SandboxError(422, {"format": ["is not included in the list"]})
    for other in shop.webhooks.values():
        if other is not hook and other.topic == topic and other.address == address:
            raise SandboxError(422, {"address": ["for this topic has already been taken"]})
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise SandboxError(422, {"fields": ["must be a list of field names"]})
    return topic, str(address), list(fields)


def _webhook_filter(filters: Mapping[str, str]) -> Callable[[WebhookSubscription], bool]:
    topic = filters.get("topic")
    address = filters.get("address")
    return lambda hook: (
        (topic is None or hook.topic == topic) and (address is None or hook.address == address)
    )


@router.get("/webhooks.json")
async def list_webhooks(request: Request) -> JSONResponse:
    _, shop = _context(request)
    listing = Listing(request, "webhooks")
    keep = _webhook_filter(listing.filters)
    page = keyset_page(
        sorted(shop.webhooks),
        limit=listing.limit,
        after=listing.after,
        before=listing.before,
        match=lambda key: keep(shop.webhooks[key]),
    )
    items = [payloads.webhook_json(shop, shop.webhooks[key]) for key in page.keys]
    return _listed(listing, "webhooks", items, page)


@router.get("/webhooks/count.json")
async def count_webhooks(request: Request) -> JSONResponse:
    _, shop = _context(request)
    keep = _webhook_filter(request.query_params)
    return _json({"count": sum(1 for hook in shop.webhooks.values() if keep(hook))})


@router.post("/webhooks.json", status_code=201)
async def create_webhook(request: Request) -> JSONResponse:
    context = admin(request)
    state, shop = context.state, context.shop
    body = await _body(request, "webhook")
    topic, address, fields = _webhook_fields(shop, body, None)
    now = state.now()
    hook = WebhookSubscription(
        id=state.ids.next("webhook"),
        topic=topic,
        address=address,
        format="json",
        api_version=context.version,
        created_at=now,
        updated_at=now,
        fields=fields,
    )
    shop.webhooks[hook.id] = hook
    return _json({"webhook": payloads.webhook_json(shop, hook)}, status=201)


def _hook(shop: Shop, webhook_id: int) -> WebhookSubscription:
    hook = shop.webhooks.get(webhook_id)
    if hook is None:
        raise SandboxError(404, "Not Found")
    return hook


@router.get("/webhooks/{webhook_id:int}.json")
async def get_webhook(request: Request, webhook_id: int) -> JSONResponse:
    _, shop = _context(request)
    return _json({"webhook": payloads.webhook_json(shop, _hook(shop, webhook_id))})


@router.put("/webhooks/{webhook_id:int}.json")
async def update_webhook(request: Request, webhook_id: int) -> JSONResponse:
    state, shop = _context(request)
    hook = _hook(shop, webhook_id)
    body = await _body(request, "webhook")
    hook.topic, hook.address, hook.fields = _webhook_fields(shop, body, hook)
    hook.updated_at = state.now()
    return _json({"webhook": payloads.webhook_json(shop, hook)})


@router.delete("/webhooks/{webhook_id:int}.json")
async def delete_webhook(request: Request, webhook_id: int) -> JSONResponse:
    _, shop = _context(request)
    _hook(shop, webhook_id)
    del shop.webhooks[webhook_id]
    return _json({})
