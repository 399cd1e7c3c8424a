"""A webhook worker in its own process that stops dead in the middle of an event: the order is
written (flushed, not committed) when it announces itself and waits to be killed.

Usage: python -m tests.support.crashing_webhook_worker DATABASE_URL REDIS_URL PREFIX MARKER_DIR
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from rappit.kit.db import create_engine, create_sessionmaker
from rappit.orders.service import OrderService
from rappit.queues.client import QueueClient
from rappit.queues.names import QueueName
from rappit.queues.worker import QueueWorker, WorkerOptions
from rappit.webhooks.processing import process_event_handler
from rappit.wiring import webhook_topics


async def main(database_url: str, redis_url: str, prefix: str, marker_dir: Path) -> None:
    original = OrderService.create_or_update_from_channel

    async def upsert_then_hang(self: OrderService, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        await self.session.flush()
        (marker_dir / "mid-event").write_text("1")
        await asyncio.sleep(3600)
        return result

    OrderService.create_or_update_from_channel = upsert_then_hang  # type: ignore[method-assign]
    engine = create_engine(database_url)
    client = QueueClient(redis_url, prefix=prefix, attempts=3, backoff_ms=50)
    worker = QueueWorker(
        QueueName.WEBHOOK_PROCESSING,
        {"webhooks.process": process_event_handler(create_sessionmaker(engine), webhook_topics())},
        client,
        WorkerOptions(concurrency=1, lock_duration_ms=2000, stalled_interval_ms=1000),
    )
    worker.start()
    (marker_dir / "ready").write_text("1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
