"""A channel's Shopify webhook subscriptions: register them now, and the health check.

Both ask the shop while the caller waits, so the client tries once more at most and does not
wait long for the shop's rate-limit bucket; a shop that cannot be asked is a 502.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from rappit.auth.dependencies import CurrentAuth
from rappit.channels.service import get_channel
from rappit.integrations.shopify.webhook_registration import (
    RegistrationReport,
    WebhookHealth,
    WebhookRegistrar,
)
from rappit.kit.fastapi import DbSession
from rappit.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["channels"])

INTERACTIVE_CLIENT: dict[str, Any] = {"max_retries": 1, "max_limiter_wait_s": 30.0}
SHOP_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    502: {
        "description": "The shop could not be asked (unreachable, token refused); the detail "
        "has Shopify's answer."
    }
}


def _registrar(runtime: Runtime) -> WebhookRegistrar:
    return WebhookRegistrar.for_runtime(runtime, **INTERACTIVE_CLIENT)


@router.post("/channels/{channel_id}/webhooks/register", responses=SHOP_UNAVAILABLE)
async def register_channel_webhooks(
    channel_id: uuid.UUID, auth: CurrentAuth, session: DbSession, runtime: RuntimeDep
) -> RegistrationReport:
    """Subscribe the shop to every topic Rappit handles at ``RAPPIT_WEBHOOK_BASE_URL``: create
    the missing subscriptions, fix wrong addresses or API versions, remove this deployment's
    stale ones. Running it again changes nothing. 409 when the channel is disconnected or the
    base URL is not set."""
    channel = await get_channel(session, auth.organization_id, channel_id)
    return await _registrar(runtime).register(channel)


@router.get("/channels/{channel_id}/webhooks/health", responses=SHOP_UNAVAILABLE)
async def channel_webhook_health(
    channel_id: uuid.UUID, auth: CurrentAuth, session: DbSession, runtime: RuntimeDep
) -> WebhookHealth:
    """The shop's subscriptions as it reports them, and which expected ones are missing, wrong
    or stale (``healthy`` is true when a registration would change nothing)."""
    channel = await get_channel(session, auth.organization_id, channel_id)
    return await _registrar(runtime).health(channel)
