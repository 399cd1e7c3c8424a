"""The webhook inbox as seen through the admin API."""

from __future__ import annotations

import httpx

from rappit.kit.db import unit_of_work
from rappit.models import WebhookEvent, WebhookEventStatus
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import make_channel


async def _seed(database: TestDatabase, tenant: Tenant) -> list[str]:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id)
        events = [
            WebhookEvent(
                organization_id=tenant.organization_id,
                source="shopify",
                channel_id=channel.id,
                topic=topic,
                external_event_id=f"delivery-{index}",
                status=status,
                payload={"id": index},
                attempts=attempts,
                error=error,
            )
            for index, (topic, status, attempts, error) in enumerate(
                [
                    ("orders/create", WebhookEventStatus.COMPLETED, 1, None),
                    ("orders/updated", WebhookEventStatus.FAILED, 5, "KeyError: 'line_items'"),
                    ("orders/updated", WebhookEventStatus.ENQUEUED, 0, None),
                ]
            )
        ]
        session.add_all(events)
        await session.flush()
        return [str(event.id) for event in events]


async def test_list_and_filter_events(
    api: httpx.AsyncClient, database: TestDatabase, tenant: Tenant
) -> None:
    ids = await _seed(database, tenant)

    listed = (await api.get("/api/v1/webhook-events")).json()
    assert [(e["topic"], e["external_event_id"], e["status"]) for e in listed["items"]] == [
        ("orders/create", "delivery-0", "COMPLETED"),
        ("orders/updated", "delivery-1", "FAILED"),
        ("orders/updated", "delivery-2", "ENQUEUED"),
    ]
    failed = (await api.get("/api/v1/webhook-events", params={"status": "FAILED"})).json()
    assert [(e["id"], e["attempts"], e["error"]) for e in failed["items"]] == [
        (ids[1], 5, "KeyError: 'line_items'")
    ]
    by_topic = (await api.get("/api/v1/webhook-events", params={"topic": "orders/create"})).json()
    assert [e["id"] for e in by_topic["items"]] == [ids[0]]

    one = (await api.get(f"/api/v1/webhook-events/{ids[2]}")).json()
    assert (one["status"], one["attempts"], one["error"]) == ("ENQUEUED", 0, None)


async def test_unknown_status_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/webhook-events", params={"status": "DONE"})
    assert response.status_code == 422


async def test_other_organisation_sees_no_events(
    client: httpx.AsyncClient, database: TestDatabase, tenant: Tenant, other_tenant: Tenant
) -> None:
    ids = await _seed(database, tenant)
    listed = await client.get("/api/v1/webhook-events", headers=other_tenant.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    one = await client.get(f"/api/v1/webhook-events/{ids[0]}", headers=other_tenant.headers)
    assert one.status_code == 404
