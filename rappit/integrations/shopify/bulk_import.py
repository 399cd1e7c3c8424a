"""The first import of a Shopify store (sync resource ``import``): every order through one
GraphQL bulk operation instead of thousands of REST pages (reference/channel-apis.md §2.3: bulk
operations do not use the cost bucket and are meant for this backfill).

1. Start ``bulkOperationRunQuery`` for all orders with their line items, shipping lines and
   discount applications (``graphql_orders.BULK_ORDERS_QUERY``), and save its id on the run.
2. Poll ``node(id:)`` with a growing interval until it is COMPLETED. FAILED or CANCELED ends the
   run (FAILED status, Shopify's error code in the run's error); an operation that is gone or
   EXPIRED is started again.
3. Read the JSONL result (``bulk_reader``: streamed, the file is never held whole), put each
   order's child lines (``__parentId``) under it, turn it into the REST order JSON
   (``graphql_orders.rest_order``) and map it with the same ``map_order`` as webhooks and polls,
   so one order always maps to the same ``ChannelOrder``. The next pages are read while the
   database writes the current one; a large file in a reader process of its own.
4. Apply the orders in pages of ``PAGE_SIZE`` (``order_batch.apply_orders``: new orders in a
   few statements, known ones through ``OrderService``), each page in one transaction together
   with the run's cursor: the operation id, the result URL and the number of lines consumed.
   After a crash the next attempt skips those lines; if the URL expired (the file lives 7 days)
   or the operation is gone, a new operation is started and the orders are applied again, which
   the idempotent upsert makes harmless.
5. Move the channel's orders watermark (``sync_cursors["orders"]``) to the newest ``updatedAt``
   imported (never past the operation's start, and never backwards), so the next REST poll
   starts there.

Children are expected after their parent (Shopify's guarantee). A child whose order is not in
the page being built (an order already applied, or not seen yet) is not dropped: its order's id
is kept on the cursor, and once the file is through, a second pass over it collects those
orders whole and applies them again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from rappit.integrations.shopify import bulk_reader
from rappit.integrations.shopify.bulk_reader import PAGE_SIZE
from rappit.integrations.shopify.client import ShopifyClient
from rappit.integrations.shopify.graphql_orders import (
    BULK_ORDERS_QUERY,
    SHOP_ZONE_QUERY,
    shop_zone,
)
from rappit.integrations.shopify.order_batch import apply_orders
from rappit.models import Channel
from rappit.queues.worker import PermanentJobError
from rappit.sync.service import SyncContext

logger = logging.getLogger(__name__)

# Polling: Shopify answers in seconds for a small shop and in minutes for a large one.
POLL_FIRST_S = 0.5
POLL_FACTOR = 1.5
POLL_MAX_S = 15.0

RUN_QUERY = """mutation($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status createdAt }
    userErrors { field message code }
  }
}"""
OPERATION_QUERY = """query($id: ID!) {
  node(id: $id) {
    ... on BulkOperation {
      id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url
      partialDataUrl
    }
  }
}"""
_RUNNING = ("CREATED", "RUNNING", "CANCELING")


class BulkOperationFailed(PermanentJobError):
    """Shopify ended the bulk operation without a result: the run fails with this message."""


async def import_orders(sync: SyncContext, client: ShopifyClient) -> None:
    """The ``import`` puller of a Shopify channel."""
    with _collector_set_for_import():
        await _import(sync, client)


async def _import(sync: SyncContext, client: ShopifyClient) -> None:
    if not sync.cursor.get("done"):
        if "zone" not in sync.cursor:
            shop = (await client.graphql(SHOP_ZONE_QUERY)).get("shop") or {}
            sync.cursor["zone"] = [shop.get("ianaTimezone"), shop.get("timezoneOffsetMinutes")]
        async with httpx.AsyncClient(
            timeout=bulk_reader.DOWNLOAD_TIMEOUT, follow_redirects=True
        ) as http:
            while True:
                operation = await _completed_operation(sync, client)
                try:
                    await _apply_file(sync, http, operation)
                    break
                except bulk_reader.ResultExpired:
                    # Start over with a fresh file: what was applied is applied again, harmlessly.
                    logger.warning("bulk result of %s expired; starting a new operation",
                                   operation["id"])  # fmt: skip
                    sync.count("restarts")
                    await _save(sync, {**_kept(sync), "operation_id": None, "url": None})
    await _advance_watermark(sync)


# Imports running in this process, and the collector's thresholds before the first began.
_imports_running = 0
_thresholds_before: tuple[int, int, int] = (0, 0, 0)
# While an import runs, the youngest generation is collected after this many new containers
# instead of 700: the import's short-lived objects (parsed lines, mapped orders) mostly die
# before a pass has to look at them.
IMPORT_GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def _collector_set_for_import() -> Iterator[None]:
    """The garbage collector set for the import's allocation pattern while it runs.

    An import creates and drops millions of containers, and keeps a few pages of them alive
    at a time (pages are read ahead), so with the default settings the collector runs its
    passes very often, and every full pass walks all the process's objects (modules,
    SQLAlchemy and pydantic machinery: some 150,000), not only the import's. So: what the
    process held before the import is moved to the permanent generation (``gc.freeze``) and
    skipped, and the youngest generation is collected less often. Measured on the
    benchmark's 20,000-order import, the time in collections went from 5.6 s to about 1 s.
    Both are undone when the last import running in the process ends (``gc.unfreeze``:
    anything among the frozen objects that became garbage is collected then).
    """
    global _imports_running, _thresholds_before
    if _imports_running == 0:
        _thresholds_before = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(IMPORT_GC_YOUNG_THRESHOLD, *_thresholds_before[1:])
    _imports_running += 1
    try:
        yield
    finally:
        _imports_running -= 1
        if _imports_running == 0:
            gc.set_threshold(*_thresholds_before)
            gc.unfreeze()


def _kept(sync: SyncContext) -> dict[str, Any]:
    """What survives a new bulk operation: the shop's zone and the newest order seen."""
    return {key: sync.cursor[key] for key in ("zone", "newest") if key in sync.cursor}


