"""The admin API: every domain's router under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from rappit.catalog.endpoints import router as catalog_router
from rappit.channels.endpoints import router as channels_router
from rappit.fulfillments.endpoints import router as fulfillments_router
from rappit.integrations.shopify.webhook_registration_endpoints import (
    router as shopify_webhook_registration_router,
)
from rappit.inventory.endpoints import router as inventory_router
from rappit.kit.error_responses import ERROR_RESPONSES
from rappit.orders.endpoints import router as orders_router
from rappit.queues.endpoints import router as queues_router
from rappit.sync.endpoints import router as sync_router
from rappit.webhooks.endpoints import router as webhooks_router

# Every route may refuse in the one documented shape; the schema says so for each of them.
router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
router.include_router(inventory_router)
router.include_router(catalog_router)
router.include_router(channels_router)
router.include_router(orders_router)
router.include_router(fulfillments_router)
router.include_router(webhooks_router)
router.include_router(queues_router)
router.include_router(sync_router)
router.include_router(shopify_webhook_registration_router)
