"""Connected stores and their location-to-warehouse mappings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from rappit.auth.dependencies import CurrentAuth
from rappit.channels import service as channel_service
from rappit.channels.schemas import (
    ChannelCreate,
    ChannelRead,
    ChannelUpdate,
    CustomerDataRead,
    LocationCreate,
    LocationRead,
)
from rappit.channels.service import ChannelService
from rappit.channels.tasks import register_webhooks_job
from rappit.kit.fastapi import DbSession
from rappit.kit.pagination import Page
from rappit.models import ChannelLocation
from rappit.orders.privacy import customer_data
from rappit.queues.enqueue import enqueue
from rappit.runtime import RuntimeDep

router = APIRouter(tags=["channels"])

Limit = Annotated[int, Query(ge=1, le=200)]


def _location_read(location: ChannelLocation, warehouse_code: str) -> LocationRead:
    return LocationRead(
        id=location.id,
        channel_id=location.channel_id,
        external_location_id=location.external_location_id,
        warehouse=warehouse_code,
        stock_master=location.stock_master,
    )


@router.post("/channels", status_code=201)
async def create_channel(
    body: ChannelCreate, auth: CurrentAuth, session: DbSession, runtime: RuntimeDep
) -> ChannelRead:
    channel = await ChannelService(session, auth.organization_id, runtime.secret_box).create(body)
    if runtime.queue is not None:
        # Subscribes the shop's webhooks once the channel is committed: the store being slow
        # or away neither delays nor fails the creation.
        enqueue(session, register_webhooks_job(auth.organization_id, channel.id))
    return ChannelRead.model_validate(channel)


@router.get("/channels")
async def list_channels(
    auth: CurrentAuth,
    session: DbSession,
    runtime: RuntimeDep,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ChannelRead]:
    service = ChannelService(session, auth.organization_id, runtime.secret_box)
    rows, next_cursor = await service.list_channels(cursor=cursor, limit=limit)
    return Page(items=[ChannelRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/channels/{channel_id}")
async def get_channel(
    channel_id: uuid.UUID, auth: CurrentAuth, session: DbSession, runtime: RuntimeDep
) -> ChannelRead:
    service = ChannelService(session, auth.organization_id, runtime.secret_box)
    return ChannelRead.model_validate(await service.get(channel_id))


@router.patch("/channels/{channel_id}")
async def update_channel(
    channel_id: uuid.UUID,
    body: ChannelUpdate,
    auth: CurrentAuth,
    session: DbSession,
    runtime: RuntimeDep,
) -> ChannelRead:
    service = ChannelService(session, auth.organization_id, runtime.secret_box)
    updated = await service.update(channel_id, body)
    if updated.webhooks_to_renew and runtime.queue is not None:
        enqueue(session, register_webhooks_job(auth.organization_id, channel_id, replace=True))
    return ChannelRead.model_validate(updated.channel)


@router.post("/channels/{channel_id}/locations", status_code=201)
async def create_location(
    channel_id: uuid.UUID,
    body: LocationCreate,
    auth: CurrentAuth,
    session: DbSession,
    runtime: RuntimeDep,
) -> LocationRead:
    service = ChannelService(session, auth.organization_id, runtime.secret_box)
    location, warehouse_code = await service.add_location(
        channel_id,
        external_location_id=body.external_location_id,
        warehouse_code=body.warehouse,
        stock_master=body.stock_master,
    )
    return _location_read(location, warehouse_code)


@router.get("/channels/{channel_id}/locations")
async def list_locations(
    channel_id: uuid.UUID,
    auth: CurrentAuth,
    session: DbSession,
    runtime: RuntimeDep,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[LocationRead]:
    service = ChannelService(session, auth.organization_id, runtime.secret_box)
    rows, next_cursor = await service.list_locations(channel_id, cursor=cursor, limit=limit)
    return Page(items=[_location_read(*row) for row in rows], next_cursor=next_cursor)


@router.get("/channels/{channel_id}/customers/{customer_id}/data")
async def export_customer_data(
    channel_id: uuid.UUID, customer_id: str, auth: CurrentAuth, session: DbSession
) -> CustomerDataRead:
    """Everything held about one of the channel's customers (for a privacy data request)."""
    channel = await channel_service.get_channel(session, auth.organization_id, channel_id)
    orders = await customer_data(session, auth.organization_id, channel.id, customer_id)
    return CustomerDataRead(channel_id=channel.id, customer_id=customer_id, orders=orders)