async def _save(sync: SyncContext, cursor: dict[str, Any]) -> None:
    async def nothing(session: AsyncSession) -> None:
        return None

    await sync.commit_page(nothing, cursor)


# --- the bulk operation -----------------------------------------------------------------------


async def _completed_operation(sync: SyncContext, client: ShopifyClient) -> dict[str, Any]:
    """The run's operation once COMPLETED: the one on the cursor, or a new one."""
    while True:
        operation_id = sync.cursor.get("operation_id")
        if not operation_id:
            operation_id = await _start(client)
            await _save(sync, {**_kept(sync), "operation_id": operation_id, "lines": 0})
        operation = await _wait(client, operation_id)
        status = operation.get("status") if operation else None
        if status == "COMPLETED":
            assert operation is not None
            if operation.get("rootObjectCount") is not None:
                sync.total = int(operation["rootObjectCount"])
            return operation
        if status == "FAILED":
            assert operation is not None
            raise BulkOperationFailed(
                f"Shopify bulk operation {operation_id} FAILED with error code "
                f"{operation.get('errorCode') or 'none'} after {operation.get('objectCount')} "
                "objects; start the import again (it goes on idempotently)"
            )
        if status == "CANCELED":
            raise BulkOperationFailed(
                f"Shopify bulk operation {operation_id} was CANCELED before it completed"
            )
        # Gone (null) or EXPIRED: its result can no longer be had. Start a new one.
        logger.warning("bulk operation %s is %s; starting a new one", operation_id, status)
        await _save(sync, {**_kept(sync), "operation_id": None, "url": None})


async def _start(client: ShopifyClient) -> str:
    # Repeating the mutation after an ambiguous failure could start a second operation; the
    # worst case is one unused export, so it may be repeated.
    data = await client.graphql(RUN_QUERY, {"query": BULK_ORDERS_QUERY}, idempotent=True)
    payload = data.get("bulkOperationRunQuery") or {}
    errors = payload.get("userErrors") or []
    operation = payload.get("bulkOperation")
    if errors or not operation:
        message = "; ".join(f"{e.get('code') or ''} {e.get('message')}".strip() for e in errors)
        if any(e.get("code") == "OPERATION_IN_PROGRESS" for e in errors):
            # Another bulk query of this app runs (one at a time before 2026-01): try later.
            raise RuntimeError(f"cannot start the bulk operation yet: {message}")
        raise BulkOperationFailed(f"Shopify refused the bulk operation: {message or 'no answer'}")
    logger.info("started bulk operation %s", operation["id"])
    return str(operation["id"])


