"""The request edge of the Admin API: shop by path prefix, access token, API version, the REST
leaky bucket, forced 429s, response headers and the request log.

Every Admin API path is ``/shops/{shop_domain}/admin/api/{version}/...``; a Rappit channel's
``api_base_url`` is ``http://127.0.0.1:PORT/shops/{shop_domain}``.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from rappit.sandbox.shopify.limits import call_limit_header, retry_after_header
from rappit.sandbox.shopify.state import LoggedRequest, SandboxState, Shop

INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"

SUPPORTED_VERSIONS = ("2025-07", "2025-10", "2026-01", "2026-04", "2026-07", "2026-10")
"""Stable versions served; an older well-formed version falls forward to the oldest one
(reference/channel-apis.md §2.4), ``unstable`` is served as itself."""

_VERSION = re.compile(r"^\d{4}-(01|04|07|10)$")
_ADMIN_PATH = re.compile(r"^/shops/([^/]+)/admin/api/([^/]+)/(.*)$")


@dataclass(slots=True)
class AdminContext:
    state: SandboxState
    shop: Shop
    version: str
    api: str  # rest | graphql
    throttled: bool = False


def sandbox_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def admin(request: Request) -> AdminContext:
    context: AdminContext = request.state.admin
    return context


def errors(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": body}, status_code=status, headers=headers)


def resolve_version(requested: str) -> str | None:
    if requested == "unstable":
        return requested
    if not _VERSION.match(requested) or requested > SUPPORTED_VERSIONS[-1]:
        return None
    return max(requested, SUPPORTED_VERSIONS[0])


def version_at_least(version: str, minimum: str) -> bool:
    return version == "unstable" or version >= minimum


async def admin_middleware(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    match = _ADMIN_PATH.match(request.url.path)
    if match is None:
        return await call_next(request)
    state = sandbox_state(request)
    domain, requested_version, rest = match.groups()
    shop = state.shops.get(domain)
    if shop is None:
        return errors(404, "Not Found")
    token = request.headers.get("x-shopify-access-token", "")
    if not hmac.compare_digest(token.encode(), shop.access_token.encode()):
        return errors(401, INVALID_TOKEN)
    version = resolve_version(requested_version)
    if version is None:
        return errors(404, "Not Found")
    api = "graphql" if rest == "graphql.json" else "rest"
    context = AdminContext(state, shop, version, api)
    request.state.admin = context
    now = state.clock.now()
    headers = {"X-Shopify-API-Version": version, "X-Request-Id": str(uuid.uuid4())}
    forced = False
    response: Response
    if api == "rest" and shop.forced_throttles > 0:
        shop.forced_throttles -= 1
        forced = context.throttled = True
        response = _too_many(shop, now, shop.forced_retry_after)
    elif api == "rest" and (wait := shop.rest_bucket.take(now)) is not None:
        context.throttled = True
        response = _too_many(shop, now, wait)
    else:
        response = await call_next(request)
    if api == "rest":
        response.headers["X-Shopify-Shop-Api-Call-Limit"] = call_limit_header(shop.rest_bucket, now)
    for name, value in headers.items():
        response.headers[name] = value
    shop.log.record(
        LoggedRequest(
            at=now,
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            status=response.status_code,
            api="graphql" if api == "graphql" else "rest",
            throttled=context.throttled,
            forced=forced,
        )
    )
    return response


def _too_many(shop: Shop, now: float, wait: float) -> Response:
    rate = shop.rest_bucket.leak_rate
    calls = int(rate) if rate == int(rate) else rate
    return errors(
        429,
        f"Exceeded {calls} calls per second for api client. "
        "Reduce request rates to resume uninterrupted service.",
        headers={"Retry-After": retry_after_header(wait)},
    )
