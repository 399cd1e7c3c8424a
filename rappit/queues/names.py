"""Queue names: stable across deploys, shared with any Node BullMQ tooling reading the same
Redis."""

from __future__ import annotations

from enum import StrEnum


class QueueName(StrEnum):
    WEBHOOK_PROCESSING = "webhook-processing"
    SHOPIFY_SYNC = "shopify-sync"
    WOOCOMMERCE_SYNC = "woocommerce-sync"
    CHANNEL_SYNC = "channel-sync"
    SHIPMENT_CREATE = "shipment-create"
    SHIPMENT_TRACKING = "shipment-tracking"
    DEAD_LETTER = "dead-letter"


# The queues workers take jobs from; dead-letter only holds copies for people to look at.
WORK_QUEUES: tuple[QueueName, ...] = tuple(q for q in QueueName if q != QueueName.DEAD_LETTER)
ALL_QUEUES: tuple[QueueName, ...] = tuple(QueueName)


def parse_queue(name: str) -> QueueName:
    try:
        return QueueName(name)
    except ValueError:
        known = ", ".join(q.value for q in QueueName)
        raise ValueError(f"unknown queue '{name}' (known: {known})") from None
