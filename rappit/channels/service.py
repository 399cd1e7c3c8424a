"""Channel use cases: connect a store, change its settings and credentials, map its locations
to warehouses, and give integrations the decrypted credentials they need.

Credentials (access token, webhook secret and the previous webhook secret kept during a
rotation) are one JSON document encrypted with the runtime's SecretBox. Nothing here logs,
returns or raises with a credential in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rappit.channels.repository import ChannelRepository, channel_by_shop_domain
from rappit.channels.schemas import (
    ChannelCreate,
    ChannelUpdate,
    default_api_version,
    normalize_shop_domain,
)
from rappit.inventory.lookups import warehouse_by_code
from rappit.kit.crypto import SecretBox
from rappit.kit.errors import ConfigurationError, Conflict, NotFound
from rappit.kit.pagination import paginate
from rappit.models import Channel, ChannelLocation, ChannelStatus, ChannelType, StockMaster


@dataclass(frozen=True, repr=False)
class ChannelCredentials:
    access_token: str
    webhook_secret: str
    # The secret replaced by the last rotation: webhooks signed with it still verify until
    # the store has switched over.
    previous_webhook_secret: str | None = None

    def __repr__(self) -> str:
        previous = "None" if self.previous_webhook_secret is None else "'***'"
        return (
            "ChannelCredentials(access_token='***', webhook_secret='***', "
            f"previous_webhook_secret={previous})"
        )

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """The secrets an incoming webhook signature may be checked against, current first."""
        if self.previous_webhook_secret is None:
            return (self.webhook_secret,)
        return (self.webhook_secret, self.previous_webhook_secret)

    def replaced(
        self, *, access_token: str | None = None, webhook_secret: str | None = None
    ) -> ChannelCredentials:
        """New credentials; a changed webhook secret moves the current one to ``previous``."""
        previous = self.previous_webhook_secret
        current = self.webhook_secret
        if webhook_secret is not None and webhook_secret != current:
            previous, current = current, webhook_secret
        return ChannelCredentials(
            access_token=access_token if access_token is not None else self.access_token,
            webhook_secret=current,
            previous_webhook_secret=previous,
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "webhook_secret": self.webhook_secret,
            "previous_webhook_secret": self.previous_webhook_secret,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ChannelCredentials:
        access_token = document.get("access_token")
        webhook_secret = document.get("webhook_secret")
        previous = document.get("previous_webhook_secret")
        if (
            not isinstance(access_token, str)
            or not isinstance(webhook_secret, str)
            or not (previous is None or isinstance(previous, str))
        ):
            # Names only the shape, never a value.
            raise ConfigurationError("stored channel credentials are incomplete")
        return cls(access_token, webhook_secret, previous)


def credentials_of(channel: Channel, secret_box: SecretBox) -> ChannelCredentials:
    """Decrypt a loaded channel's credentials (ConfigurationError if the key differs)."""
    return ChannelCredentials.from_document(secret_box.decrypt_json(channel.credentials_encrypted))


async def channel_credentials(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    secret_box: SecretBox,
) -> ChannelCredentials:
    """The decrypted credentials of one of the organisation's channels (NotFound otherwise)."""
    channel = await get_channel(session, organization_id, channel_id)
    return credentials_of(channel, secret_box)


async def get_channel(
    session: AsyncSession, organization_id: uuid.UUID, channel_id: uuid.UUID
) -> Channel:
    """One of the organisation's channels; another organisation's id is NotFound."""
    channel = await ChannelRepository(session, organization_id).get(channel_id)
    if channel is None:
        raise NotFound(f"channel '{channel_id}' does not exist")
    return channel


async def get_channel_by_shop_domain(
    session: AsyncSession, channel_type: ChannelType | str, shop_domain: str
) -> Channel | None:
    """The channel of a shop across the whole deployment, for routing incoming webhooks.

    The domain is normalised the same way as at creation, so ``Acme.myshopify.com`` finds
    ``acme.myshopify.com``; a value that is no valid domain finds nothing.
    """
    try:
        channel_type = ChannelType(channel_type)
        domain = normalize_shop_domain(channel_type, shop_domain)
    except ValueError:
        return None
    return await channel_by_shop_domain(session, channel_type.value, domain)


def channel_base_url(channel: Channel) -> str:
    """Where the channel's API is reached: the configured URL, else ``https://{shop}``."""
    return channel.api_base_url or f"https://{channel.shop_domain}"


async def warehouse_for_location(
    session: AsyncSession,
    organization_id: uuid.UUID,
    channel_id: uuid.UUID,
    external_location_id: str,
) -> uuid.UUID | None:
    """The warehouse mapped to a channel location, or None when the location is not mapped."""
    location = await ChannelRepository(session, organization_id).location(
        channel_id, external_location_id
    )
    return None if location is None else location.warehouse_id


