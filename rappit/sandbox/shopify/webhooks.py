"""Webhook subscriptions and their delivery, the way Shopify sends them
(reference/channel-apis.md §1).

A change in the state (an order created through the control API, a fulfilment created through
REST, a level changed...) is one *event*: every topic it triggers shares its
``X-Shopify-Event-Id``. Each subscription to each topic gets its own *delivery* with its own
``X-Shopify-Webhook-Id``, which stays the same on every retry of that delivery. The body is the
REST JSON of the resource, rendered once when the event fires (retries carry the original
payload), signed with the shop's webhook secret: ``X-Shopify-Hmac-Sha256`` is the base64
HMAC-SHA256 of the raw body.

A delivery fails on anything but a 2xx (redirects included), a timeout or a refused connection;
it is retried after each of ``SandboxState.webhook_retry_delays`` (Shopify: 8 retries over 4
hours; tests pass a fast schedule). When every attempt failed, the subscription is deleted, as
Shopify deletes subscriptions created through the Admin API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import httpx

from rappit.sandbox.shopify import payloads
from rappit.sandbox.shopify.state import (
    Delivery,
    DeliveryAttempt,
    Fulfillment,
    InventoryLevel,
    Order,
    OrderEdit,
    SandboxState,
    Shop,
    WebhookSubscription,
)

logger = logging.getLogger(__name__)

TOPICS = frozenset(
    {
        "app/uninstalled",
        "bulk_operations/finish",
        "fulfillments/create",
        "fulfillments/update",
        "inventory_levels/connect",
        "inventory_levels/disconnect",
        "inventory_levels/update",
        "orders/cancelled",
        "orders/create",
        "orders/edited",
        "orders/fulfilled",
        "orders/paid",
        "orders/partially_fulfilled",
        "orders/updated",
    }
)


def sign(body: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def triggered_at(epoch: float) -> str:
    """UTC with nanoseconds, like ``2023-03-29T18:00:27.877041743Z``."""
    seconds = int(epoch)
    nanos = round((epoch - seconds) * 1e9)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def payload_for(shop: Shop, resource: Any) -> dict[str, Any]:
    if isinstance(resource, Order):
        return payloads.order_json(shop, resource)
    if isinstance(resource, OrderEdit):
        return payloads.order_edit_json(shop, resource)
    if isinstance(resource, Fulfillment):
        return payloads.fulfillment_json(shop, resource)
    if isinstance(resource, InventoryLevel):
        return payloads.inventory_level_json(shop, resource)
    if isinstance(resource, dict):
        return resource
    raise TypeError(f"no webhook payload for {type(resource).__name__}")


def delivery_json(shop: Shop, delivery: Delivery) -> dict[str, Any]:
    return {
        "webhook_id": delivery.webhook_id,
        "event_id": delivery.event_id,
        "subscription_id": delivery.subscription_id,
        "topic": delivery.topic,
        "address": delivery.address,
        "api_version": delivery.api_version,
        "triggered_at": delivery.triggered_at,
        "state": delivery.state,
        "attempts": [
            {
                "at": triggered_at(attempt.at),
                "status_code": attempt.status_code,
                "error": attempt.error,
            }
            for attempt in delivery.attempts
        ],
        "headers": dict(delivery.headers),
        "payload": json.loads(delivery.body),
    }


class WebhookDispatcher:
    """Turns state events into deliveries and sends them from the server's event loop."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        state.listeners.append(self.on_event)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.state.webhook_timeout, connect=1.0),
            follow_redirects=False,
            trust_env=False,
        )

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def on_event(self, shop: Shop, event_id: str, changes: list[tuple[str, Any]]) -> None:
        at = self.state.clock.now()
        for topic, resource in changes:
            hooks = [hook for hook in shop.webhooks.values() if hook.topic == topic]
            if not hooks:
                continue
            payload = payload_for(shop, resource)
            for hook in hooks:
                self._schedule(shop, self._delivery(shop, hook, event_id, at, payload))

    def _delivery(
        self,
        shop: Shop,
        hook: WebhookSubscription,
        event_id: str,
        at: float,
        payload: dict[str, Any],
    ) -> Delivery:
        if hook.fields:
            payload = payloads.select_fields(payload, hook.fields)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        webhook_id = str(uuid.uuid4())
        delivery = Delivery(
            webhook_id=webhook_id,
            event_id=event_id,
            subscription_id=hook.id,
            topic=hook.topic,
            address=hook.address,
            api_version=hook.api_version,
            triggered_at=triggered_at(at),
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Shopify-Captain-Hook",
                "X-Shopify-Topic": hook.topic,
                "X-Shopify-Hmac-Sha256": sign(body, shop.webhook_secret),
                "X-Shopify-Shop-Domain": shop.domain,
                "X-Shopify-API-Version": hook.api_version,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Triggered-At": triggered_at(at),
            },
        )
        shop.deliveries.append(delivery)
        return delivery

    def _schedule(self, shop: Shop, delivery: Delivery) -> None:
        loop = self._loop
        if loop is None:  # not serving: recorded, never sent
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        coroutine = self._send(shop, delivery)
        if running is loop:
            self._track(loop.create_task(coroutine))
        else:
            loop.call_soon_threadsafe(self._start_task, coroutine)

    def _start_task(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        self._track(self._loop.create_task(coroutine))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, shop: Shop, delivery: Delivery) -> None:
        delays = self.state.webhook_retry_delays
        for attempt in range(len(delays) + 1):
            if attempt:
                await asyncio.sleep(delays[attempt - 1])
            if await self._attempt(delivery):
                delivery.state = "delivered"
                hook = shop.webhooks.get(delivery.subscription_id)
                if hook is not None:
                    hook.consecutive_failures = 0
                return
        delivery.state = "failed"
        hook = shop.webhooks.get(delivery.subscription_id)
        if hook is not None:
            hook.consecutive_failures += 1
            if self.state.delete_failing_subscriptions:
                logger.info("sandbox: deleting failing webhook %s (%s)", hook.id, hook.address)
                del shop.webhooks[hook.id]

    async def _attempt(self, delivery: Delivery) -> bool:
        assert self._client is not None
        at = self.state.clock.now()
        try:
            response = await self._client.post(
                delivery.address, content=delivery.body, headers=delivery.headers
            )
        except httpx.HTTPError as exc:
            delivery.attempts.append(DeliveryAttempt(at, None, f"{type(exc).__name__}: {exc}"))
            return False
        ok = 200 <= response.status_code < 300
        error = None if ok else f"HTTP {response.status_code}"
        delivery.attempts.append(DeliveryAttempt(at, response.status_code, error))
        return ok
