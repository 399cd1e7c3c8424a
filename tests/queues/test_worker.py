"""Workers on real Redis: processing, idempotent job ids, retries with backoff, the dead-letter
queue and its replay, delayed jobs, graceful shutdown."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from rappit.queues.client import QueueClient
from rappit.queues.jobs import JobRequest
from rappit.queues.names import QueueName
from rappit.queues.worker import (
    Handler,
    HandlerRegistry,
    JobContext,
    PermanentJobError,
    QueueWorker,
    WorkerManager,
    WorkerOptions,
)
from tests.support.waiting import wait_until

QUEUE = QueueName.CHANNEL_SYNC
FAST = WorkerOptions(concurrency=4, lock_duration_ms=2000, stalled_interval_ms=1000)


@dataclass
class Recorder:
    """Remembers every attempt a handler saw, with when it started."""

    calls: list[tuple[str, int, float]] = field(default_factory=list)

    def seen(self, context: JobContext) -> None:
        self.calls.append((context.job_id, context.attempt, time.monotonic()))

    def attempts(self, job_id: str) -> list[int]:
        return [attempt for seen_id, attempt, _ in self.calls if seen_id == job_id]


Workers = Callable[..., QueueWorker]


@pytest.fixture
async def start_worker(queue_client: QueueClient) -> AsyncIterator[Workers]:
    started: list[QueueWorker] = []

    def start(
        handlers: dict[str, Handler], queue: QueueName = QUEUE, options: WorkerOptions = FAST
    ) -> QueueWorker:
        worker = QueueWorker(queue, handlers, queue_client, options)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.close(timeout_s=5)


async def test_a_job_is_processed(queue_client: QueueClient, start_worker: Workers) -> None:
    seen: list[dict[str, object]] = []

    async def handle(context: JobContext) -> str:
        seen.append(context.data)
        return "ok"

    start_worker({"echo": handle})
    await queue_client.add(JobRequest(QUEUE, "echo", "echo.1", {"n": 1}))

    await wait_until(lambda: _is(queue_client, "echo.1", "completed"), message="echo.1 completed")
    assert seen == [{"n": 1}]


async def _is(client: QueueClient, job_id: str, state: str, queue: QueueName = QUEUE) -> bool:
    return await client.job_state(queue, job_id) == state


async def test_the_same_job_id_added_twice_runs_once(
    queue_client: QueueClient, start_worker: Workers
) -> None:
    recorder = Recorder()

    async def handle(context: JobContext) -> None:
        recorder.seen(context)

    request = JobRequest(QUEUE, "once", "once.abc", {"n": 1})
    await queue_client.add(request)
    await queue_client.add(request)
    await queue_client.add_many([request, request])
    start_worker({"once": handle})
    await wait_until(lambda: _is(queue_client, "once.abc", "completed"), message="completion")
    # Added again after completion: still the same job, not a second run.
    await queue_client.add(request)
    await asyncio.sleep(0.3)
    assert recorder.attempts("once.abc") == [1]


async def test_retries_back_off_exponentially_then_dead_letter(
    queue_client: QueueClient, start_worker: Workers
) -> None:
    recorder = Recorder()

    async def always_fails(context: JobContext) -> None:
        recorder.seen(context)
        raise ConnectionError(f"vendor down (attempt {context.attempt})")

    start_worker({"flaky": always_fails})
    await queue_client.add(JobRequest(QUEUE, "flaky", "flaky.1", {"organization_id": "org-1"}))

    await wait_until(lambda: _is(queue_client, "flaky.1", "failed"), message="final failure")
    assert recorder.attempts("flaky.1") == [1, 2, 3]  # the client's attempts=3
    starts = [at for _, _, at in recorder.calls]
    gaps_ms = [(b - a) * 1000 for a, b in itertools.pairwise(starts)]
    # backoff_ms=50: the second try waits at least 50 ms, the third at least 100 ms. (Lower
    # bounds: BullMQ must never retry early; how late depends on the machine.)
    assert gaps_ms[0] >= 50 - 5
    assert gaps_ms[1] >= 100 - 5

    letters = await queue_client.dead_letters()
    assert [(d.id, d.queue, d.name, d.job_id, d.attempts) for d in letters] == [
        ("channel-sync.flaky.1", "channel-sync", "flaky", "flaky.1", 3)
    ]
    assert letters[0].error == "ConnectionError: vendor down (attempt 3)"
    assert letters[0].data == {"organization_id": "org-1"}
    assert letters[0].organization_id == "org-1"


async def test_a_permanent_error_fails_at_once(
    queue_client: QueueClient, start_worker: Workers
) -> None:
    recorder = Recorder()

    async def refuses(context: JobContext) -> None:
        recorder.seen(context)
        raise PermanentJobError("order 42 does not exist")

    start_worker({"refuse": refuses})
    await queue_client.add(JobRequest(QUEUE, "refuse", "refuse.1"))
    await wait_until(lambda: _is(queue_client, "refuse.1", "failed"), message="failure")
    assert recorder.attempts("refuse.1") == [1]
    letter = await queue_client.get_dead_letter("channel-sync.refuse.1")
    assert letter is not None
    assert letter.error == "PermanentJobError: order 42 does not exist"


async def test_a_job_nobody_handles_goes_to_dead_letter(
    queue_client: QueueClient, start_worker: Workers
) -> None:
    start_worker({})
    await queue_client.add(JobRequest(QUEUE, "mystery", "mystery.1"))
    await wait_until(lambda: _is(queue_client, "mystery.1", "failed"), message="failure")
    letter = await queue_client.get_dead_letter("channel-sync.mystery.1")
    assert letter is not None
    assert letter.error == "PermanentJobError: no handler for job 'mystery' on channel-sync"


async def test_replay_from_dead_letter_runs_the_job_again(
    queue_client: QueueClient, start_worker: Workers
) -> None:
    recorder = Recorder()
    healthy = asyncio.Event()

    async def handle(context: JobContext) -> None:
        recorder.seen(context)
        if not healthy.is_set():
            raise PermanentJobError("bad data")

    start_worker({"fix": handle})
    await queue_client.add(JobRequest(QUEUE, "fix", "fix.1", {"v": 1}))
    await wait_until(lambda: _is(queue_client, "fix.1", "failed"), message="failure")

    healthy.set()  # the cause was fixed
    letter = await queue_client.get_dead_letter("channel-sync.fix.1")
    assert letter is not None
    await queue_client.replay(letter)

    await wait_until(lambda: _is(queue_client, "fix.1", "completed"), message="replayed run")
    assert recorder.attempts("fix.1") == [1, 1]
    assert await queue_client.dead_letters() == []


async def test_purge_dead_letters_by_organisation(queue_client: QueueClient) -> None:
    for org, job_id in [("a", "j.1"), ("b", "j.2"), ("a", "j.3")]:
        await queue_client.add(JobRequest(QUEUE, "x", job_id, {"organization_id": org}))
        job = await queue_client.get_job(QUEUE, job_id)
        assert job is not None
        await queue_client.dead_letter(QUEUE, job, "boom")
    assert await queue_client.purge_dead_letters(organization_id="a") == 2
    assert [d.job_id for d in await queue_client.dead_letters()] == ["j.2"]


async def test_a_job_delayed_ten_seconds_runs(
    queue_client: QueueClient, start_worker: Workers
) -> None:
    """Guards against a read timeout on the worker's blocking connection: with one, a delay
    longer than it is never picked up."""
    done = asyncio.Event()

    async def handle(_: JobContext) -> None:
        done.set()

    start_worker({"later": handle})
    added = time.monotonic()
    await queue_client.add(JobRequest(QUEUE, "later", "later.1", delay_ms=10_000))
    await asyncio.wait_for(done.wait(), timeout=40)
    assert time.monotonic() - added >= 10 - 0.05
    await wait_until(lambda: _is(queue_client, "later.1", "completed"), message="completed")


async def test_graceful_shutdown_waits_for_the_job_in_flight(
    queue_client: QueueClient,
) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(_: JobContext) -> None:
        started.set()
        await asyncio.sleep(1.0)
        finished.set()

    registry = HandlerRegistry()
    registry.register(QUEUE, "slow", slow)
    manager = WorkerManager(queue_client, registry, [QUEUE], {QUEUE: FAST})
    manager.start()
    await queue_client.add(JobRequest(QUEUE, "slow", "slow.1"))
    await asyncio.wait_for(started.wait(), timeout=20)

    assert await manager.stop(timeout_s=10) is True
    assert finished.is_set()
    assert await _is(queue_client, "slow.1", "completed")


async def test_registering_two_handlers_for_one_job_is_refused() -> None:
    async def one(_: JobContext) -> None: ...
    async def two(_: JobContext) -> None: ...

    registry = HandlerRegistry()
    registry.register(QUEUE, "x", one)
    registry.register(QUEUE, "x", one)  # the same handler again is fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register(QUEUE, "x", two)