@dataclass(frozen=True)
class ChannelUpdated:
    channel: Channel
    # The change touched what the shop's webhook subscriptions depend on: register them again.
    webhooks_to_renew: bool


class ChannelService:
    def __init__(
        self, session: AsyncSession, organization_id: uuid.UUID, secret_box: SecretBox
    ) -> None:
        self.session = session
        self.organization_id = organization_id
        self.secret_box = secret_box
        self.repository = ChannelRepository(session, organization_id)

    async def create(self, data: ChannelCreate) -> Channel:
        credentials = ChannelCredentials(
            access_token=data.access_token.get_secret_value(),
            webhook_secret=data.webhook_secret.get_secret_value(),
        )
        channel = Channel(
            organization_id=self.organization_id,
            type=data.type.value,
            name=data.name,
            shop_domain=data.shop_domain,
            api_version=data.api_version or default_api_version(data.type),
            api_base_url=data.api_base_url,
            status=ChannelStatus.ACTIVE.value,
            credentials_encrypted=self.secret_box.encrypt_json(credentials.to_document()),
            settings=data.settings.model_dump(),
            sync_cursors={},
        )
        # The unique (type, shop_domain) index decides: a shop can be connected only once in
        # the deployment, because webhooks are routed by it.
        await self.repository.add(
            channel,
            Conflict(f"a {data.type.value} channel for '{data.shop_domain}' already exists"),
        )
        return channel

    async def get(self, channel_id: uuid.UUID) -> Channel:
        return await get_channel(self.session, self.organization_id, channel_id)

    async def list_channels(
        self, *, cursor: str | None, limit: int
    ) -> tuple[Sequence[Channel], str | None]:
        return await paginate(
            self.session, self.repository.channels(), Channel.id, cursor=cursor, limit=limit
        )

    async def update(self, channel_id: uuid.UUID, data: ChannelUpdate) -> ChannelUpdated:
        channel = await self.get(channel_id)
        given = data.model_fields_set
        subscribed_with = (channel.api_version, channel.api_base_url)
        if data.name is not None:
            channel.name = data.name
        if "api_version" in given:
            channel.api_version = data.api_version or default_api_version(channel.type)
        if "api_base_url" in given:
            channel.api_base_url = data.api_base_url
        if data.settings is not None:
            # A new dict, so the JSON column is seen as changed; keys not sent are kept.
            channel.settings = {**channel.settings, **data.settings.model_dump(exclude_unset=True)}
        if data.access_token is not None or data.webhook_secret is not None:
            credentials = credentials_of(channel, self.secret_box).replaced(
                access_token=(data.access_token.get_secret_value() if data.access_token else None),
                webhook_secret=(
                    data.webhook_secret.get_secret_value() if data.webhook_secret else None
                ),
            )
            channel.credentials_encrypted = self.secret_box.encrypt_json(credentials.to_document())
        await self.session.flush()
        # A subscription keeps the API version it was created with and lives in the shop the
        # token reaches (a reinstall brings a new token and no subscriptions).
        renew = (
            channel.api_version,
            channel.api_base_url,
        ) != subscribed_with or data.access_token is not None
        return ChannelUpdated(channel, webhooks_to_renew=renew)

    async def add_location(
        self,
        channel_id: uuid.UUID,
        *,
        external_location_id: str,
        warehouse_code: str,
        stock_master: StockMaster = StockMaster.RAPPIT,
    ) -> tuple[ChannelLocation, str]:
        """Map a channel location to a warehouse; returns the row and the warehouse code."""
        channel = await self.get(channel_id)
        warehouse = await warehouse_by_code(self.session, self.organization_id, warehouse_code)
        location = ChannelLocation(
            organization_id=self.organization_id,
            channel_id=channel.id,
            external_location_id=external_location_id,
            warehouse_id=warehouse.id,
            stock_master=stock_master,
        )
        await self.repository.add(
            location,
            Conflict(
                f"location '{external_location_id}' is already mapped on channel '{channel.id}'"
            ),
        )
        return location, warehouse.code

    async def list_locations(
        self, channel_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[list[tuple[ChannelLocation, str]], str | None]:
        channel = await self.get(channel_id)
        rows, next_cursor = await paginate(
            self.session,
            self.repository.locations(channel.id),
            ChannelLocation.id,
            cursor=cursor,
            limit=limit,
        )
        codes = await self.repository.warehouse_codes(row.warehouse_id for row in rows)
        return [(row, codes[row.warehouse_id]) for row in rows], next_cursor
