"""A Shopify store's inventory levels next to Rappit's stock, per linked inventory item and
mapped location. Shared by the inventory pull and by reconciliation, so both read the store
and judge a difference the same way.

Where the channel is the stock master of a location, its ``available`` sets Rappit's on-hand
(as its ``inventory_levels/update`` webhook would have); elsewhere a difference is only
reported, because there Rappit's figure is the one the channel should follow.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.integrations.shopify.client import ShopifyClient
from rappit.inventory.service import InventoryService
from rappit.models import Channel, ChannelListing, ChannelLocation, Sku, StockMaster

ID_CHUNK = 50  # inventory_levels.json takes at most 50 ids per parameter


@dataclass
class InventoryMap:
    """What of the store Rappit knows: mapped locations and linked inventory items."""

    # The store's locations that map to a warehouse, by external id, in the store's order.
    locations: dict[str, ChannelLocation]
    # Linked inventory items, by external inventory item id.
    listings: dict[str, ChannelListing]
    sku_codes: dict[uuid.UUID, str] = field(default_factory=dict)
    # The store's locations no warehouse stands for: {"location_id", "name"}.
    unmapped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def location_ids(self) -> list[str]:
        return list(self.locations)

    @property
    def item_ids(self) -> list[str]:
        return sorted(self.listings)


async def load_inventory_map(
    session: AsyncSession, channel: Channel, client: ShopifyClient
) -> InventoryMap:
    org = channel.organization_id
    store_locations = (await client.get("locations.json")).json.get("locations", [])
    mapped = {
        row.external_location_id: row
        for row in (
            await session.scalars(
                select(ChannelLocation).where(
                    ChannelLocation.organization_id == org,
                    ChannelLocation.channel_id == channel.id,
                )
            )
        ).all()
    }
    rows = (
        await session.execute(
            select(ChannelListing, Sku.code)
            .join(Sku, Sku.id == ChannelListing.sku_id)
            .where(
                ChannelListing.organization_id == org,
                ChannelListing.channel_id == channel.id,
                ChannelListing.external_inventory_item_id.is_not(None),
            )
        )
    ).all()
    inventory_map = InventoryMap(
        locations={},
        listings={str(listing.external_inventory_item_id): listing for listing, _ in rows},
        sku_codes={listing.sku_id: code for listing, code in rows},
    )
    for location in store_locations:
        location_id = str(location["id"])
        if location_id in mapped:
            inventory_map.locations[location_id] = mapped[location_id]
        else:
            inventory_map.unmapped.append(
                {"location_id": location_id, "name": location.get("name")}
            )
    return inventory_map


async def fetch_levels(
    client: ShopifyClient, item_ids: list[str], location_ids: list[str]
) -> list[dict[str, Any]]:
    """The store's levels of these items (at most ``ID_CHUNK``) at these locations."""
    levels: list[dict[str, Any]] = []
    for offset in range(0, len(location_ids), ID_CHUNK):
        params = {
            "inventory_item_ids": ",".join(item_ids),
            "location_ids": ",".join(location_ids[offset : offset + ID_CHUNK]),
        }
        async for page in client.paginate("inventory_levels.json", params, key="inventory_levels"):
            levels.extend(page)
    return levels


@dataclass(frozen=True)
class LevelComparison:
    """One (inventory item, location) of the store next to its (SKU, warehouse) in Rappit."""

    inventory_item_id: str
    location_id: str
    sku_id: uuid.UUID
    sku: str | None
    warehouse_id: uuid.UUID
    stock_master: str
    # Rappit's available (on hand - reserved) before anything was applied.
    rappit_available: int
    channel_available: int
    # The channel is the stock master here and Rappit's on-hand was set from it.
    applied: bool

    @property
    def key(self) -> str:
        return f"{self.inventory_item_id}@{self.location_id}"

    @property
    def differs(self) -> bool:
        return self.rappit_available != self.channel_available


async def compare_levels(
    session: AsyncSession,
    organization_id: uuid.UUID,
    levels: list[dict[str, Any]],
    inventory_map: InventoryMap,
    *,
    note: str,
    reference: str | None = None,
) -> list[LevelComparison]:
    """Compare each level with Rappit's stock, applying the channel's figure where the channel
    is the stock master. Levels of unlinked items, unmapped locations or untracked stock (no
    ``available``) are left out."""
    inventory = InventoryService(session, organization_id)
    compared: list[LevelComparison] = []
    for level in levels:
        listing = inventory_map.listings.get(str(level.get("inventory_item_id")))
        location = inventory_map.locations.get(str(level.get("location_id")))
        if listing is None or location is None or level.get("available") is None:
            continue
        channel_available = int(level["available"])
        sku_id, warehouse_id = listing.sku_id, location.warehouse_id
        channel_is_master = location.stock_master == StockMaster.CHANNEL
        await inventory.repository.ensure_levels([(sku_id, warehouse_id)])
        if channel_is_master:
            # Locked before reading: reserved must not move between the read and the set.
            await inventory.repository.lock_levels([sku_id])
        row = await inventory.repository.get_level(sku_id, warehouse_id)
        assert row is not None  # ensured just above, in this transaction
        rappit_available, reserved, on_hand = row.available, row.reserved, row.on_hand
        # Shopify's available already leaves out what its orders committed, which Rappit
        # holds as reserved: on hand is what is free plus what is held.
        target = max(channel_available, 0) + reserved
        applied = channel_is_master and on_hand != target
        if applied:
            await inventory.adjust(
                sku_id=sku_id,
                warehouse_id=warehouse_id,
                set_to=target,
                note=note,
                reference=reference,
            )
        compared.append(
            LevelComparison(
                inventory_item_id=str(listing.external_inventory_item_id),
                location_id=location.external_location_id,
                sku_id=sku_id,
                sku=inventory_map.sku_codes.get(sku_id),
                warehouse_id=warehouse_id,
                stock_master=location.stock_master,
                rappit_available=rappit_available,
                channel_available=channel_available,
                applied=applied,
            )
        )
    return compared
