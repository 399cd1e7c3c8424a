"""What one process shares: settings, the database engine, the secret box and the queue
client. Built once by each entry point (API, worker, scheduler, CLI) and closed at exit."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rappit.channels.shop_routes import ShopRoutes
from rappit.config import Settings
from rappit.inventory.push_marks import DEBOUNCE_KEY
from rappit.kit.crypto import SecretBox
from rappit.kit.db import create_engine, create_sessionmaker
from rappit.queues.client import QueueClient
from rappit.queues.embedded import EmbeddedRedis
from rappit.queues.enqueue import SESSION_QUEUE_KEY
from rappit.webhooks.inbox import WebhookInbox

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    secret_box: SecretBox
    queue: QueueClient | None = None
    embedded_redis: EmbeddedRedis | None = None

    # Built on first use (a frozen dataclass still takes cached properties: they are written to
    # the instance's __dict__ directly).
    @cached_property
    def webhook_inbox(self) -> WebhookInbox:
        return WebhookInbox(self.engine, self.queue)

    @cached_property
    def shop_routes(self) -> ShopRoutes:
        return ShopRoutes(
            self.sessionmaker, self.secret_box, ttl_s=self.settings.webhook_route_ttl_s
        )

    async def close(self) -> None:
        inbox = self.__dict__.get("webhook_inbox")
        if inbox is not None:
            await inbox.drain()
        if self.queue is not None:
            await self.queue.close()
        await self.engine.dispose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def redis_url(settings: Settings) -> tuple[str, EmbeddedRedis | None]:
    """The configured Redis, or the embedded one in the data dir (started if none runs there;
    the returned EmbeddedRedis is then this process's to stop)."""
    if settings.redis_url:
        return settings.redis_url, None
    embedded = EmbeddedRedis(settings.data_dir)
    url = embedded.ensure_running()
    return url, embedded if embedded.owned else None


def queue_client(settings: Settings, url: str) -> QueueClient:
    return QueueClient(
        url,
        prefix=settings.queue_prefix,
        attempts=settings.job_attempts,
        backoff_ms=settings.job_backoff_ms,
    )


def build_runtime(settings: Settings, *, with_queue: bool = True) -> Runtime:
    engine = create_engine(
        settings.sqlalchemy_database_url(), pool_size=settings.database_pool_size
    )
    queue: QueueClient | None = None
    embedded: EmbeddedRedis | None = None
    if with_queue:
        url, embedded = redis_url(settings)
        queue = queue_client(settings, url)
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=create_sessionmaker(
            engine,
            info={SESSION_QUEUE_KEY: queue, DEBOUNCE_KEY: settings.inventory_push_debounce_ms},
        ),
        secret_box=SecretBox(settings.resolved_secret_key()),
        queue=queue,
        embedded_redis=embedded,
    )


async def get_runtime(request: Request) -> Runtime:
    # async: a plain def dependency would be run in a thread pool on every request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
