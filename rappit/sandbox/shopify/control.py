"""The control API under ``/_sandbox/``: what a test, a benchmark or a demo does to the
simulated shops *behind the client's back*, and what it reads to check the client's behaviour.

No authentication: the sandbox listens on loopback.

- ``POST /_sandbox/shops`` create a shop (domain, access_token, webhook_secret, plan,
  locations, currency, utc_offset_minutes, generate={products, orders, seed}); ``GET`` lists;
  ``GET|PATCH /_sandbox/shops/{domain}`` (plan, limits, token and secret rotation).
- ``POST /_sandbox/shops/{domain}/generate`` deterministic data (products, orders, seed).
- ``POST /_sandbox/shops/{domain}/orders`` create an order; ``PATCH .../orders/{id}`` edit
  (note, tags, email, line quantities, added lines); ``POST .../orders/{id}/cancel|pay|close``.
  Each moves ``updated_at`` and fires the webhooks Shopify fires.
- ``POST /_sandbox/shops/{domain}/inventory_levels`` set or move ``available``
  (fires ``inventory_levels/update``).
- ``POST /_sandbox/shops/{domain}/bulk_operations/fail`` make the next N bulk queries FAIL
  (``error_code``); ``POST .../bulk_operations/{id}/expire`` drop an operation's result file.
- ``POST /_sandbox/shops/{domain}/throttle`` force the next N REST 429s (or GraphQL THROTTLED);
  ``POST .../limits/reset`` empties the buckets.
- ``GET|DELETE /_sandbox/shops/{domain}/requests`` the request log (counts, 429s, recent
  requests, GraphQL calls by root field, mutations' ``userErrors`` codes);
  ``GET /_sandbox/requests`` counts for every shop.
- ``GET|DELETE /_sandbox/shops/{domain}/webhook_deliveries`` deliveries with their attempts.
- ``GET|POST /_sandbox/clock`` read, freeze, advance or unfreeze the sandbox clock.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rappit.sandbox.shopify import payloads
from rappit.sandbox.shopify.generator import generate
from rappit.sandbox.shopify.http import sandbox_state
from rappit.sandbox.shopify.queries import parse_time
from rappit.sandbox.shopify.state import PLANS, LineSpec, Plan, SandboxError, Shop
from rappit.sandbox.shopify.webhooks import delivery_json, triggered_at

router = APIRouter(prefix="/_sandbox", tags=["Sandbox control"])


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise SandboxError(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise SandboxError(400, "body must be a JSON object")
    return data


def _int(data: dict[str, Any], name: str, default: int | None = None) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SandboxError(422, {name: ["must be an integer"]})
    return value


def shop_info(request: Request, shop: Shop) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "domain": shop.domain,
        "id": shop.id,
        "access_token": shop.access_token,
        "webhook_secret": shop.webhook_secret,
        "api_base_url": f"{base}/shops/{shop.domain}",
        "plan": shop.plan.name,
        "limits": {
            "rest_bucket": shop.rest_bucket.size,
            "rest_leak": shop.rest_bucket.leak_rate,
            "graphql_bucket": shop.graphql_bucket.size,
            "graphql_restore": shop.graphql_bucket.leak_rate,
        },
        "currency": shop.currency,
        "location_ids": sorted(shop.locations),
        "counts": {
            "products": len(shop.products),
            "variants": len(shop.variants),
            "inventory_levels": len(shop.levels),
            "orders": len(shop.orders),
            "webhooks": len(shop.webhooks),
        },
    }


def _shop(request: Request, domain: str) -> Shop:
    return sandbox_state(request).shop(domain)


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/shops", status_code=201)
async def create_shop(request: Request) -> JSONResponse:
    state = sandbox_state(request)
    data = await _body(request)
    domain = data.get("domain")
    if not isinstance(domain, str) or not domain or "/" in domain:
        raise SandboxError(422, {"domain": ["is required, e.g. acme.myshopify.com"]})
    shop = state.create_shop(
        domain,
        access_token=data.get("access_token"),
        webhook_secret=data.get("webhook_secret"),
        plan=str(data.get("plan", "standard")),
        locations=_int(data, "locations", 2),
        currency=str(data.get("currency", "EUR")),
        utc_offset_minutes=_int(data, "utc_offset_minutes", 60),
    )
    spec = data.get("generate")
    if isinstance(spec, dict):
        _generate(state, shop, spec)
    return JSONResponse({"shop": shop_info(request, shop)}, status_code=201)


@router.get("/shops")
async def list_shops(request: Request) -> dict[str, Any]:
    state = sandbox_state(request)
    return {"shops": [shop_info(request, shop) for shop in state.shops.values()]}


@router.get("/shops/{domain}")
async def get_shop(request: Request, domain: str) -> dict[str, Any]:
    return {"shop": shop_info(request, _shop(request, domain))}


@router.patch("/shops/{domain}")
async def update_shop(request: Request, domain: str) -> dict[str, Any]:
    shop = _shop(request, domain)
    data = await _body(request)
    if "plan" in data:
        if data["plan"] not in PLANS:
            raise SandboxError(422, {"plan": [f"must be one of {', '.join(PLANS)}"]})
        shop.set_plan(PLANS[data["plan"]])
    limits = data.get("limits")
    if isinstance(limits, dict):
        current = shop.plan
        shop.set_plan(
            Plan(
                name=current.name,
                rest_bucket=float(limits.get("rest_bucket", current.rest_bucket)),
                rest_leak=float(limits.get("rest_leak", current.rest_leak)),
                graphql_bucket=float(limits.get("graphql_bucket", current.graphql_bucket)),
                graphql_restore=float(limits.get("graphql_restore", current.graphql_restore)),
            )
        )
    if isinstance(data.get("access_token"), str):
        shop.access_token = data["access_token"]
    if isinstance(data.get("webhook_secret"), str):
        shop.webhook_secret = data["webhook_secret"]
    return {"shop": shop_info(request, shop)}


def _generate(state: Any, shop: Shop, spec: dict[str, Any]) -> dict[str, Any]:
    until = spec.get("until")
    summary = generate(
        state,
        shop.domain,
        products=_int(spec, "products", 0),
        orders=_int(spec, "orders", 0),
        seed=_int(spec, "seed", 1),
        until=parse_time(until) if isinstance(until, str) else until,
        days=_int(spec, "days", 90),
    )
    return {
        "products": summary.products,
        "variants": summary.variants,
        "inventory_levels": summary.inventory_levels,
        "customers": summary.customers,
        "orders": summary.orders,
        "line_items": summary.line_items,
        "fulfillments": summary.fulfillments,
    }


@router.post("/shops/{domain}/generate")
async def generate_data(request: Request, domain: str) -> dict[str, Any]:
    state = sandbox_state(request)
    shop = state.shop(domain)
    data = await _body(request)
    try:
        return {"generated": _generate(state, shop, data)}
    except ValueError as exc:
        raise SandboxError(422, str(exc)) from None


def _lines(raw: Any, name: str) -> list[LineSpec]:
    if not isinstance(raw, list):
        raise SandboxError(422, {name: ["must be a list"]})
    lines = []
    for line in raw:
        if not isinstance(line, dict):
            raise SandboxError(422, {name: ["each line must be an object"]})
        price = line.get("price")
        lines.append(
            LineSpec(
                quantity=_int(line, "quantity", 1),
                variant_id=line.get("variant_id"),
                sku=line.get("sku"),
                title=line.get("title"),
                price_cents=round(float(price) * 100) if price is not None else None,
            )
        )
    return lines


@router.post("/shops/{domain}/orders", status_code=201)
async def create_order(request: Request, domain: str) -> JSONResponse:
    state = sandbox_state(request)
    shop = state.shop(domain)
    data = await _body(request)
    order = state.create_order(
        shop,
        _lines(data.get("line_items"), "line_items"),
        financial_status=str(data.get("financial_status", "paid")),
        customer=bool(data.get("customer", True)),
        email=data.get("email"),
        location_id=data.get("location_id"),
        note=data.get("note"),
        tags=str(data.get("tags", "")),
        test=bool(data.get("test", False)),
        adjust_inventory=bool(data.get("adjust_inventory", True)),
    )
    return JSONResponse({"order": payloads.order_json(shop, order)}, status_code=201)


@router.patch("/shops/{domain}/orders/{order_id:int}")
async def edit_order(request: Request, domain: str, order_id: int) -> dict[str, Any]:
    state = sandbox_state(request)
    shop = state.shop(domain)
    order = state.order(shop, order_id)
    data = await _body(request)
    quantities = {
        _int(line, "id"): _int(line, "quantity")
        for line in data.get("line_items") or []
        if isinstance(line, dict)
    }
    state.update_order(
        shop,
        order,
        note=data.get("note"),
        tags=data.get("tags"),
        email=data.get("email"),
        quantities=quantities,
        add_lines=_lines(data.get("add_line_items") or [], "add_line_items"),
    )
    return {"order": payloads.order_json(shop, order)}


@router.post("/shops/{domain}/orders/{order_id:int}/cancel")
async def cancel_order(request: Request, domain: str, order_id: int) -> dict[str, Any]:
    state = sandbox_state(request)
    shop = state.shop(domain)
    data = await _body(request)
    order = state.cancel_order(
        shop,
        state.order(shop, order_id),
        reason=str(data.get("reason", "customer")),
        restock=bool(data.get("restock", True)),
    )
    return {"order": payloads.order_json(shop, order)}


@router.post("/shops/{domain}/orders/{order_id:int}/pay")
async def pay_order(request: Request, domain: str, order_id: int) -> dict[str, Any]:
    state = sandbox_state(request)
    shop = state.shop(domain)
    order = state.pay_order(shop, state.order(shop, order_id))
    return {"order": payloads.order_json(shop, order)}


@router.post("/shops/{domain}/orders/{order_id:int}/close")
async def close_order(request: Request, domain: str, order_id: int) -> dict[str, Any]:
    state = sandbox_state(request)
    shop = state.shop(domain)
    order = state.close_order(shop, state.order(shop, order_id))
    return {"order": payloads.order_json(shop, order)}


@router.post("/shops/{domain}/inventory_levels")
async def change_inventory(request: Request, domain: str) -> dict[str, Any]:
    state = sandbox_state(request)
    shop = state.shop(domain)
    data = await _body(request)
    if ("available" in data) == ("delta" in data):
        raise SandboxError(422, {"base": ["give exactly one of available and delta"]})
    level = state.set_available(
        shop,
        _int(data, "inventory_item_id"),
        _int(data, "location_id"),
        available=_int(data, "available") if "available" in data else None,
        delta=_int(data, "delta") if "delta" in data else None,
        connect=bool(data.get("connect", False)),
    )
    return {"inventory_level": payloads.inventory_level_json(shop, level)}


@router.post("/shops/{domain}/throttle")
async def force_throttle(request: Request, domain: str) -> dict[str, Any]:
    shop = _shop(request, domain)
    data = await _body(request)
    count = _int(data, "count", 1)
    api = data.get("api", "rest")
    if api == "graphql":
        shop.forced_graphql_throttles += count
    elif api == "rest":
        shop.forced_throttles += count
        if "retry_after" in data:
            shop.forced_retry_after = float(data["retry_after"])
    else:
        raise SandboxError(422, {"api": ["must be rest or graphql"]})
    return {"rest": shop.forced_throttles, "graphql": shop.forced_graphql_throttles}


BULK_ERROR_CODES = frozenset({"ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"})


@router.post("/shops/{domain}/bulk_operations/fail")
async def fail_bulk_operations(request: Request, domain: str) -> dict[str, Any]:
    """The next N bulk queries end FAILED with ``error_code`` (a ``BulkOperationErrorCode``)."""
    shop = _shop(request, domain)
    data = await _body(request)
    code = str(data.get("error_code", "INTERNAL_SERVER_ERROR"))
    if code not in BULK_ERROR_CODES:
        raise SandboxError(422, {"error_code": [f"must be one of {sorted(BULK_ERROR_CODES)}"]})
    shop.forced_bulk_failures.extend([code] * _int(data, "count", 1))
    return {"forced_bulk_failures": list(shop.forced_bulk_failures)}


@router.post("/shops/{domain}/bulk_operations/{operation_id:int}/expire")
async def expire_bulk_operation(request: Request, domain: str, operation_id: int) -> dict[str, Any]:
    """The operation's result file is gone, as after Shopify's 7 days: its URL answers 404."""
    shop = _shop(request, domain)
    operation = shop.bulk_operations.get(operation_id)
    if operation is None:
        raise SandboxError(404, "Not Found")
    if operation.path is not None:
        operation.path.unlink(missing_ok=True)
        operation.path = None
    return {"id": operation_id, "expired": True}


@router.post("/shops/{domain}/limits/reset")
async def reset_limits(request: Request, domain: str) -> dict[str, Any]:
    shop = _shop(request, domain)
    shop.rest_bucket.reset()
    shop.graphql_bucket.reset()
    shop.forced_throttles = shop.forced_graphql_throttles = 0
    return {"status": "reset"}


def _log_json(shop: Shop, recent: int) -> dict[str, Any]:
    log = shop.log
    entries = list(log.recent)[-recent:] if recent else []
    return {
        "requests": log.requests,
        "rest": log.rest,
        "graphql": log.graphql,
        "throttled": log.throttled,
        "forced": log.forced,
        "operations": dict(log.operations),
        "user_errors": dict(log.user_errors),
        "recent": [
            {
                "at": triggered_at(entry.at),
                "method": entry.method,
                "path": entry.path,
                "query": entry.query,
                "status": entry.status,
                "api": entry.api,
                "throttled": entry.throttled,
            }
            for entry in entries
        ],
    }


@router.get("/shops/{domain}/requests")
async def request_log(request: Request, domain: str, recent: int = 100) -> dict[str, Any]:
    return _log_json(_shop(request, domain), recent)


@router.delete("/shops/{domain}/requests")
async def clear_request_log(request: Request, domain: str) -> dict[str, Any]:
    _shop(request, domain).log.reset()
    return {"status": "cleared"}


@router.get("/requests")
async def all_request_logs(request: Request) -> dict[str, Any]:
    state = sandbox_state(request)
    return {"shops": {domain: _log_json(shop, 0) for domain, shop in state.shops.items()}}


@router.get("/shops/{domain}/webhook_deliveries")
async def webhook_deliveries(
    request: Request, domain: str, topic: str | None = None, state: str | None = None
) -> dict[str, Any]:
    shop = _shop(request, domain)
    deliveries = [
        delivery_json(shop, delivery)
        for delivery in shop.deliveries
        if (topic is None or delivery.topic == topic) and (state is None or delivery.state == state)
    ]
    return {"deliveries": deliveries}


@router.delete("/shops/{domain}/webhook_deliveries")
async def clear_webhook_deliveries(request: Request, domain: str) -> dict[str, Any]:
    shop = _shop(request, domain)
    shop.deliveries = [d for d in shop.deliveries if d.state == "pending"]
    return {"status": "cleared"}


def _clock_json(request: Request) -> dict[str, Any]:
    clock = sandbox_state(request).clock
    now = clock.now()
    return {"now": now, "iso": triggered_at(now), "frozen": clock.frozen}


@router.get("/clock")
async def get_clock(request: Request) -> dict[str, Any]:
    return _clock_json(request)


@router.post("/clock")
async def set_clock(request: Request) -> dict[str, Any]:
    clock = sandbox_state(request).clock
    data = await _body(request)
    freeze = data.get("freeze")
    if freeze is True:
        clock.freeze()
    elif isinstance(freeze, int | float) and not isinstance(freeze, bool):
        clock.freeze(float(freeze))
    elif isinstance(freeze, str):
        clock.freeze(float(parse_time(freeze)))
    if "advance" in data:
        clock.advance(float(data["advance"]))
    if data.get("unfreeze"):
        clock.unfreeze()
    return _clock_json(request)
