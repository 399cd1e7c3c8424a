"""The chaos run's parts, shared by bench/chaos.py and its smaller version in the test suite:
a plan of signed deliveries (several versions per order, some sent more than once, some out
of order) with the state each order must end in, a sender that keeps retrying until every
delivery is acknowledged, and the checks of the database afterwards.

The checks are the promise: every acknowledged delivery is one event, processed (no event
left ENQUEUED, PROCESSING or FAILED); every order is in the state of its newest
``updated_at``; the open reservations are exactly what those states hold; the stock levels
agree with the reservations; and the ledger replays to the stock levels.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integrations.shopify.payloads import order, set_current
from tests.support.webhook_fixture import Fixture, order_lines, sign

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    topic: str
    body: bytes
    order_id: int
    version: int  # 0 = create; the highest is the newest updated_at


@dataclass(frozen=True)
class Expected:
    status: str  # RESERVED or CANCELLED
    held: dict[str, int]  # SKU code -> units held by open reservations


@dataclass
class Plan:
    sends: list[Delivery]  # in sending order, repeats included
    expected: dict[int, Expected]
    distinct: int
    repeated: int  # deliveries sent more than once
    late: int  # deliveries sent after a newer version of their order


def _version(
    order_id: int, number: int, version: int, lines: list[dict[str, Any]], cancelled: bool
) -> dict[str, Any]:
    stamp = (START + timedelta(minutes=version)).isoformat()
    payload = order(
        order_id,
        lines=lines,
        updated_at=stamp,
        cancelled_at=stamp if cancelled else None,
    )
    payload["name"] = f"#{number}"
    payload["order_number"] = number
    return payload


def plan_deliveries(
    fixture: Fixture,
    secret: str,
    *,
    orders: int,
    versions: int = 5,
    cancel_share: float = 0.25,
    repeat_share: float = 0.3,
    late_share: float = 0.2,
    seed: int = 1,
    first_order_id: int = 7_000_000_000_000,
) -> Plan:
    """``orders`` orders of ``versions`` deliveries each: ``orders/create``, then updates that
    edit quantities, the last one an ``orders/cancelled`` for ``cancel_share`` of the orders.
    ``repeat_share`` of the deliveries are sent two or three times (same webhook id) and
    ``late_share`` are held back behind later versions of their order."""
    rng = random.Random(seed)
    expected: dict[int, Expected] = {}
    per_order: list[list[Delivery]] = []
    for index in range(orders):
        order_id = first_order_id + index
        lines = order_lines(order_id, fixture, rng)
        cancelled = rng.random() < cancel_share
        chain = []
        for version in range(versions):
            last = version == versions - 1
            if version:
                # An edit: one line's quantity changes (Shopify sends quantity and
                # current_quantity; the current one is what is still ordered, and nothing of
                # it is shipped yet, so all of it is fulfillable).
                line = rng.choice(lines)
                set_current(line, rng.randint(1, 4))
                line["quantity"] = max(line["quantity"], line["current_quantity"])
            topic = (
                "orders/create"
                if version == 0
                else "orders/cancelled"
                if last and cancelled
                else "orders/updated"
            )
            payload = _version(order_id, 1000 + index, version, lines, last and cancelled)
            body = json.dumps(payload, separators=(",", ":")).encode()
            chain.append(Delivery(f"chaos-{order_id}-{version}", topic, body, order_id, version))
        held: Counter[str] = Counter()
        if not cancelled:
            for line in lines:
                held[line["sku"]] += line["current_quantity"]
        expected[order_id] = Expected("CANCELLED" if cancelled else "RESERVED", dict(held))
        per_order.append(chain)

    # The orders interleaved as a store produces them (versions in time order); then a share
    # of deliveries is held back behind later ones, and a share is sent again later.
    timeline = [chain[version] for version in range(versions) for chain in per_order]
    total = len(timeline)
    keyed: list[tuple[float, Delivery]] = []
    late_at = set(rng.sample(range(total), int(total * late_share)))
    for position, delivery in enumerate(timeline):
        key = position + rng.random()
        if position in late_at:
            key += rng.randint(orders // 2 + 1, 2 * orders)  # behind its own next version
        keyed.append((key, delivery))
    repeated = rng.sample(range(total), int(total * repeat_share))
    for index in repeated:
        key, delivery = keyed[index]
        for _ in range(rng.choice((1, 1, 2))):
            keyed.append((key + rng.uniform(0, total / 10), delivery))
    keyed.sort(key=lambda item: item[0])
    sends = [delivery for _, delivery in keyed]

    newest_sent: dict[int, int] = {}
    late = 0
    for delivery in sends:
        if delivery.version < newest_sent.get(delivery.order_id, -1):
            late += 1
        newest_sent[delivery.order_id] = max(
            newest_sent.get(delivery.order_id, -1), delivery.version
        )
    return Plan(sends, expected, total, len(repeated), late)


@dataclass
class SendStats:
    acknowledged: dict[str, str] = field(default_factory=dict)  # webhook id -> first answer
    answers: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    sent: int = 0


async def send_all(
    base_url: str,
    plan: Plan,
    secret: str,
    shop: str,
    *,
    concurrency: int = 32,
    retry_delay_s: float = 0.5,
    on_progress: Callable[[int], None] | None = None,
) -> SendStats:
    """Send every planned delivery, each retried (like Shopify) until answered 200."""
    stats = SendStats()
    queue: asyncio.Queue[Delivery] = asyncio.Queue()
    for delivery in plan.sends:
        queue.put_nowait(delivery)

    async def one(client: httpx.AsyncClient, delivery: Delivery) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": delivery.topic,
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Webhook-Id": delivery.webhook_id,
            "X-Shopify-Hmac-Sha256": sign(delivery.body, secret),
            "X-Shopify-API-Version": "2026-10",
        }
        while True:
            try:
                response = await client.post(
                    f"/webhooks/shopify/{delivery.topic}", content=delivery.body, headers=headers
                )
                if response.status_code == 200:
                    answer = str(response.json()["status"])
                    stats.answers[answer] += 1
                    stats.acknowledged.setdefault(delivery.webhook_id, answer)
                    return
                stats.answers[f"http {response.status_code}"] += 1
            except httpx.TransportError as exc:
                stats.answers[type(exc).__name__] += 1
            stats.retries += 1
            await asyncio.sleep(retry_delay_s)

    async def sender() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            while True:
                try:
                    delivery = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await one(client, delivery)
                stats.sent += 1
                if on_progress is not None:
                    on_progress(stats.sent)

    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return stats


async def event_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT status, count(*) FROM webhook_events GROUP BY status")
        )
        return {str(status): int(number) for status, number in rows}


async def wait_until_processed(
    engine: AsyncEngine, distinct: int, timeout_s: float, poll_s: float = 0.5
) -> dict[str, int]:
    """Until every event is COMPLETED, SKIPPED or FAILED (and all ``distinct`` are there)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        counts = await event_counts(engine)
        done = sum(counts.get(s, 0) for s in ("COMPLETED", "SKIPPED", "FAILED"))
        if done >= distinct and sum(counts.values()) == done:
            return counts
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"events not processed after {timeout_s:g} s: {counts}")
        await asyncio.sleep(poll_s)


