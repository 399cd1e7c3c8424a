"""The admin API: every domain's router under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from rappit.inventory.endpoints import router as inventory_router

router = APIRouter(prefix="/api/v1")
router.include_router(inventory_router)
