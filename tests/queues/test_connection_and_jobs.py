"""Pure parts of the queue layer: connection settings, job ids and options."""

from __future__ import annotations

import pytest

from rappit.queues.connection import connection_kwargs, redacted
from rappit.queues.jobs import JobRequest, job_options, retry_delays_ms
from rappit.queues.names import QueueName, parse_queue


def test_tcp_url_has_no_read_timeout() -> None:
    kwargs = connection_kwargs("redis://user:p%40ss@redis.internal:6380/2")
    assert kwargs["socket_timeout"] is None
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.internal", 6380, 2)
    assert (kwargs["username"], kwargs["password"]) == ("user", "p@ss")
    assert "ssl" not in kwargs


def test_tls_and_unix_urls() -> None:
    assert connection_kwargs("rediss://h")["ssl"] is True
    unix = connection_kwargs("unix:///var/run/redis.sock?db=3")
    assert (unix["unix_socket_path"], unix["db"]) == ("/var/run/redis.sock", 3)
    assert unix["socket_timeout"] is None


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported Redis URL scheme 'http'"):
        connection_kwargs("http://localhost")


def test_redacted_hides_the_password_only() -> None:
    assert redacted("redis://u:secret@h:6379/0") == "redis://u:***@h:6379/0"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"


@pytest.mark.parametrize("job_id", ["", "a:b", "123"])
def test_unusable_job_ids(job_id: str) -> None:
    with pytest.raises(ValueError, match="not usable"):
        JobRequest(QueueName.CHANNEL_SYNC, "x", job_id)


def test_job_options() -> None:
    request = JobRequest(QueueName.CHANNEL_SYNC, "push", "push.abc", {"a": 1}, delay_ms=250)
    assert job_options(request, attempts=4, backoff_ms=100) == {
        "jobId": "push.abc",
        "attempts": 4,
        "backoff": {"type": "exponential", "delay": 100},
        "removeOnComplete": {"age": 86400},
        "removeOnFail": {"age": 604800},
        "delay": 250,
    }
    own = JobRequest(QueueName.CHANNEL_SYNC, "push", "push.abc", attempts=2)
    assert job_options(own, attempts=4, backoff_ms=100)["attempts"] == 2


def test_retry_delays_double() -> None:
    assert retry_delays_ms(5, 100) == [100, 200, 400, 800]
    assert retry_delays_ms(1, 100) == []


def test_queue_names() -> None:
    assert parse_queue("channel-sync") is QueueName.CHANNEL_SYNC
    with pytest.raises(ValueError, match="unknown queue 'nope'"):
        parse_queue("nope")