@dataclass
class Verdict:
    counts: dict[str, int]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


async def verify(engine: AsyncEngine, plan: Plan, stats: SendStats) -> Verdict:
    problems: list[str] = []
    async with engine.connect() as connection:

        async def scalar(sql: str) -> int:
            return int((await connection.execute(text(sql))).scalar_one() or 0)

        events = await scalar("SELECT count(*) FROM webhook_events")
        by_status = await event_counts(engine)
        retried = await scalar("SELECT count(*) FROM webhook_events WHERE attempts > 1")
        orders = {
            int(external): status
            for external, status in await connection.execute(
                text("SELECT external_order_id, status FROM orders")
            )
        }
        held_rows = await connection.execute(
            text(
                "SELECT o.external_order_id, s.code, sum(r.quantity) FROM reservations r "
                "JOIN order_items i ON i.id = r.order_item_id JOIN orders o ON o.id = i.order_id "
                "JOIN skus s ON s.id = r.sku_id "
                "WHERE r.released_at IS NULL AND r.consumed_at IS NULL "
                "GROUP BY o.external_order_id, s.code"
            )
        )
        held: dict[int, dict[str, int]] = {}
        for external, code, quantity in held_rows:
            held.setdefault(int(external), {})[str(code)] = int(quantity)
        level_mismatches = await scalar(
            "SELECT count(*) FROM stock_levels l LEFT JOIN ("
            "  SELECT sku_id, warehouse_id, sum(quantity) AS q FROM reservations"
            "  WHERE released_at IS NULL AND consumed_at IS NULL GROUP BY sku_id, warehouse_id"
            ") r ON r.sku_id = l.sku_id AND r.warehouse_id = l.warehouse_id "
            "WHERE l.reserved <> coalesce(r.q, 0)"
        )
        ledger_mismatches = await scalar(
            "SELECT count(*) FROM stock_levels l LEFT JOIN ("
            "  SELECT sku_id, warehouse_id, sum(on_hand_delta) AS h, sum(reserved_delta) AS r"
            "  FROM inventory_movements GROUP BY sku_id, warehouse_id"
            ") m ON m.sku_id = l.sku_id AND m.warehouse_id = l.warehouse_id "
            "WHERE l.on_hand <> coalesce(m.h, 0) OR l.reserved <> coalesce(m.r, 0)"
        )
        units_held = await scalar(
            "SELECT coalesce(sum(quantity), 0) FROM reservations "
            "WHERE released_at IS NULL AND consumed_at IS NULL"
        )

    acknowledged = len(stats.acknowledged)
    if acknowledged != plan.distinct:
        problems.append(f"{acknowledged} deliveries acknowledged of {plan.distinct} planned")
    if events != acknowledged:
        problems.append(f"{events} events for {acknowledged} acknowledged deliveries")
    stuck = {s: n for s, n in by_status.items() if s not in ("COMPLETED", "SKIPPED")}
    if stuck:
        problems.append(f"events not processed: {stuck}")
    if len(orders) != len(plan.expected):
        problems.append(f"{len(orders)} orders for {len(plan.expected)} planned")
    wrong_state = [o for o, e in plan.expected.items() if orders.get(o) != e.status]
    if wrong_state:
        problems.append(
            f"{len(wrong_state)} orders not in their newest state, e.g. {wrong_state[:3]}"
        )
    wrong_held = [o for o, e in plan.expected.items() if held.get(o, {}) != e.held]
    if wrong_held:
        problems.append(f"{len(wrong_held)} orders hold other reservations, e.g. {wrong_held[:3]}")
    if level_mismatches:
        problems.append(f"{level_mismatches} stock levels disagree with the open reservations")
    if ledger_mismatches:
        problems.append(f"{ledger_mismatches} stock levels the ledger does not replay to")
    expected_units = sum(sum(e.held.values()) for e in plan.expected.values())
    if units_held != expected_units:
        problems.append(f"{units_held} units held, the newest versions ask for {expected_units}")
    counts = {
        "deliveries sent": sum(stats.answers.values()),
        "distinct deliveries": plan.distinct,
        "sent more than once": plan.repeated,
        "sent after a newer version": plan.late,
        "answered enqueued": stats.answers.get("enqueued", 0),
        "answered duplicate": stats.answers.get("duplicate", 0),
        "refused or failed, then retried": stats.retries,
        "events": events,
        "events COMPLETED": by_status.get("COMPLETED", 0),
        "events SKIPPED (older than stored)": by_status.get("SKIPPED", 0),
        "events run more than once": retried,
        "orders": len(orders),
        "orders CANCELLED": sum(1 for s in orders.values() if s == "CANCELLED"),
        "units held": units_held,
    }
    return Verdict(counts, problems)
