"""Pushing stock levels to Shopify (reference/channel-apis.md §6.3, §6.4, §11.3).

``ShopifyInventoryTarget`` sets absolute ``available`` figures with GraphQL
``inventorySetQuantities``, up to 250 levels per call, each with the compare value of the API
version: ``changeFromQuantity`` from 2026-01 (required from 2026-04), ``compareQuantity``
before. The compare value is the level's figure as Rappit last knew it; a level Rappit knows
nothing of is read first (GraphQL ``nodes`` of its InventoryLevel ids).

A stale compare (``CHANGE_FROM_QUANTITY_STALE``: someone changed the level in Shopify since)
rejects the whole call. The stale levels are read again and the call is repeated with the fresh
compare values, leaving out levels that already show Rappit's figure; after
``max_stale_retries`` re-reads the batch fails and its job is retried later.

Idempotency (from 2026-01, required from 2026-04): the ``@idempotent`` key is derived from the
push job's batch (``operation_id``) and the exact input, so a retry of the same call after a
lost answer or a crash reuses the key and Shopify answers it from its record instead of
applying it twice, while a different input (fresh compare values) is a new operation with a
new key, as Shopify requires.

The webhook side: an ``inventory_levels/update`` that carries the figure Rappit pushed last is
its echo (``is_push_echo``); other figures at a location Rappit masters are remembered as the
channel's latest (``remember_channel_level``), the compare value of the next push.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.channels.service import credentials_of
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.errors import ShopifyError
from rappit.inventory.push import (
    InventoryTarget,
    InventoryTargets,
    LevelPush,
    PushResult,
)
from rappit.inventory.push_repository import LevelKey, note_channel_quantity, pushed_level
from rappit.kit.crypto import SecretBox
from rappit.kit.ratelimit import SharedLeakyBucket
from rappit.kit.types import utcnow
from rappit.models import Channel, ChannelType
from rappit.queues.worker import PermanentJobError

logger = logging.getLogger(__name__)

# inventorySetQuantities takes at most 250 quantities per call (§2.2: input arrays).
MAX_BATCH = 250
# InventoryLevel ids per read: each costs a few points, and a query may cost at most 1000.
READ_CHUNK = 100
READ_COST_PER_LEVEL = 3
STALE_CODES = frozenset({"CHANGE_FROM_QUANTITY_STALE", "COMPARE_QUANTITY_STALE"})
CHANGE_FROM_SINCE = "2026-01"
# Shown in the store's inventory history next to each change.
PUSH_REASON = "correction"
# uuid5 namespace of the idempotency keys (any fixed UUID; this one names Rappit's pushes).
_KEY_NAMESPACE = uuid.UUID("6f1d3c52-8a4e-4b61-9d0e-2f7a5c3b9e10")

SET_QUANTITIES = """
mutation RappitInventoryPush($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""
# API versions before 2026-01 know neither the directive nor changeFromQuantity.
SET_QUANTITIES_BEFORE_2026_01 = """
mutation RappitInventoryPush($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""
READ_LEVELS = """
query RappitInventoryLevels($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on InventoryLevel { id quantities(names: ["available"]) { name quantity } }
  }
}
"""


class ShopifyStaleCompare(ShopifyError):
    """The levels kept changing in Shopify between each re-read and the next call."""

    retryable = True


def item_gid(item_id: str) -> str:
    return f"gid://shopify/InventoryItem/{item_id}"


def location_gid(location_id: str) -> str:
    return f"gid://shopify/Location/{location_id}"


def level_gid(key: LevelKey) -> str:
    item_id, location_id = key
    return f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={item_id}"


def idempotency_key(operation_id: str, mutation_input: dict[str, Any]) -> str:
    """The same operation with the same input always gets the same key; anything else gets
    another one."""
    digest = hashlib.sha256(
        json.dumps(mutation_input, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{operation_id}:{digest}"))


def _version_at_least(version: str, minimum: str) -> bool:
    return version == "unstable" or version >= minimum


def _row_index(field: Any) -> int | None:
    """``["input", "quantities", "3", "changeFromQuantity"]`` → 3."""
    if isinstance(field, list) and len(field) >= 3 and str(field[2]).isdigit():
        return int(field[2])
    return None


def _available(node: Any) -> int | None:
    if not isinstance(node, dict):
        return None
    for quantity in node.get("quantities") or []:
        if quantity.get("name") == "available" and isinstance(quantity.get("quantity"), int):
            return int(quantity["quantity"])
    return None


class ShopifyInventoryTarget:
    """One shop's side of the inventory push (``rappit.inventory.push.InventoryTarget``)."""

    def __init__(
        self, client: ShopifyClient, *, batch_size: int = MAX_BATCH, max_stale_retries: int = 3
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.client = client
        self.batch_size = batch_size
        self.max_stale_retries = max_stale_retries
        self.change_from = _version_at_least(client.api_version, CHANGE_FROM_SINCE)

    async def push(
        self, levels: Sequence[LevelPush], *, reference: str, operation_id: str
    ) -> PushResult:
        if len(levels) > self.batch_size:
            raise ValueError(f"at most {self.batch_size} levels per push")
        result = PushResult()
        wanted = {level.key: level.quantity for level in levels}
        compare: dict[LevelKey, int | None] = {level.key: level.known for level in levels}
        unknown = [key for key, value in compare.items() if value is None]
        if unknown:
            await self._read(unknown, compare, result)
        for attempt in range(self.max_stale_retries + 1):
            # Levels Shopify already shows at Rappit's figure need no call.
            pending = [
                key for key in wanted if key not in result.refused and compare[key] != wanted[key]
            ]
            if not pending:
                return result
            stale = await self._set(pending, wanted, compare, reference, operation_id, result)
            if not stale:
                return result
            result.stale += 1
            if attempt < self.max_stale_retries:
                await self._read(stale, compare, result)
        raise ShopifyStaleCompare(
            f"inventory levels still changing in Shopify after {self.max_stale_retries} "
            "re-reads; the push is tried again later"
        )

    async def _set(
        self,
        pending: list[LevelKey],
        wanted: dict[LevelKey, int],
        compare: dict[LevelKey, int | None],
        reference: str,
        operation_id: str,
        result: PushResult,
    ) -> list[LevelKey]:
        """One ``inventorySetQuantities`` call. Returns the levels refused as stale (the call
        changed nothing then); other refused levels go to ``result.refused``."""
        compare_field = "changeFromQuantity" if self.change_from else "compareQuantity"
        mutation_input = {
            "name": "available",
            "reason": PUSH_REASON,
            "referenceDocumentUri": reference,
            "quantities": [
                {
                    "inventoryItemId": item_gid(key[0]),
                    "locationId": location_gid(key[1]),
                    "quantity": wanted[key],
                    compare_field: compare[key],
                }
                for key in pending
            ],
        }
        if self.change_from:
            variables = {
                "input": mutation_input,
                "key": idempotency_key(operation_id, mutation_input),
            }
            data = await self.client.graphql(SET_QUANTITIES, variables, idempotent=True)
        else:
            # No key before 2026-01: a lost answer is not repeated blindly (the client's
            # default for mutations); the job's retry re-reads and compares instead.
            data = await self.client.graphql(
                SET_QUANTITIES_BEFORE_2026_01, {"input": mutation_input}
            )
        result.calls += 1
        payload = data.get("inventorySetQuantities") or {}
        errors = payload.get("userErrors") or []
        if not errors:
            result.pushed.update({key: wanted[key] for key in pending})
            return []
        stale: list[LevelKey] = []
        for error in errors:
            index = _row_index(error.get("field"))
            if index is None or index >= len(pending):
                # The input as a whole is wrong (name, reason…): no retry can fix it.
                raise PermanentJobError(f"inventorySetQuantities refused the input: {errors}")
            key = pending[index]
            if error.get("code") in STALE_CODES:
                stale.append(key)
            else:
                result.refused[key] = str(error.get("message") or error.get("code"))
        return stale

    async def _read(
        self, keys: list[LevelKey], compare: dict[LevelKey, int | None], result: PushResult
    ) -> None:
        """Shopify's current available of these levels, into ``compare`` and ``result.seen``;
        a level Shopify does not have (the item is not stocked at the location) is refused."""
        for start in range(0, len(keys), READ_CHUNK):
            chunk = keys[start : start + READ_CHUNK]
            data = await self.client.graphql(
                READ_LEVELS,
                {"ids": [level_gid(key) for key in chunk]},
                cost=1 + READ_COST_PER_LEVEL * len(chunk),
            )
            result.calls += 1
            nodes = data.get("nodes") or []
            for index, key in enumerate(chunk):
                quantity = _available(nodes[index] if index < len(nodes) else None)
                if quantity is None:
                    result.refused[key] = "the item is not stocked at this location"
                    continue
                compare[key] = quantity
                result.seen[key] = quantity


def register(
    targets: InventoryTargets,
    secret_box: SecretBox,
    redis: aioredis.Redis,
    prefix: str,
    *,
    batch_size: int = MAX_BATCH,
) -> None:
    """Shopify channels push through this module, sharing each shop's rate-limit bucket with
    every other call to that shop."""
    limiter = SharedLeakyBucket(redis, key_prefix=f"{prefix}:ratelimit")

    @asynccontextmanager
    async def open_target(channel: Channel) -> AsyncIterator[InventoryTarget]:
        client = ShopifyClient.for_channel(channel, credentials_of(channel, secret_box), limiter)
        async with client:
            yield ShopifyInventoryTarget(client, batch_size=batch_size)

    targets.register(ChannelType.SHOPIFY.value, open_target)


# --- the inventory_levels/update webhook -------------------------------------------------------


async def is_push_echo(
    session: AsyncSession, channel: Channel, item_id: str, location_id: str, available: Any
) -> bool:
    """Whether this figure is the one Rappit pushed last to this level: then the webhook
    only reports Rappit's own change."""
    row = await pushed_level(session, channel.organization_id, channel.id, item_id, location_id)
    return row is not None and row.last_pushed is not None and row.last_pushed == int(available)


async def remember_channel_level(
    session: AsyncSession,
    channel: Channel,
    item_id: str,
    location_id: str,
    available: Any,
    updated_at: Any,
) -> None:
    """Keep Shopify's figure of a level Rappit masters (a sale in Shopify moved it): the next
    push compares against it instead of failing stale."""
    at = utcnow()
    if isinstance(updated_at, str):
        try:
            parsed = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
            at = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        except ValueError:
            logger.debug("inventory level update with unreadable updated_at %r", updated_at)
    await note_channel_quantity(
        session, channel.organization_id, channel.id, (item_id, location_id), int(available), at
    )
