"""A shop to send webhooks for (benchmarks and the chaos test): an organisation with a
Shopify channel, a warehouse and SKUs with ample stock (each linked to a Shopify variant),
written straight into a migrated database; and signed order bodies built like the test
suite's payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import uuid
from dataclasses import dataclass
from typing import Any

from rappit.inventory.service import InventoryService
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker, unit_of_work
from rappit.models import Channel, ChannelListing, ChannelType, Product, Sku, Warehouse
from rappit.organizations.service import create_organization
from tests.integrations.shopify.payloads import line_item, order

# Far more than any run can reserve, so every order reserves in full.
STOCK_PER_SKU = 1_000_000_000
VARIANT_BASE = 40_000_000_000
PRODUCT_BASE = 8_000_000_000


@dataclass(frozen=True)
class Fixture:
    organization_id: uuid.UUID
    shop: str
    # (code, variant id) per SKU
    skus: list[tuple[str, int]]


async def build_fixture(
    url: str, secret_key: str, webhook_secret: str, sku_count: int, shop: str
) -> Fixture:
    engine = create_engine(url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            organization, _ = await create_organization(session, "Bench")
            org = organization.id
            channel = Channel(
                organization_id=org,
                type=ChannelType.SHOPIFY,
                name="Bench shop",
                shop_domain=shop,
                api_version="2026-10",
                credentials_encrypted=SecretBox(secret_key).encrypt_json(
                    {"access_token": "shpat_" + "0" * 32, "webhook_secret": webhook_secret}
                ),
                settings={},
                sync_cursors={},
            )
            warehouse = Warehouse(organization_id=org, code="MAIN", name="Main")
            product = Product(organization_id=org, title="Bench product")
            session.add_all([channel, warehouse, product])
            await session.flush()
            skus = [
                Sku(organization_id=org, product_id=product.id, code=f"BENCH-{index:05d}")
                for index in range(sku_count)
            ]
            session.add_all(skus)
            await session.flush()
            session.add_all(
                ChannelListing(
                    organization_id=org,
                    channel_id=channel.id,
                    sku_id=sku.id,
                    external_product_id=str(PRODUCT_BASE + index),
                    external_variant_id=str(VARIANT_BASE + index),
                )
                for index, sku in enumerate(skus)
            )
            # Stock through the service, so the ledger matches the levels as in real use.
            inventory = InventoryService(session, org)
            for sku in skus:
                await inventory.adjust(
                    sku_id=sku.id, warehouse_id=warehouse.id, set_to=STOCK_PER_SKU, note="bench"
                )
        return Fixture(org, shop, [(sku.code, VARIANT_BASE + i) for i, sku in enumerate(skus)])
    finally:
        await engine.dispose()


def order_lines(
    order_id: int, fixture: Fixture, rng: random.Random, count: int = 2
) -> list[dict[str, Any]]:
    """``count`` lines of different SKUs, 1 to 3 units each."""
    lines = []
    for position, index in enumerate(rng.sample(range(len(fixture.skus)), count)):
        code, variant = fixture.skus[index]
        lines.append(
            line_item(
                order_id * 10 + position,
                sku=code,
                quantity=rng.randint(1, 3),
                variant_id=variant,
                product_id=PRODUCT_BASE + index,
            )
        )
    return lines


def order_payload(
    order_id: int, number: int, fixture: Fixture, rng: random.Random, **fields: Any
) -> dict[str, Any]:
    """A paid order with two lines of different SKUs (other fields as given)."""
    payload = order(order_id, lines=order_lines(order_id, fixture, rng), **fields)
    payload["name"] = f"#{number}"
    payload["order_number"] = number
    return payload


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
