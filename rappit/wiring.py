"""Wiring of the background side: which handler runs which job, which jobs are periodic, and
how workers are configured. The queue package knows no domain; this module introduces them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from rappit.channels import tasks as channel_tasks
from rappit.config import Settings
from rappit.fulfillments import tasks as fulfillment_tasks
from rappit.fulfillments.target import FulfillmentTargets
from rappit.fulfillments.writeback import writeback_handler
from rappit.integrations.shopify import fulfillments as shopify_fulfillments
from rappit.integrations.shopify import inventory_push as shopify_inventory_push
from rappit.integrations.shopify import sync as shopify_sync
from rappit.integrations.shopify import webhook_registration as shopify_webhook_registration
from rappit.integrations.shopify import webhook_topics as shopify_webhook_topics
from rappit.inventory import tasks as inventory_tasks
from rappit.inventory.push import InventoryTargets, push_handler
from rappit.models import ChannelType
from rappit.queues import scheduler
from rappit.queues.names import WORK_QUEUES, QueueName
from rappit.queues.scheduler import PeriodicJob
from rappit.queues.sweeper import sweep_handler
from rappit.queues.worker import HandlerRegistry, WorkerManager, WorkerOptions
from rappit.runtime import Runtime
from rappit.sync import tasks as sync_tasks
from rappit.sync.processing import run_handler
from rappit.sync.reconciliation import reconcile_handler
from rappit.sync.service import SyncRegistry
from rappit.webhooks import tasks as webhook_tasks
from rappit.webhooks.processing import TopicRegistry, process_event_handler

logger = logging.getLogger(__name__)


def handler_registry(runtime: Runtime) -> HandlerRegistry:
    assert runtime.queue is not None, "workers need a queue client"
    settings = runtime.settings
    registry = HandlerRegistry()
    registry.register(
        QueueName.WEBHOOK_PROCESSING,
        webhook_tasks.PROCESS_JOB,
        process_event_handler(runtime.sessionmaker, webhook_topics()),
    )
    pullers = sync_pullers(runtime)
    for queue in (QueueName.SHOPIFY_SYNC, QueueName.WOOCOMMERCE_SYNC):
        registry.register(queue, sync_tasks.RUN_JOB, run_handler(runtime.sessionmaker, pullers))
    registry.register(
        QueueName.SHOPIFY_SYNC,
        sync_tasks.SWEEP_JOB,
        sweep_handler(
            runtime.sessionmaker,
            runtime.queue,
            sync_tasks.pending_run_jobs,
            older_than_s=settings.sweep_after_s,
        ),
    )
    registry.register(
        QueueName.SHOPIFY_SYNC,
        sync_tasks.RECONCILE_JOB,
        reconcile_handler(
            runtime.sessionmaker,
            pullers,
            interval_s=settings.reconcile_interval_s,
            window_hours=settings.reconcile_window_hours,
        ),
    )
    registry.register(
        QueueName.CHANNEL_SYNC,
        channel_tasks.REGISTER_WEBHOOKS_JOB,
        shopify_webhook_registration.register_handler(
            runtime.sessionmaker, shopify_webhook_registration.WebhookRegistrar.for_runtime(runtime)
        ),
    )
    registry.register(
        QueueName.CHANNEL_SYNC,
        channel_tasks.CHECK_WEBHOOKS_JOB,
        channel_tasks.check_webhooks_handler(
            runtime.sessionmaker,
            runtime.queue,
            [ChannelType.SHOPIFY],
            enabled=webhook_check_enabled(settings),
        ),
    )
    registry.register(
        QueueName.CHANNEL_SYNC,
        fulfillment_tasks.WRITEBACK_JOB,
        writeback_handler(runtime.sessionmaker, fulfillment_targets(runtime)),
    )
    registry.register(
        QueueName.CHANNEL_SYNC,
        fulfillment_tasks.SWEEP_JOB,
        sweep_handler(
            runtime.sessionmaker,
            runtime.queue,
            fulfillment_tasks.pending_writeback_jobs,
            older_than_s=settings.sweep_after_s,
        ),
    )
    registry.register(
        QueueName.CHANNEL_SYNC,
        inventory_tasks.PUSH_JOB,
        push_handler(
            runtime.sessionmaker,
            inventory_targets(runtime),
            claim_timeout_s=settings.inventory_push_claim_timeout_s,
        ),
    )
    registry.register(
        QueueName.CHANNEL_SYNC,
        inventory_tasks.SWEEP_JOB,
        sweep_handler(
            runtime.sessionmaker,
            runtime.queue,
            inventory_tasks.pending_push_jobs_source(
                debounce_ms=settings.inventory_push_debounce_ms,
                claim_timeout_s=settings.inventory_push_claim_timeout_s,
            ),
            older_than_s=settings.sweep_after_s,
        ),
    )
    registry.register(
        QueueName.WEBHOOK_PROCESSING,
        webhook_tasks.SWEEP_JOB,
        sweep_handler(
            runtime.sessionmaker,
            runtime.queue,
            webhook_tasks.pending_process_jobs,
            older_than_s=settings.sweep_after_s,
        ),
    )
    return registry


def webhook_topics() -> TopicRegistry:
    topics = TopicRegistry()
    shopify_webhook_topics.register(topics)
    return topics


def sync_pullers(runtime: Runtime) -> SyncRegistry:
    assert runtime.queue is not None, "pullers share their rate limits through Redis"
    registry = SyncRegistry()
    shopify_sync.register(
        registry, runtime.secret_box, runtime.queue.redis, runtime.settings.queue_prefix
    )
    return registry


def fulfillment_targets(runtime: Runtime) -> FulfillmentTargets:
    assert runtime.queue is not None, "writers share the shop's rate limits through Redis"
    targets = FulfillmentTargets()
    shopify_fulfillments.register(
        targets, runtime.secret_box, runtime.queue.redis, runtime.settings.queue_prefix
    )
    return targets


def inventory_targets(runtime: Runtime) -> InventoryTargets:
    assert runtime.queue is not None, "pushes share the shop's rate limits through Redis"
    targets = InventoryTargets()
    shopify_inventory_push.register(
        targets,
        runtime.secret_box,
        runtime.queue.redis,
        runtime.settings.queue_prefix,
        batch_size=runtime.settings.inventory_push_batch_size,
    )
    return targets


def webhook_check_enabled(settings: Settings) -> bool:
    """Subscriptions are Rappit's to keep only with a base URL to point them at."""
    return bool(settings.webhook_base_url) and settings.webhook_check_interval_s > 0


