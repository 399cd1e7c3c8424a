"""The admin API against its own OpenAPI schema (schemathesis): generated requests, valid and
invalid, to every ``/api/v1`` operation of a running ``rappit api``; no answer may be a 5xx,
use a status code the schema does not list, or have a body that does not match the schema."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks as schema_checks
from schemathesis.specs.openapi import checks as openapi_checks

RAPPIT = str(Path(sys.executable).parent / "rappit")
EXAMPLES = 20  # per operation; the suite's time budget, not a limit of the API
KEY = re.compile(r"(rpt_[A-Za-z0-9_\-]{20,})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveApi:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveApi]:
    data = tmp_path_factory.mktemp("schema-api")
    env = {
        **os.environ,
        "RAPPIT_ENV": "development",
        "RAPPIT_DATA_DIR": str(data),
        "RAPPIT_SECRET_KEY": "schema-test-" + uuid.uuid4().hex * 2,
        "RAPPIT_REDIS_URL": redis_url,
        "RAPPIT_QUEUE_PREFIX": f"schema{uuid.uuid4().hex[:8]}",
        "RAPPIT_LOG_LEVEL": "WARNING",
    }
    env.pop("RAPPIT_DATABASE_URL", None)
    subprocess.run([RAPPIT, "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [RAPPIT, "org", "create", "Schema"], env=env, check=True, capture_output=True, text=True
    )
    match = KEY.search(created.stdout)
    assert match is not None, created.stdout
    port = free_port()
    log = (data / "api.log").open("wb")
    process = subprocess.Popen(
        [RAPPIT, "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, "rappit api exited"
        assert time.monotonic() < deadline, "rappit api did not start"
        time.sleep(0.1)
    api = LiveApi(base_url, match.group(1))
    # Something to find, so that not every generated id is simply unknown.
    with httpx.Client(base_url=base_url, headers=api.headers) as client:
        client.post("/api/v1/warehouses", json={"code": "MAIN", "name": "Main"}).raise_for_status()
    try:
        yield api
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def api_schema(live_api: LiveApi) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{live_api.base_url}/openapi.json").include(
        path_regex="^/api/v1/"
    )


CHECKS = [
    schema_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


def test_every_operation_answers_as_documented(
    api_schema: schemathesis.BaseSchema, live_api: LiveApi
) -> None:
    failures: dict[str, str] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=live_api.base_url, headers=live_api.headers, checks=CHECKS
            )

        try:
            call()
        except (Exception, ExceptionGroup) as exc:  # one report per operation, all run
            failures[operation.label] = str(exc)[:3000]
    assert operations >= 30
    assert failures == {}
