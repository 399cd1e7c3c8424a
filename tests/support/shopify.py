"""Sending Shopify-signed webhooks to the app in tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from rappit.integrations.shopify.signatures import sign

WEBHOOK_SECRET = "shpss_test_webhook_secret_0123456789"


def shopify_headers(
    topic: str,
    body: bytes,
    *,
    shop: str,
    secret: str = WEBHOOK_SECRET,
    webhook_id: str | None = None,
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-03-01T11:00:00.877041743Z",
        "X-Shopify-Event-Id": str(uuid.uuid4()),
    }


async def post_webhook(
    client: httpx.AsyncClient,
    topic: str,
    payload: dict[str, Any] | bytes,
    *,
    shop: str,
    secret: str = WEBHOOK_SECRET,
    webhook_id: str | None = None,
    headers: dict[str, str | None] | None = None,
    path_topic: str | None = None,
) -> httpx.Response:
    """POST a signed delivery. ``headers`` overrides or (with None) removes headers."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = shopify_headers(topic, body, shop=shop, secret=secret, webhook_id=webhook_id)
    for name, value in (headers or {}).items():
        if value is None:
            sent.pop(name, None)
        else:
            sent[name] = value
    return await client.post(f"/webhooks/shopify/{path_topic or topic}", content=body, headers=sent)