def periodic_jobs(settings: Settings) -> list[PeriodicJob]:
    jobs = [
        PeriodicJob(
            "sync-sweep",
            QueueName.SHOPIFY_SYNC,
            sync_tasks.SWEEP_JOB,
            settings.sweep_interval_s * 1000,
        ),
        PeriodicJob(
            "webhooks-sweep",
            QueueName.WEBHOOK_PROCESSING,
            webhook_tasks.SWEEP_JOB,
            settings.sweep_interval_s * 1000,
        ),
        PeriodicJob(
            "fulfillments-sweep",
            QueueName.CHANNEL_SYNC,
            fulfillment_tasks.SWEEP_JOB,
            settings.sweep_interval_s * 1000,
        ),
        PeriodicJob(
            "inventory-push-sweep",
            QueueName.CHANNEL_SYNC,
            inventory_tasks.SWEEP_JOB,
            settings.sweep_interval_s * 1000,
        ),
    ]
    if webhook_check_enabled(settings):
        # One job asks for every active channel's webhook registration (rappit.channels.tasks).
        jobs.append(
            PeriodicJob(
                "channel-webhooks-check",
                QueueName.CHANNEL_SYNC,
                channel_tasks.CHECK_WEBHOOKS_JOB,
                settings.webhook_check_interval_s * 1000,
            )
        )
    if settings.reconcile_interval_s > 0:
        # One job starts every active channel's reconciliation (rappit.sync.reconciliation).
        jobs.append(
            PeriodicJob(
                "sync-reconcile",
                QueueName.SHOPIFY_SYNC,
                sync_tasks.RECONCILE_JOB,
                settings.reconcile_interval_s * 1000,
            )
        )
    return jobs


def worker_options(
    settings: Settings, concurrency: int | None = None
) -> dict[QueueName, WorkerOptions]:
    return {
        queue: WorkerOptions(
            concurrency=concurrency
            or settings.worker_concurrency.get(queue.value, settings.worker_default_concurrency),
            lock_duration_ms=settings.job_lock_duration_ms,
            stalled_interval_ms=settings.job_stalled_interval_ms,
            drain_delay_s=settings.worker_drain_delay_s,
            reconnect_delay_ms=settings.worker_reconnect_delay_ms,
        )
        for queue in WORK_QUEUES
    }


@dataclass
class Background:
    """Workers (and optionally the scheduler) inside one process: ``rappit worker``,
    ``rappit scheduler`` and the embedded ``rappit serve``."""

    runtime: Runtime
    queues: Sequence[QueueName] = WORK_QUEUES
    concurrency: int | None = None
    run_workers: bool = True
    run_scheduler: bool = True
    registry: HandlerRegistry | None = None
    _manager: WorkerManager | None = field(default=None, init=False)
    _scheduler_task: asyncio.Task[None] | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def start(self) -> None:
        client = self.runtime.queue
        assert client is not None, "background work needs a queue client"
        if self.run_workers:
            registry = self.registry or handler_registry(self.runtime)
            self._manager = WorkerManager(
                client,
                registry,
                list(self.queues),
                worker_options(self.runtime.settings, self.concurrency),
            )
            self._manager.start()
        if self.run_scheduler:
            self._scheduler_task = asyncio.create_task(
                scheduler.run(client, periodic_jobs(self.runtime.settings), self._stop)
            )

    async def stop(self) -> bool:
        self._stop.set()
        finished = True
        if self._manager is not None:
            finished = await self._manager.stop(self.runtime.settings.worker_shutdown_timeout_s)
        if self._scheduler_task is not None:
            await self._scheduler_task
        return finished
