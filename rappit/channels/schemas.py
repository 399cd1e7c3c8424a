from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from rappit.models import ChannelType, StockMaster

SHOPIFY_DEFAULT_API_VERSION = "2026-10"
MAX_SECRET_LENGTH = 2000

_SHOPIFY_HOST = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_WITH_PORT = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*(?::\d{{1,5}})?$")


def normalize_shop_domain(channel_type: ChannelType | str, raw: str) -> str:
    """The bare, lowercase host of a shop: ``https://Acme.myshopify.com/admin/`` becomes
    ``acme.myshopify.com``. Raises ValueError for anything that is not a host of that type.

    Webhooks are routed by this value, so one shop must always be spelt the same way.
    """
    value = raw.strip().lower()
    scheme, separator, rest = value.partition("://")
    if separator:
        if scheme not in ("http", "https"):
            raise ValueError("must be a host name, not a URL with another scheme than https")
        value = rest
    host = re.split(r"[/?#]", value, maxsplit=1)[0]
    if ChannelType(channel_type) == ChannelType.SHOPIFY:
        if not _SHOPIFY_HOST.fullmatch(host):
            raise ValueError("must be the shop's myshopify.com domain, e.g. 'acme.myshopify.com'")
    elif len(host) > 253 or not _HOST_WITH_PORT.fullmatch(host):
        raise ValueError("must be the shop's host name, e.g. 'shop.example.com'")
    return host


def default_api_version(channel_type: ChannelType | str) -> str | None:
    return SHOPIFY_DEFAULT_API_VERSION if ChannelType(channel_type) == ChannelType.SHOPIFY else None


def _check_base_url(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry credentials, a query or a fragment")
    # Callers append API paths to it, so one spelling without the trailing slash.
    return value.rstrip("/")


def _check_secret(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    # Surrounding whitespace is a copy-and-paste accident, never part of a token.
    stripped = value.get_secret_value().strip()
    if not stripped:
        raise ValueError("must not be empty")
    if len(stripped) > MAX_SECRET_LENGTH:
        raise ValueError(f"must be at most {MAX_SECRET_LENGTH} characters")
    return SecretStr(stripped)


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ApiVersion = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$",
    ),
]
BaseUrl = Annotated[str | None, Field(max_length=500), AfterValidator(_check_base_url)]
Secret = Annotated[SecretStr, AfterValidator(_check_secret)]
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
WarehouseCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)
]


class ChannelSettings(BaseModel):
    """Behaviour switches of a channel. Unknown keys are refused so a typo is not ignored."""

    model_config = ConfigDict(extra="forbid")

    reserve_on_authorized: bool = Field(
        default=False,
        description="Reserve stock when the payment is authorised, not only once it is paid.",
    )


class ChannelSettingsRead(BaseModel):
    reserve_on_authorized: bool = False


class ChannelCreate(BaseModel):
    type: ChannelType
    name: Name
    shop_domain: str = Field(max_length=300, description="e.g. acme.myshopify.com")
    access_token: Secret
    webhook_secret: Secret
    api_version: ApiVersion | None = Field(
        default=None, description=f"Default for Shopify: {SHOPIFY_DEFAULT_API_VERSION}"
    )
    api_base_url: BaseUrl = Field(
        default=None, description="Where the channel's API is reached; default https://{shop}"
    )
    settings: ChannelSettings = Field(default_factory=ChannelSettings)

    @field_validator("shop_domain")
    @classmethod
    def _normalize_shop_domain(cls, value: str, info: ValidationInfo) -> str:
        channel_type = info.data.get("type")
        if channel_type is None:
            # The type itself was invalid and is reported on its own.
            return value
        return normalize_shop_domain(channel_type, value)


class ChannelSettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reserve_on_authorized: bool | None = None

    @field_validator("reserve_on_authorized")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool | None:
        if value is None:
            raise ValueError("must be true or false")
        return value


class ChannelUpdate(BaseModel):
    """Fields left out are unchanged. ``api_version`` or ``api_base_url`` set to null go back
    to the default of the channel type."""

    name: Name | None = None
    api_version: ApiVersion | None = None
    api_base_url: BaseUrl = None
    settings: ChannelSettingsPatch | None = None
    access_token: Secret | None = None
    webhook_secret: Secret | None = None

    @field_validator("name", "settings", "access_token", "webhook_secret")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Only an explicit null reaches this (defaults are not validated).
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it unchanged")
        return value


class ChannelRead(BaseModel):
    """What the API shows of a channel: never a credential, not even masked."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: ChannelType
    name: str
    shop_domain: str
    status: str
    api_version: str | None
    api_base_url: str | None
    settings: ChannelSettingsRead
    created_at: datetime


class LocationCreate(BaseModel):
    # Shopify sends numeric ids; they are kept as text like every external id.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    external_location_id: ExternalId
    warehouse: WarehouseCode = Field(description="Warehouse code")
    stock_master: StockMaster = Field(
        default=StockMaster.RAPPIT,
        description="'rappit': Rappit's levels are pushed to the channel; 'channel': the "
        "channel's stock updates set Rappit's on-hand at this location",
    )


class LocationRead(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    external_location_id: str
    warehouse: str
    stock_master: str


class CustomerDataRead(BaseModel):
    channel_id: uuid.UUID
    customer_id: str
    orders: list[dict[str, Any]]
