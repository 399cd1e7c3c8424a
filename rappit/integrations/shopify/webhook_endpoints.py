"""``POST /webhooks/shopify/{topic}``: verify, deduplicate, record, enqueue, answer.

Nothing here reads the order: the request path only proves the delivery is Shopify's, stores
it once and hands it to the queue, so Shopify gets its answer far inside its 5 s limit. Every
refusal happens before anything is written. Concurrent deliveries share one commit
(``rappit.webhooks.inbox``); each is answered only once its own row is committed.
"""

from __future__ import annotations

import logging
from datetime import datetime

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rappit.integrations.shopify import signatures
from rappit.integrations.shopify.topics import COMPLIANCE_TOPICS, TOPICS
from rappit.kit.errors import BadRequest, Forbidden, NotFound, Unauthorized, UnsupportedMediaType
from rappit.kit.http import read_body_limited
from rappit.models import ChannelType
from rappit.runtime import Runtime
from rappit.webhooks.inbox import InboxTarget
from rappit.webhooks.service import Delivery

logger = logging.getLogger(__name__)

router = APIRouter()
SOURCE = "shopify"


class InvalidSignature(Forbidden):
    code = "invalid_signature"


def _header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    return value.strip() if value and value.strip() else None


def _triggered_at(value: str | None) -> datetime | None:
    if not value:
        return None
    # Shopify sends nanoseconds ("...:27.877041743Z"); Python keeps microseconds.
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


async def receive(request: Request) -> JSONResponse:
    topic: str = request.path_params["topic"]
    runtime: Runtime = request.app.state.runtime
    # No database session for the request: the route is read from the process's cache and the
    # delivery is committed by the inbox, together with those arriving at the same time.
    if topic not in TOPICS:
        raise NotFound(f"unknown webhook topic '{topic}'")
    raw = await read_body_limited(request, runtime.settings.webhook_max_body_bytes)

    shop = _header(request, "x-shopify-shop-domain")
    if shop is None:
        raise BadRequest("missing X-Shopify-Shop-Domain header")
    route = await runtime.shop_routes.get(ChannelType.SHOPIFY, shop)
    if route is None:
        raise NotFound(f"no channel for shop '{shop}'")

    signature = request.headers.get("x-shopify-hmac-sha256")
    if not signatures.verify(raw, signature, route.webhook_secrets):
        # The secret may have been rotated since the route was kept: ask the database once.
        route = await runtime.shop_routes.get(ChannelType.SHOPIFY, shop, fresh=True)
        if route is None:
            raise NotFound(f"no channel for shop '{shop}'")
        if not signatures.verify(raw, signature, route.webhook_secrets):
            # Shopify requires 401 for the privacy topics; 403 elsewhere says "not yours".
            if topic in COMPLIANCE_TOPICS:
                raise Unauthorized("webhook signature does not match")
            raise InvalidSignature("webhook signature does not match")

    header_topic = _header(request, "x-shopify-topic")
    if header_topic != topic:
        raise BadRequest(
            f"X-Shopify-Topic '{header_topic}' does not match the address topic '{topic}'"
        )
    webhook_id = _header(request, "x-shopify-webhook-id")
    if webhook_id is None:
        raise BadRequest("missing X-Shopify-Webhook-Id header")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("webhook bodies must be application/json")
    # Parsed only to be sure it is a JSON object; it is stored as received. orjson: strict
    # RFC 8259 (no NaN, valid UTF-8 only, like the database's JSON type) and several times
    # faster than the standard library on these bodies, which matters on this path.
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("body is not JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest("body is not a JSON object")

    created = await runtime.webhook_inbox.record(
        InboxTarget(organization_id=route.organization_id, channel_id=route.channel_id),
        Delivery(
            source=SOURCE,
            topic=topic,
            external_event_id=webhook_id[:128],
            payload=raw.decode(),
            event_id=(_header(request, "x-shopify-event-id") or "")[:128] or None,
            triggered_at=_triggered_at(_header(request, "x-shopify-triggered-at")),
            api_version=(_header(request, "x-shopify-api-version") or "")[:32] or None,
        ),
        size=len(raw),
    )
    return JSONResponse({"status": "enqueued" if created else "duplicate"})


# A plain Starlette route rather than a FastAPI one: the delivery needs none of FastAPI's
# parameter parsing or validation (it reads the raw body and its headers itself), and on the
# busiest path that machinery cost about a third of the request's CPU (bench/ingest.py).
router.add_route("/webhooks/shopify/{topic:path}", receive, methods=["POST"])
