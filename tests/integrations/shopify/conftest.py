from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from rappit.app import create_app
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.models import Channel, ChannelType
from rappit.runtime import Runtime
from tests.conftest import Tenant, TestDatabase
from tests.integrations.shopify.payloads import SHOP
from tests.support.factories import TEST_SECRET_KEY, make_sku, make_warehouse, stock
from tests.support.shopify import WEBHOOK_SECRET


@dataclass
class ShopifyShop:
    channel: Channel
    domain: str


@pytest.fixture
async def shopify(database: TestDatabase, tenant: Tenant) -> ShopifyShop:
    """A connected shop with a webhook secret, a warehouse and stock of two SKUs."""
    org = tenant.organization_id
    async with unit_of_work(database.sessionmaker) as session:
        channel = Channel(
            organization_id=org,
            type=ChannelType.SHOPIFY,
            name="Acme store",
            shop_domain=SHOP,
            api_version="2026-10",
            credentials_encrypted=SecretBox(TEST_SECRET_KEY).encrypt_json(
                {"access_token": "shpat_" + "0" * 32, "webhook_secret": WEBHOOK_SECRET}
            ),
            settings={},
            sync_cursors={},
        )
        session.add(channel)
        warehouse = await make_warehouse(session, org, "MAIN")
        for code in ("TSHIRT-M", "MUG"):
            await stock(session, org, await make_sku(session, org, code), warehouse, 10)
    return ShopifyShop(channel, SHOP)


@pytest.fixture
async def webhook_client(queue_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app as Shopify reaches it, with a real queue behind it."""
    transport = httpx.ASGITransport(app=create_app(runtime=queue_runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://rappit.test") as http:
        yield http


@pytest.fixture
async def api_for_shop(webhook_client: httpx.AsyncClient, tenant: Tenant) -> httpx.AsyncClient:
    """The admin API, as the shop's organisation."""
    webhook_client.headers.update(tenant.headers)
    return webhook_client
