"""Channel secrets: encrypted at rest, never in a response or a log line, rotatable."""

import logging
import uuid

import httpx
import pytest
from sqlalchemy import text

from rappit.channels.service import (
    ChannelCredentials,
    channel_credentials,
    credentials_of,
    get_channel,
    get_channel_by_shop_domain,
)
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work
from rappit.kit.errors import ConfigurationError, NotFound
from rappit.runtime import Runtime
from tests.channels.factories import ACCESS_TOKEN, WEBHOOK_SECRET, channel_body, create_channel
from tests.conftest import Tenant, TestDatabase

NEW_ACCESS_TOKEN = "shpat_" + "fedcba9876543210fedcba9876543210"
NEW_WEBHOOK_SECRET = "whsec-test-rotated-0987654321fedcba"
SECRETS = (ACCESS_TOKEN, WEBHOOK_SECRET, NEW_ACCESS_TOKEN, NEW_WEBHOOK_SECRET)


async def _raw_channel_row(database: TestDatabase, channel_id: str) -> dict[str, object]:
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT * FROM channels WHERE id = :id"),
                {"id": uuid.UUID(channel_id).hex if database.backend == "sqlite" else channel_id},
            )
        ).one()
    return dict(row._mapping)


async def test_secrets_never_leave_encrypted(
    api: httpx.AsyncClient,
    database: TestDatabase,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")
    responses: list[httpx.Response] = []

    created = await api.post("/api/v1/channels", json=channel_body())
    assert created.status_code == 201
    responses.append(created)
    channel_id = created.json()["id"]
    url = f"/api/v1/channels/{channel_id}"
    await api.post("/api/v1/warehouses", json={"code": "BER", "name": "Berlin"})
    await api.post("/api/v1/products", json={"title": "Tee", "skus": [{"code": "TEE-1"}]})

    responses += [
        await api.get("/api/v1/channels"),
        await api.get(url),
        await api.patch(url, json={"name": "Renamed"}),
        await api.patch(
            url, json={"access_token": NEW_ACCESS_TOKEN, "webhook_secret": NEW_WEBHOOK_SECRET}
        ),
        await api.get(url),
        # Failures must not echo the secrets they were sent with either.
        await api.post("/api/v1/channels", json=channel_body()),
        await api.post(
            "/api/v1/channels", json=channel_body(access_token=NEW_ACCESS_TOKEN, type="x")
        ),
        await api.patch(url, json={"webhook_secret": NEW_WEBHOOK_SECRET, "name": None}),
        await api.patch(f"/api/v1/channels/{uuid.uuid4()}", json={"access_token": ACCESS_TOKEN}),
        await api.post(f"{url}/locations", json={"external_location_id": "1", "warehouse": "BER"}),
        await api.get(f"{url}/locations"),
        await api.post(f"{url}/listings", json={"sku": "TEE-1", "external_variant_id": "11"}),
        await api.get(f"{url}/listings"),
    ]
    assert [r.status_code for r in responses] == [
        201, 200, 200, 200, 200, 200, 409, 422, 422, 404, 201, 200, 201, 200,
    ]  # fmt: skip
    for response in responses:
        for secret in SECRETS:
            assert secret not in response.text
        assert "access_token" not in response.text
        assert "credentials" not in response.text

    row = await _raw_channel_row(database, channel_id)
    for secret in SECRETS:
        assert secret not in repr(row)
    stored = str(row["credentials_encrypted"])
    assert runtime.secret_box.decrypt_json(stored) == {
        "access_token": NEW_ACCESS_TOKEN,
        "webhook_secret": NEW_WEBHOOK_SECRET,
        "previous_webhook_secret": WEBHOOK_SECRET,
    }
    with pytest.raises(ConfigurationError) as refused:
        SecretBox("a-different-secret-key-0123456789abcdef").decrypt_json(stored)
    assert refused.value.detail == (
        "stored credentials cannot be decrypted: RAPPIT_SECRET_KEY differs from the key "
        "they were written with"
    )

    assert caplog.records, "DEBUG logging was not captured"
    for record in caplog.records:
        logged = f"{record.getMessage()} {record.exc_text or ''}"
        for secret in SECRETS:
            assert secret not in logged
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_webhook_secret_rotation_keeps_the_previous_secret(
    api: httpx.AsyncClient, tenant: Tenant, database: TestDatabase, runtime: Runtime
) -> None:
    channel = await create_channel(api)
    channel_id = uuid.UUID(channel["id"])
    url = f"/api/v1/channels/{channel_id}"

    async def current() -> ChannelCredentials:
        async with unit_of_work(database.sessionmaker) as session:
            return await channel_credentials(
                session, tenant.organization_id, channel_id, runtime.secret_box
            )

    assert await current() == ChannelCredentials(ACCESS_TOKEN, WEBHOOK_SECRET, None)
    assert (await current()).webhook_secrets == (WEBHOOK_SECRET,)

    await api.patch(url, json={"webhook_secret": "whsec-second"})
    assert await current() == ChannelCredentials(ACCESS_TOKEN, "whsec-second", WEBHOOK_SECRET)
    assert (await current()).webhook_secrets == ("whsec-second", WEBHOOK_SECRET)

    # Sending the current secret again is no rotation: the previous one stays.
    await api.patch(url, json={"webhook_secret": "whsec-second"})
    assert await current() == ChannelCredentials(ACCESS_TOKEN, "whsec-second", WEBHOOK_SECRET)

    # A new token alone leaves the webhook secrets alone.
    await api.patch(url, json={"access_token": NEW_ACCESS_TOKEN})
    assert await current() == ChannelCredentials(NEW_ACCESS_TOKEN, "whsec-second", WEBHOOK_SECRET)

    await api.patch(url, json={"webhook_secret": "whsec-third"})
    assert await current() == ChannelCredentials(NEW_ACCESS_TOKEN, "whsec-third", "whsec-second")


async def test_channel_credentials_is_scoped_by_organisation(
    api: httpx.AsyncClient, other_tenant: Tenant, database: TestDatabase, runtime: Runtime
) -> None:
    channel = await create_channel(api)
    async with unit_of_work(database.sessionmaker) as session:
        with pytest.raises(NotFound) as missing:
            await channel_credentials(
                session, other_tenant.organization_id, uuid.UUID(channel["id"]), runtime.secret_box
            )
    assert missing.value.detail == f"channel '{channel['id']}' does not exist"


def test_credentials_repr_hides_secrets() -> None:
    credentials = ChannelCredentials(ACCESS_TOKEN, WEBHOOK_SECRET, "whsec-old-value")
    for text_form in (repr(credentials), str(credentials), f"{credentials}"):
        for secret in (ACCESS_TOKEN, WEBHOOK_SECRET, "whsec-old-value"):
            assert secret not in text_form
    assert repr(credentials) == (
        "ChannelCredentials(access_token='***', webhook_secret='***', "
        "previous_webhook_secret='***')"
    )
    assert repr(ChannelCredentials("a", "b")) == (
        "ChannelCredentials(access_token='***', webhook_secret='***', previous_webhook_secret=None)"
    )


def test_credentials_are_immutable() -> None:
    credentials = ChannelCredentials(ACCESS_TOKEN, WEBHOOK_SECRET)
    with pytest.raises(AttributeError):
        credentials.access_token = "other"  # type: ignore[misc]


async def test_incomplete_stored_credentials_are_a_configuration_error(
    api: httpx.AsyncClient, tenant: Tenant, database: TestDatabase, runtime: Runtime
) -> None:
    channel = await create_channel(api)
    async with unit_of_work(database.sessionmaker) as session:
        row = await get_channel(session, tenant.organization_id, uuid.UUID(channel["id"]))
        row.credentials_encrypted = runtime.secret_box.encrypt_json({"access_token": "x"})
        with pytest.raises(ConfigurationError) as broken:
            credentials_of(row, runtime.secret_box)
        await session.rollback()
    assert broken.value.detail == "stored channel credentials are incomplete"


async def test_get_channel_by_shop_domain(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, database: TestDatabase
) -> None:
    ours = await create_channel(client, tenant.headers)
    theirs = await create_channel(
        client, other_tenant.headers, type="woocommerce", shop_domain="shop.example.com"
    )
    async with unit_of_work(database.sessionmaker) as session:
        found = await get_channel_by_shop_domain(session, "shopify", "ACME.myshopify.com")
        assert found is not None
        assert (found.id, found.organization_id) == (uuid.UUID(ours["id"]), tenant.organization_id)

        woo = await get_channel_by_shop_domain(session, "woocommerce", "https://shop.example.com/")
        assert woo is not None
        assert (woo.id, woo.organization_id) == (
            uuid.UUID(theirs["id"]),
            other_tenant.organization_id,
        )

        assert (
            await get_channel_by_shop_domain(session, "woocommerce", "acme.myshopify.com") is None
        )
        assert await get_channel_by_shop_domain(session, "shopify", "other.myshopify.com") is None
        assert await get_channel_by_shop_domain(session, "shopify", "not a domain") is None
        assert await get_channel_by_shop_domain(session, "amazon", "acme.myshopify.com") is None
