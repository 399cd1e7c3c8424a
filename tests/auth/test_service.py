"""API keys: shown once, stored only as a hash, refused once revoked, never logged."""

from __future__ import annotations

import hashlib
import logging

import httpx
import pytest
from sqlalchemy import select, text

from rappit.auth.service import KEY_PREFIX, authenticate, create_api_key
from rappit.kit.db import unit_of_work
from rappit.kit.errors import Unauthorized
from rappit.kit.types import utcnow
from rappit.models import ApiKey
from tests.conftest import Tenant, TestDatabase


async def test_the_key_is_stored_as_its_hash_only(database: TestDatabase, tenant: Tenant) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        row, plaintext = await create_api_key(session, tenant.organization_id, name="ci")
    assert plaintext.startswith(KEY_PREFIX)
    assert len(plaintext) > 40
    async with database.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT * FROM api_keys"))).all()
    columns = " ".join(str(value) for stored_row in stored for value in stored_row)
    assert plaintext not in columns
    assert plaintext[12:] not in columns  # not even the secret part
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.prefix == plaintext[:12]


async def test_authenticate_by_the_plaintext_only(database: TestDatabase, tenant: Tenant) -> None:
    async with unit_of_work(database.sessionmaker) as session:
        row, plaintext = await create_api_key(session, tenant.organization_id, name="ci")
        context = await authenticate(session, plaintext)
        assert (context.organization_id, context.api_key_id, context.is_admin) == (
            tenant.organization_id,
            row.id,
            False,
        )
        assert row.last_used_at is not None
        for wrong in (row.key_hash, row.prefix, plaintext + "x", "", plaintext.upper()):
            with pytest.raises(Unauthorized):
                await authenticate(session, wrong)

        row.revoked_at = utcnow()
        await session.flush()
        with pytest.raises(Unauthorized):
            await authenticate(session, plaintext)


async def test_the_key_never_reaches_the_logs(
    api: httpx.AsyncClient,
    tenant: Tenant,
    database: TestDatabase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    ok = await api.get("/api/v1/warehouses")
    refused = await api.get(
        "/api/v1/warehouses", headers={"Authorization": f"Bearer {tenant.api_key}x"}
    )
    assert (ok.status_code, refused.status_code) == (200, 401)
    assert refused.json() == {"error": "unauthorized", "detail": "API key is not valid"}
    assert tenant.api_key not in refused.text
    assert caplog.records, "DEBUG logging was not captured"
    assert tenant.api_key not in caplog.text
    async with database.sessionmaker() as session:
        keys = (await session.scalars(select(ApiKey))).all()
    assert all(tenant.api_key not in (key.key_hash, key.prefix) for key in keys)
