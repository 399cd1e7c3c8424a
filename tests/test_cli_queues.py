"""The queue commands of ``rappit``: ``queue-stats``, ``dlq``, ``worker`` and ``scheduler``, on
real Redis under the test's own key prefix.

The in-process commands run in a thread (``asyncio.to_thread``): the CLI runs its own event loop,
as it does in a shell, while the test seeds and checks Redis with the ``queue_client`` fixture.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from rappit.cli import app
from rappit.kit.migrations import upgrade
from rappit.queues.client import QueueClient
from rappit.queues.embedded import EmbeddedRedis
from rappit.queues.jobs import JobRequest
from rappit.queues.names import ALL_QUEUES, QueueName
from rappit.webhooks.tasks import SWEEP_JOB

ZERO = {"waiting": 0, "active": 0, "delayed": 0, "completed": 0, "failed": 0}
WORK_QUEUE_NAMES = (
    "webhook-processing, shopify-sync, woocommerce-sync, channel-sync, shipment-create, "
    "shipment-tracking"
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _environment(data_dir: Path, redis_url: str | None, prefix: str) -> dict[str, str | None]:
    # None removes a variable: the developer's own RAPPIT_* settings must not leak in.
    return {
        "RAPPIT_DATA_DIR": str(data_dir),
        "RAPPIT_REDIS_URL": redis_url,
        "RAPPIT_QUEUE_PREFIX": prefix,
        "RAPPIT_DATABASE_URL": None,
        "RAPPIT_ENV": None,
        "RAPPIT_SECRET_KEY": None,
        # Wide enough for whole ids and paths in tables and panels.
        "COLUMNS": "200",
    }


@pytest.fixture
def runner(data_dir: Path, redis_url: str, queue_client: QueueClient) -> CliRunner:
    """Commands see the test's Redis and key prefix, so they see the test's jobs."""
    return CliRunner(env=_environment(data_dir, redis_url, queue_client.prefix))


async def _invoke(
    runner: CliRunner,
    args: list[str],
    *,
    input: str | None = None,
    env: dict[str, str | None] | None = None,
) -> Result:
    return await asyncio.to_thread(lambda: runner.invoke(app, args, input=input, env=env))


def _assert_one_line_error(result: Result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr == f"error: {expected}\n"


async def _dead_letter(
    queue_client: QueueClient, queue: QueueName, job_id: str, error: str = "ValueError: boom"
) -> str:
    """A dead-letter copy of a job, made as the worker makes it after the last attempt."""
    await queue_client.add(JobRequest(queue, "process", job_id, {"organization_id": "org-1"}))
    job = await queue_client.get_job(queue, job_id)
    assert job is not None
    await queue_client.dead_letter(queue, job, error)
    return f"{queue.value}.{job_id}"


async def _wait_for(condition: Callable[[], Awaitable[bool]], message: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {message}"
        await asyncio.sleep(0.1)


# --- queue-stats ---------------------------------------------------------------------------------


async def _seed_counts(queue_client: QueueClient) -> dict[str, dict[str, int]]:
    for n in range(2):
        await queue_client.add(JobRequest(QueueName.WEBHOOK_PROCESSING, "process", f"evt-{n}"))
    await queue_client.add(
        JobRequest(QueueName.SHIPMENT_TRACKING, "poll", "track-1", delay_ms=3_600_000)
    )
    await _dead_letter(queue_client, QueueName.CHANNEL_SYNC, "push-1")
    expected = {name.value: dict(ZERO) for name in ALL_QUEUES}
    # The dead-lettered original still waits on its queue (no worker ran).
    expected["webhook-processing"]["waiting"] = 2
    expected["shipment-tracking"]["delayed"] = 1
    expected["channel-sync"]["waiting"] = 1
    expected["dead-letter"]["waiting"] = 1
    return expected


async def test_queue_stats_json_prints_the_counts_of_all_seven_queues(
    runner: CliRunner, queue_client: QueueClient
) -> None:
    expected = await _seed_counts(queue_client)

    result = await _invoke(runner, ["queue-stats", "--json"])

    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1
    counts = json.loads(result.stdout)
    assert counts == expected
    assert list(counts) == [name.value for name in ALL_QUEUES]


async def test_queue_stats_shows_a_table(runner: CliRunner, queue_client: QueueClient) -> None:
    await _seed_counts(queue_client)

    result = await _invoke(runner, ["queue-stats"])

    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if (cells := [cell.strip() for cell in line.strip("│ ").split("│")])
        and cells[0] in {name.value for name in ALL_QUEUES}
    }
    assert rows == {
        "webhook-processing": ["2", "0", "0", "0", "0"],
        "shopify-sync": ["0", "0", "0", "0", "0"],
        "woocommerce-sync": ["0", "0", "0", "0", "0"],
        "channel-sync": ["1", "0", "0", "0", "0"],
        "shipment-create": ["0", "0", "0", "0", "0"],
        "shipment-tracking": ["0", "0", "1", "0", "0"],
        "dead-letter": ["1", "0", "0", "0", "0"],
    }


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [["queue-stats"], ["dlq", "list"], ["dlq", "retry", "--all"], ["scheduler"], ["worker"]],
)
async def test_unreachable_redis_fails_with_one_line(runner: CliRunner, command: list[str]) -> None:
    url = f"redis://:s3cret@127.0.0.1:{_closed_port()}/0"

    result = await _invoke(runner, command, env={"RAPPIT_REDIS_URL": url})

    assert result.exit_code == 1, result.output
    # (The worker first creates the embedded default's schema, and says so.)
    assert result.stderr.splitlines()[-1].startswith(
        f"error: cannot reach Redis at {url.replace('s3cret', '***')}: "
    )
    assert result.stderr.count("error:") == 1
    assert "Traceback" not in result.output
    assert "s3cret" not in result.output


async def test_invalid_redis_url_fails_with_one_line(runner: CliRunner) -> None:
    result = await _invoke(runner, ["queue-stats"], env={"RAPPIT_REDIS_URL": "http://redis"})
    _assert_one_line_error(
        result,
        "invalid RAPPIT_REDIS_URL: unsupported Redis URL scheme 'http' (redis, rediss, unix)",
    )


async def test_json_and_watch_do_not_go_together(runner: CliRunner) -> None:
    result = await _invoke(runner, ["queue-stats", "--json", "--watch"])
    _assert_one_line_error(result, "--json prints the counts once; leave out --watch")


async def test_queue_stats_uses_the_embedded_redis_and_stops_it_again(
    runner: CliRunner, data_dir: Path
) -> None:
    # No RAPPIT_REDIS_URL: the embedded Redis of the data dir, started for this command only.
    result = await _invoke(runner, ["queue-stats", "--json"], env={"RAPPIT_REDIS_URL": None})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {name.value: ZERO for name in ALL_QUEUES}
    embedded = EmbeddedRedis(data_dir)
    assert embedded.directory.is_dir()
    assert not embedded.is_running()


# --- dlq -----------------------------------------------------------------------------------------


async def test_dlq_list_json_and_table(runner: CliRunner, queue_client: QueueClient) -> None:
    first = await _dead_letter(
        queue_client,
        QueueName.WEBHOOK_PROCESSING,
        "evt-1",
        error="KeyError: 'line_items'\nTraceback line two",
    )
    second = await _dead_letter(queue_client, QueueName.SHIPMENT_CREATE, "ship-1")
    letters = {letter.id: letter for letter in await queue_client.dead_letters()}
    originals = {
        first: await queue_client.get_job(QueueName.WEBHOOK_PROCESSING, "evt-1"),
        second: await queue_client.get_job(QueueName.SHIPMENT_CREATE, "ship-1"),
    }
    created = {letter_id: job.timestamp for letter_id, job in originals.items() if job is not None}

    def when(epoch_ms: int) -> datetime:
        return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)

    def parsed(output: str) -> list[dict[str, Any]]:
        """The printed JSON with its times read back as datetimes."""
        items: list[dict[str, Any]] = json.loads(output)
        for item in items:
            item["failed_at"] = datetime.fromisoformat(item["failed_at"])
            item["created_at"] = datetime.fromisoformat(item["created_at"])
        return items

    expected = [
        {
            "id": letter_id,
            "queue": letters[letter_id].queue,
            "name": "process",
            "job_id": letters[letter_id].job_id,
            "data": {"organization_id": "org-1"},
            "error": letters[letter_id].error,
            "attempts": 1,
            "failed_at": when(letters[letter_id].failed_at),
            "created_at": when(created[letter_id]),
        }
        for letter_id in sorted(letters, key=lambda i: (letters[i].failed_at, i))
    ]

    listed = await _invoke(runner, ["dlq", "list", "--json"])

    assert listed.exit_code == 0, listed.output
    assert parsed(listed.stdout) == expected
    assert [item["id"] for item in expected] == [first, second]  # oldest failure first
    assert expected[0]["error"] == "KeyError: 'line_items'\nTraceback line two"

    limited = await _invoke(runner, ["dlq", "list", "--json", "--limit", "1"])
    assert parsed(limited.stdout) == expected[:1]

    table = await _invoke(runner, ["dlq", "list"])
    assert table.exit_code == 0, table.output
    assert first in table.stdout
    assert second in table.stdout
    assert "KeyError: 'line_items'" in table.stdout
    assert "Traceback line two" not in table.stdout  # the error's first line only

    limited_table = await _invoke(runner, ["dlq", "list", "--limit", "1"])
    assert second not in limited_table.stdout
    assert limited_table.stderr == "Showing 1 of 2; see --limit.\n"


async def test_dlq_list_when_empty(runner: CliRunner) -> None:
    assert (await _invoke(runner, ["dlq", "list", "--json"])).stdout == "[]\n"
    assert (await _invoke(runner, ["dlq", "list"])).stdout == "No dead letters.\n"


async def test_dlq_retry_one_puts_the_job_back(
    runner: CliRunner, queue_client: QueueClient
) -> None:
    letter_id = await _dead_letter(queue_client, QueueName.WEBHOOK_PROCESSING, "evt-1")
    other = await _dead_letter(queue_client, QueueName.CHANNEL_SYNC, "push-1")
    await queue_client.queue(QueueName.WEBHOOK_PROCESSING).remove("evt-1")
    assert await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "evt-1") == "unknown"

    result = await _invoke(runner, ["dlq", "retry", letter_id])

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Replayed webhook-processing.evt-1: job evt-1 is back on webhook-processing\n"
    )
    assert await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "evt-1") == "waiting"
    job = await queue_client.get_job(QueueName.WEBHOOK_PROCESSING, "evt-1")
    assert job is not None
    assert job.data == {"organization_id": "org-1"}
    assert [letter.id for letter in await queue_client.dead_letters()] == [other]


async def test_dlq_retry_all(runner: CliRunner, queue_client: QueueClient) -> None:
    await _dead_letter(queue_client, QueueName.WEBHOOK_PROCESSING, "evt-1")
    await _dead_letter(queue_client, QueueName.SHIPMENT_CREATE, "ship-1")

    result = await _invoke(runner, ["dlq", "retry", "--all"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "2 dead letter(s) replayed."
    assert await queue_client.dead_letters() == []
    assert await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "evt-1") == "waiting"
    assert await queue_client.job_state(QueueName.SHIPMENT_CREATE, "ship-1") == "waiting"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nope"], "no dead letter with id 'nope' (see `rappit dlq list`)"),
        ([], "give the ID of a dead letter (see `rappit dlq list`) or --all"),
        (["x", "--all"], "give either an ID or --all, not both"),
    ],
)
async def test_dlq_retry_failures(
    runner: CliRunner, queue_client: QueueClient, args: list[str], expected: str
) -> None:
    letter_id = await _dead_letter(queue_client, QueueName.WEBHOOK_PROCESSING, "evt-1")

    result = await _invoke(runner, ["dlq", "retry", *args])

    _assert_one_line_error(result, expected)
    assert [letter.id for letter in await queue_client.dead_letters()] == [letter_id]


async def test_dlq_purge_yes(runner: CliRunner, queue_client: QueueClient) -> None:
    await _dead_letter(queue_client, QueueName.WEBHOOK_PROCESSING, "evt-1")
    await _dead_letter(queue_client, QueueName.CHANNEL_SYNC, "push-1")

    result = await _invoke(runner, ["dlq", "purge", "--yes"])

    assert result.exit_code == 0, result.output
    assert result.stdout == "2 dead letter(s) purged.\n"
    assert await queue_client.dead_letters() == []
    # The originals are not touched.
    assert await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "evt-1") == "waiting"


async def test_dlq_purge_asks_first(runner: CliRunner, queue_client: QueueClient) -> None:
    letter_id = await _dead_letter(queue_client, QueueName.WEBHOOK_PROCESSING, "evt-1")

    declined = await _invoke(runner, ["dlq", "purge"], input="n\n")

    assert declined.exit_code == 1, declined.output
    assert "Delete 1 dead letter(s)? They cannot be replayed afterwards." in declined.stderr
    assert declined.stderr.endswith("error: nothing purged\n")
    assert [letter.id for letter in await queue_client.dead_letters()] == [letter_id]

    confirmed = await _invoke(runner, ["dlq", "purge"], input="y\n")

    assert confirmed.exit_code == 0, confirmed.output
    # (The runner echoes the typed answer on stdout.)
    assert confirmed.stdout.endswith("\n1 dead letter(s) purged.\n")
    assert await queue_client.dead_letters() == []

    nothing = await _invoke(runner, ["dlq", "purge"])
    assert (nothing.exit_code, nothing.stdout) == (0, "No dead letters.\n")


# --- worker --------------------------------------------------------------------------------------


async def test_worker_refuses_an_unknown_queue(runner: CliRunner) -> None:
    result = await _invoke(runner, ["worker", "--queue", "webhook-processing", "--queue", "nope"])
    _assert_one_line_error(result, f"unknown queue 'nope' (valid: {WORK_QUEUE_NAMES})")


async def test_worker_refuses_the_dead_letter_queue(runner: CliRunner) -> None:
    result = await _invoke(runner, ["worker", "-q", "dead-letter"])
    _assert_one_line_error(
        result,
        "'dead-letter' only keeps copies of failed jobs, no worker takes from it "
        f"(valid: {WORK_QUEUE_NAMES})",
    )


def _process_environment(
    data_dir: Path, redis_url: str, prefix: str, **extra: str
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAPPIT_")}
    env.update(
        RAPPIT_DATA_DIR=str(data_dir),
        RAPPIT_REDIS_URL=redis_url,
        RAPPIT_QUEUE_PREFIX=prefix,
        COLUMNS="200",
    )
    env.update(extra)
    return env


def _executable() -> str:
    return str(Path(sys.executable).parent / "rappit")


async def test_worker_process_takes_jobs_and_stops_on_sigterm(
    tmp_path: Path, data_dir: Path, redis_url: str, queue_client: QueueClient
) -> None:
    database = tmp_path / "worker.db"
    await asyncio.to_thread(upgrade, f"sqlite+aiosqlite:///{database}")
    env = _process_environment(
        data_dir, redis_url, queue_client.prefix, RAPPIT_DATABASE_URL=f"sqlite:///{database}"
    )
    webhooks = queue_client.queue(QueueName.WEBHOOK_PROCESSING)
    # A job the worker can run: the webhook sweeper, against the migrated SQLite file.
    await queue_client.add(JobRequest(QueueName.WEBHOOK_PROCESSING, SWEEP_JOB, "sweep-test"))

    # Files, not pipes: a full pipe would block the worker while the test waits for it.
    with (tmp_path / "stdout").open("w+") as stdout, (tmp_path / "stderr").open("w+") as stderr:
        process = subprocess.Popen(
            [_executable(), "worker", "--queue", "webhook-processing", "--concurrency", "3"],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:

            async def registered() -> bool:
                assert process.poll() is None, f"worker exited early: {stderr.read()}"
                return bool(await webhooks.get_workers_count() >= 1)

            await _wait_for(registered, "the worker to register on webhook-processing", 20)

            async def swept() -> bool:
                state = await queue_client.job_state(QueueName.WEBHOOK_PROCESSING, "sweep-test")
                assert state != "failed", stderr.read()
                return state == "completed"

            await _wait_for(swept, "the sweep job to complete", 20)

            process.send_signal(signal.SIGTERM)
            exit_code = await asyncio.to_thread(process.wait, 15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stdout.seek(0)
        banner = stdout.read()
        stderr.seek(0)
        log = stderr.read()

    assert exit_code == 0, log
    assert "webhook-processing  (concurrency 3)" in banner
    assert "shopify-sync" not in banner
    assert f"SQLite file {database}" in banner
    assert "Worker stopped." in log
    job = await webhooks.getJob("sweep-test")
    assert job.returnvalue == {"resent": 0}

    async def unregistered() -> bool:
        return bool(await webhooks.get_workers_count() == 0)

    await _wait_for(unregistered, "the worker's connection to close", 10)


async def test_scheduler_process_installs_the_periodic_jobs_and_stops_on_sigint(
    tmp_path: Path, data_dir: Path, redis_url: str, queue_client: QueueClient
) -> None:
    env = _process_environment(data_dir, redis_url, queue_client.prefix)
    webhooks = queue_client.queue(QueueName.WEBHOOK_PROCESSING)
    with (tmp_path / "stdout").open("w+") as stdout, (tmp_path / "stderr").open("w+") as stderr:
        process = subprocess.Popen(
            [_executable(), "scheduler"], env=env, stdout=stdout, stderr=stderr
        )
        try:

            async def installed() -> bool:
                assert process.poll() is None, f"scheduler exited early: {stderr.read()}"
                return bool(await webhooks.getJobSchedulersCount() == 1)

            await _wait_for(installed, "the job scheduler", 20)
            process.send_signal(signal.SIGINT)
            exit_code = await asyncio.to_thread(process.wait, 15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stdout.seek(0)
        output = stdout.read()

    assert exit_code == 0
    assert "webhooks-sweep" in output
    assert "30 s" in output
    [scheduler] = await webhooks.getJobSchedulers()
    assert (scheduler["key"], scheduler["name"], int(scheduler["every"])) == (
        "webhooks-sweep",
        SWEEP_JOB,
        30_000,
    )


async def test_queue_stats_watch_refreshes_until_ctrl_c(
    tmp_path: Path, data_dir: Path, redis_url: str, queue_client: QueueClient
) -> None:
    await queue_client.add(JobRequest(QueueName.SHIPMENT_CREATE, "label", "label-1"))
    env = _process_environment(data_dir, redis_url, queue_client.prefix)
    # A terminal, so the live display redraws as it would for a person watching.
    controller, terminal = pty.openpty()
    received = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                return
            if not chunk:
                return
            received.extend(chunk)

    process = subprocess.Popen(
        [_executable(), "queue-stats", "--watch", "--interval", "0.2"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:

        def waiting_shown(count: int) -> Callable[[], Awaitable[bool]]:
            async def shown() -> bool:
                assert process.poll() is None, received.decode(errors="replace")
                rows = re.findall(
                    r"shipment-create\s*│\s*(\d+)\s*│", received.decode(errors="replace")
                )
                return bool(rows) and rows[-1] == str(count)

            return shown

        await _wait_for(waiting_shown(1), "the label job to be counted", 20)
        await queue_client.queue(QueueName.SHIPMENT_CREATE).remove("label-1")
        await _wait_for(waiting_shown(0), "a refresh without the label job", 20)
        process.send_signal(signal.SIGINT)
        exit_code = await asyncio.to_thread(process.wait, 15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await asyncio.to_thread(reader.join, 5)
        os.close(controller)

    output = received.decode(errors="replace")
    assert exit_code == 0, output
    assert "Ctrl-C to stop" in output
    assert "Traceback" not in output
