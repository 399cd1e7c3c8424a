"""Shop routes kept per process: one database read per shop and period, a fresh read on
demand, and nothing kept for shops that are not there."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from rappit.channels.shop_routes import ShopRoutes
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import Channel, ChannelType
from tests.conftest import Tenant, TestDatabase
from tests.support.factories import TEST_SECRET_KEY, make_channel

SHOP = "acme-routes.myshopify.com"


@contextmanager
def counting_queries(database: TestDatabase) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def set_secrets(
    database: TestDatabase, channel_id: object, current: str, previous: str | None
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await session.get_one(Channel, channel_id)
        channel.credentials_encrypted = SecretBox(TEST_SECRET_KEY).encrypt_json(
            {"access_token": "shpat_x", "webhook_secret": current,
             "previous_webhook_secret": previous}
        )  # fmt: skip


async def test_a_route_is_read_once_then_kept(database: TestDatabase, tenant: Tenant) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id, shop_domain=SHOP)
    routes = ShopRoutes(database.sessionmaker, SecretBox(TEST_SECRET_KEY), ttl_s=60)

    with counting_queries(database) as selects:
        first = await routes.get(ChannelType.SHOPIFY, SHOP)
        again = await routes.get(ChannelType.SHOPIFY, " ACME-routes.myshopify.com ")
    assert first is not None
    assert again == first
    assert (first.channel_id, first.organization_id) == (channel.id, tenant.organization_id)
    assert first.webhook_secrets == ("whsec",)
    assert len(selects) == 1
    assert "whsec" not in repr(first)

    # Rotated behind the kept route: only a fresh read sees it.
    await set_secrets(database, channel.id, "new-secret", "whsec")
    kept = await routes.get(ChannelType.SHOPIFY, SHOP)
    assert kept is not None
    assert kept.webhook_secrets == ("whsec",)
    fresh = await routes.get(ChannelType.SHOPIFY, SHOP, fresh=True)
    assert fresh is not None
    assert fresh.webhook_secrets == ("new-secret", "whsec")
    kept = await routes.get(ChannelType.SHOPIFY, SHOP)
    assert kept is not None
    assert kept.webhook_secrets == ("new-secret", "whsec")


async def test_without_a_period_every_call_reads(database: TestDatabase, tenant: Tenant) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        await make_channel(session, tenant.organization_id, shop_domain=SHOP)
    routes = ShopRoutes(database.sessionmaker, SecretBox(TEST_SECRET_KEY), ttl_s=0)
    with counting_queries(database) as selects:
        for _ in range(3):
            assert await routes.get(ChannelType.SHOPIFY, SHOP) is not None
    assert len(selects) == 3


async def test_unknown_and_invalid_shops_are_not_kept(
    database: TestDatabase, tenant: Tenant
) -> None:
    routes = ShopRoutes(database.sessionmaker, SecretBox(TEST_SECRET_KEY), ttl_s=60)
    with counting_queries(database) as selects:
        assert await routes.get(ChannelType.SHOPIFY, SHOP) is None
        assert await routes.get(ChannelType.SHOPIFY, "not a domain") is None
    assert len(selects) == 1  # the invalid domain is refused before any read

    # The shop connected afterwards is found at once: its absence was not kept.
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id, shop_domain=SHOP)
    found = await routes.get(ChannelType.SHOPIFY, SHOP)
    assert found is not None
    assert found.channel_id == channel.id

    routes.forget(ChannelType.SHOPIFY, SHOP)
    with counting_queries(database) as selects:
        assert await routes.get(ChannelType.SHOPIFY, SHOP) is not None
    assert len(selects) == 1


async def test_deliveries_arriving_together_wait_for_one_read(
    database: TestDatabase, tenant: Tenant
) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        channel = await make_channel(session, tenant.organization_id, shop_domain=SHOP)
    routes = ShopRoutes(database.sessionmaker, SecretBox(TEST_SECRET_KEY), ttl_s=60)
    with counting_queries(database) as selects:
        found = await asyncio.gather(*(routes.get(ChannelType.SHOPIFY, SHOP) for _ in range(30)))
        # A fresh read is never joined to another one.
        fresh = await asyncio.gather(
            *(routes.get(ChannelType.SHOPIFY, SHOP, fresh=True) for _ in range(2))
        )
    assert {route.channel_id for route in found if route is not None} == {channel.id}
    assert None not in found
    assert [route.channel_id for route in fresh if route is not None] == [channel.id] * 2
    assert len(selects) == 1 + 2