async def _wait(client: ShopifyClient, operation_id: str) -> dict[str, Any] | None:
    """Poll until the operation is no longer running; None when Shopify has no such operation."""
    delay = POLL_FIRST_S
    while True:
        node = (await client.graphql(OPERATION_QUERY, {"id": operation_id})).get("node")
        if not isinstance(node, dict) or not node.get("id"):
            return None
        if node.get("status") not in _RUNNING:
            return node
        await asyncio.sleep(delay)
        delay = min(delay * POLL_FACTOR, POLL_MAX_S)


# --- the result file --------------------------------------------------------------------------


async def _apply_file(
    sync: SyncContext, http: httpx.AsyncClient, operation: dict[str, Any]
) -> None:
    url = operation.get("url")
    if not url:  # no orders at all: Shopify gives no file
        await _save(sync, {**sync.cursor, "url": None, "done": True})
        return
    if sync.cursor.get("url") != url:
        await _save(sync, {**sync.cursor, "url": url, "started_at": operation.get("createdAt")})
    if not sync.cursor.get("late_pass"):
        # The next pages are read, mapped and prepared while the database writes this one.
        async with bulk_reader.read_ahead(
            url,
            sync.cursor["zone"],
            int(sync.cursor.get("lines") or 0),
            list(sync.cursor.get("late") or []),
            orders=sync.total,
        ) as pages:
            async for page in pages:
                await _commit(sync, page)
    await _apply_late(sync, http, url, shop_zone(*sync.cursor["zone"]))
    await _save(sync, {**sync.cursor, "done": True})


async def _apply_late(sync: SyncContext, http: httpx.AsyncClient, url: str, zone: Any) -> None:
    """Further passes over the file for the orders whose children were not next to them: a
    page of them at a time, each collected whole (memory stays one page)."""
    remaining = list(sync.cursor.get("late") or [])
    if remaining and not sync.cursor.get("late_counted"):
        sync.count("late", len(remaining))
        sync.cursor["late_counted"] = True
    while remaining:
        wanted, rest = set(remaining[:PAGE_SIZE]), remaining[PAGE_SIZE:]
        collected = bulk_reader.Page()
        async for batch in bulk_reader.lines(http, url, 0):
            for _, line in batch:
                if "__parentId" in line:
                    collected.adopt(line)
                elif str(line["id"]) in wanted:
                    collected.add(line)
        progress = {"late": rest, "late_pass": bool(rest)}
        await _commit(sync, bulk_reader.prepare_page(collected, zone, progress, fetched=False))
        remaining = rest


async def _commit(sync: SyncContext, prepared: bulk_reader.PreparedPage) -> None:
    for order_id, error in prepared.invalid:
        sync.count("invalid")
        sync.problem("invalid_order", order_id=order_id, error=error)
    if prepared.fetched:
        sync.count("fetched", prepared.fetched)
    newest = sync.cursor.get("newest")
    page_newest = prepared.newest
    if page_newest is not None and (newest is None or page_newest > datetime.fromisoformat(newest)):
        newest = page_newest.isoformat()
    channel_id = sync.channel.id

    async def apply(session: AsyncSession) -> None:
        if not len(prepared.batch):
            return
        channel = await session.get_one(Channel, channel_id)
        for name, amount in (await apply_orders(session, channel, prepared.batch)).items():
            sync.count(name, amount)

    cursor = {**sync.cursor, **prepared.progress}
    if newest is not None:
        cursor["newest"] = newest
    await sync.commit_page(apply, cursor)


# --- the watermark ----------------------------------------------------------------------------


async def _advance_watermark(sync: SyncContext) -> None:
    """The next REST poll starts from the newest order imported. Not from later than the
    operation's start: an order changed while the export ran may have been read before the
    change, and the poll must see it again."""
    newest = sync.cursor.get("newest")
    if not newest:
        return
    mark = datetime.fromisoformat(newest)
    started = sync.cursor.get("started_at")
    if started:
        mark = min(mark, datetime.fromisoformat(str(started).replace("Z", "+00:00")))

    async def advance(session: AsyncSession) -> None:
        channel = await session.get_one(Channel, sync.channel.id, with_for_update=True)
        cursors = dict(channel.sync_cursors or {})
        previous = cursors.get("orders")
        if previous is None or mark > datetime.fromisoformat(previous.replace("Z", "+00:00")):
            cursors["orders"] = mark.isoformat()
            channel.sync_cursors = cursors

    await sync.commit_page(advance, dict(sync.cursor))
