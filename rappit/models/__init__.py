"""All tables, one module each. Importing this package registers every mapping."""

from rappit.models.api_key import ApiKey
from rappit.models.base import Base
from rappit.models.channel import Channel, ChannelStatus, ChannelType
from rappit.models.channel_listing import ChannelListing
from rappit.models.channel_location import ChannelLocation, StockMaster
from rappit.models.fulfillment import Fulfillment, FulfillmentStatus, FulfillmentSyncStatus
from rappit.models.fulfillment_item import FulfillmentItem
from rappit.models.inventory_movement import InventoryMovement, MovementReason
from rappit.models.inventory_push_mark import InventoryPushMark
from rappit.models.order import Order, OrderStatus, PaymentStatus
from rappit.models.order_item import OrderItem
from rappit.models.organization import Organization
from rappit.models.product import Product
from rappit.models.pushed_inventory_level import PushedInventoryLevel
from rappit.models.reservation import Reservation
from rappit.models.sku import Sku
from rappit.models.stock_level import StockLevel
from rappit.models.sync_run import SyncResource, SyncRun, SyncRunStatus
from rappit.models.warehouse import Warehouse
from rappit.models.webhook_event import WebhookEvent, WebhookEventStatus

__all__ = [
    "ApiKey",
    "Base",
    "Channel",
    "ChannelListing",
    "ChannelLocation",
    "ChannelStatus",
    "ChannelType",
    "Fulfillment",
    "FulfillmentItem",
    "FulfillmentStatus",
    "FulfillmentSyncStatus",
    "InventoryMovement",
    "InventoryPushMark",
    "MovementReason",
    "Order",
    "OrderItem",
    "OrderStatus",
    "Organization",
    "PaymentStatus",
    "Product",
    "PushedInventoryLevel",
    "Reservation",
    "Sku",
    "StockLevel",
    "StockMaster",
    "SyncResource",
    "SyncRun",
    "SyncRunStatus",
    "Warehouse",
    "WebhookEvent",
    "WebhookEventStatus",
]
