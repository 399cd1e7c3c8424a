"""What the fulfilment domain needs from a channel to write a fulfilment back to it
(``FulfillmentTarget``), and the registry of targets per channel type.

The domain knows channels only through this protocol; each integration provides one target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from rappit.fulfillments.service import Tracking
from rappit.models import Channel


class FulfillmentRefused(Exception):
    """The channel will not take this fulfilment or change, and trying again as is cannot help
    (the order was cancelled there, its fulfilment order is closed or on hold, fewer units are
    left to fulfil there, the token lost its scope...). The message says why, for a person."""


@dataclass(frozen=True)
class OutboundLine:
    external_item_id: str
    quantity: int


@dataclass(frozen=True)
class OutboundFulfillment:
    """A fulfilment to create in the channel, described by the channel's own line ids."""

    external_order_id: str
    lines: tuple[OutboundLine, ...]
    tracking: Tracking
    notify_customer: bool
    # An earlier attempt sent this create and never learnt its outcome: the channel may hold
    # it already, so the target looks for it before creating another.
    may_exist: bool = False
    # Channel fulfilment ids other fulfilments of the order already stand for: never adopted.
    known_external_ids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ChannelFulfillmentRef:
    external_id: str
    # The tracking the channel holds for it (differs from what was asked when an existing
    # fulfilment was adopted after a tracking change).
    tracking: Tracking
    # True when an existing fulfilment (made by an earlier attempt) was found and nothing new
    # was created.
    adopted: bool = False
    # The channel's updated_at of the fulfilment, when it says.
    updated_at: datetime | None = None


class FulfillmentTarget(Protocol):
    async def create(
        self, channel: Channel, fulfillment: OutboundFulfillment
    ) -> ChannelFulfillmentRef: ...

    async def update_tracking(
        self,
        channel: Channel,
        external_fulfillment_id: str,
        tracking: Tracking,
        *,
        notify_customer: bool,
    ) -> datetime | None:
        """Returns the channel's updated_at of the fulfilment after the change, if known."""
        ...


class FulfillmentTargets:
    """Targets by channel type, filled at wiring time."""

    def __init__(self) -> None:
        self._targets: dict[str, FulfillmentTarget] = {}

    def register(self, channel_type: str, target: FulfillmentTarget) -> None:
        if channel_type in self._targets:
            raise ValueError(f"a fulfilment target for {channel_type} is already registered")
        self._targets[channel_type] = target

    def get(self, channel_type: str) -> FulfillmentTarget | None:
        return self._targets.get(channel_type)
