"""The request path of Shopify webhooks: what is accepted, what is refused, and that a refusal
writes nothing."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import func, select

from rappit.models import WebhookEvent
from rappit.queues.names import QueueName
from rappit.runtime import Runtime
from tests.conftest import TestDatabase
from tests.integrations.shopify.conftest import ShopifyShop
from tests.integrations.shopify.payloads import order
from tests.support.shopify import post_webhook


async def _events(database: TestDatabase) -> list[WebhookEvent]:
    async with database.sessionmaker() as session:
        return list((await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))).all())


async def test_a_valid_delivery_is_recorded_and_enqueued(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    queue_runtime: Runtime,
) -> None:
    response = await post_webhook(
        webhook_client, "orders/create", order(), shop=shopify.domain, webhook_id="wh-1"
    )

    assert response.status_code == 200
    assert response.json() == {"status": "enqueued"}
    [event] = await _events(database)
    assert (event.source, event.topic, event.external_event_id, event.status) == (
        "shopify",
        "orders/create",
        "wh-1",
        "ENQUEUED",
    )
    assert (event.api_version, event.attempts) == ("2026-10", 0)
    assert event.triggered_at is not None
    assert event.triggered_at.isoformat() == "2026-03-01T11:00:00.877041+00:00"
    assert event.payload == order()
    assert queue_runtime.queue is not None
    assert (
        await queue_runtime.queue.job_state(
            QueueName.WEBHOOK_PROCESSING, f"webhook-event.{event.id}"
        )
        == "waiting"
    )


async def test_the_same_delivery_twice_is_a_duplicate(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    first = await post_webhook(
        webhook_client, "orders/create", order(), shop=shopify.domain, webhook_id="wh-1"
    )
    second = await post_webhook(
        webhook_client, "orders/create", order(), shop=shopify.domain, webhook_id="wh-1"
    )
    assert (first.json(), second.json()) == ({"status": "enqueued"}, {"status": "duplicate"})
    assert len(await _events(database)) == 1


async def test_two_updates_of_one_order_are_two_events(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    for webhook_id in ("wh-a", "wh-b"):
        response = await post_webhook(
            webhook_client, "orders/updated", order(), shop=shopify.domain, webhook_id=webhook_id
        )
        assert response.json() == {"status": "enqueued"}
    assert [e.external_event_id for e in await _events(database)] == ["wh-a", "wh-b"]


async def test_50_concurrent_deliveries_of_one_webhook_id_make_one_event(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    responses = await asyncio.gather(
        *(
            post_webhook(
                webhook_client, "orders/create", order(), shop=shopify.domain, webhook_id="same"
            )
            for _ in range(50)
        )
    )
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["duplicate"] * 49 + ["enqueued"]
    assert len(await _events(database)) == 1


async def test_the_previous_secret_verifies_during_a_rotation(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    from rappit.kit.crypto import SecretBox
    from rappit.kit.db import unit_of_work
    from rappit.models import Channel
    from tests.support.factories import TEST_SECRET_KEY
    from tests.support.shopify import WEBHOOK_SECRET

    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, shopify.channel.id)
        channel.credentials_encrypted = SecretBox(TEST_SECRET_KEY).encrypt_json(
            {
                "access_token": "shpat_x",
                "webhook_secret": "rotated-secret",
                "previous_webhook_secret": WEBHOOK_SECRET,
            }
        )
    old = await post_webhook(webhook_client, "orders/create", order(), shop=shopify.domain)
    new = await post_webhook(
        webhook_client, "orders/create", order(), shop=shopify.domain, secret="rotated-secret"
    )
    assert (old.status_code, new.status_code) == (200, 200)


OVERSIZED = json.dumps({"id": 1, "blob": "x" * (5 * 1024 * 1024)}).encode()


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "error"),
    [
        ("bad hmac", {"headers": {"X-Shopify-Hmac-Sha256": "AAAA"}}, 403, "invalid_signature"),
        ("wrong secret", {"secret": "not-the-secret"}, 403, "invalid_signature"),
        ("missing hmac", {"headers": {"X-Shopify-Hmac-Sha256": None}}, 403, "invalid_signature"),
        (
            "garbage hmac",
            {"headers": {"X-Shopify-Hmac-Sha256": "@@not base64@@"}},
            403,
            "invalid_signature",
        ),
        ("missing shop", {"headers": {"X-Shopify-Shop-Domain": None}}, 400, "bad_request"),
        ("unknown shop", {"shop": "other.myshopify.com"}, 404, "not_found"),
        ("not a shop", {"shop": "evil.example.com"}, 404, "not_found"),
        ("missing webhook id", {"headers": {"X-Shopify-Webhook-Id": None}}, 400, "bad_request"),
        ("missing topic", {"headers": {"X-Shopify-Topic": None}}, 400, "bad_request"),
        ("topic mismatch", {"path_topic": "orders/updated"}, 400, "bad_request"),
        ("unknown topic", {"path_topic": "products/create"}, 404, "not_found"),
        ("not json", {"payload": b"this is not json"}, 400, "bad_request"),
        ("json array", {"payload": b"[1, 2]"}, 400, "bad_request"),
        (
            "wrong content type",
            {"headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            415,
            "unsupported_media_type",
        ),
        ("oversized", {"payload": OVERSIZED}, 413, "payload_too_large"),
    ],
)
async def test_bad_input_is_refused_and_writes_nothing(
    webhook_client: httpx.AsyncClient,
    shopify: ShopifyShop,
    database: TestDatabase,
    queue_runtime: Runtime,
    case: str,
    kwargs: dict[str, object],
    status: int,
    error: str,
) -> None:
    kwargs = dict(kwargs)  # parametrized values are shared by both database runs
    payload = kwargs.pop("payload", order())
    topic = "orders/create"
    response = await post_webhook(
        webhook_client,
        topic,
        payload,  # type: ignore[arg-type]
        shop=str(kwargs.pop("shop", shopify.domain)),
        **kwargs,  # type: ignore[arg-type]
    )
    assert response.status_code == status, case
    assert response.json()["error"] == error, case
    assert await _events(database) == []
    assert queue_runtime.queue is not None
    counts = await queue_runtime.queue.counts()
    assert counts["webhook-processing"]["waiting"] == 0


@pytest.mark.parametrize("topic", ["customers/data_request", "customers/redact", "shop/redact"])
async def test_compliance_topics_answer_401_to_a_bad_signature(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase, topic: str
) -> None:
    payload = {"shop_id": 1, "shop_domain": shopify.domain}
    bad = await post_webhook(webhook_client, topic, payload, shop=shopify.domain, secret="wrong")
    assert bad.status_code == 401
    assert bad.json()["error"] == "unauthorized"
    good = await post_webhook(webhook_client, topic, payload, shop=shopify.domain)
    assert good.json() == {"status": "enqueued"}
    async with database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


async def test_an_oversized_body_without_content_length_is_refused(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    from tests.support.shopify import shopify_headers

    headers = shopify_headers("orders/create", OVERSIZED, shop=shopify.domain)

    async def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(OVERSIZED), 65536):
            yield OVERSIZED[start : start + 65536]

    response = await webhook_client.post(
        "/webhooks/shopify/orders/create", content=chunks(), headers=headers
    )
    assert response.status_code == 413
    assert await _events(database) == []


async def test_a_secret_rotated_after_the_shop_was_kept_verifies_at_once(
    webhook_client: httpx.AsyncClient, shopify: ShopifyShop, database: TestDatabase
) -> None:
    """The API process keeps the shop's secrets for a while; a delivery signed with a newer
    secret makes it read them again instead of refusing it."""
    from rappit.kit.crypto import SecretBox
    from rappit.kit.db import unit_of_work
    from rappit.models import Channel
    from tests.support.factories import TEST_SECRET_KEY

    first = await post_webhook(webhook_client, "orders/create", order(), shop=shopify.domain)
    assert first.status_code == 200  # the shop's route is now kept
    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, shopify.channel.id)
        channel.credentials_encrypted = SecretBox(TEST_SECRET_KEY).encrypt_json(
            {"access_token": "shpat_x", "webhook_secret": "rotated-secret"}
        )
    new = await post_webhook(
        webhook_client, "orders/create", order(), shop=shopify.domain, secret="rotated-secret"
    )
    wrong = await post_webhook(
        webhook_client, "orders/create", order(), shop=shopify.domain, secret="never-was"
    )
    assert (new.status_code, wrong.status_code) == (200, 403)
    assert len(await _events(database)) == 2
