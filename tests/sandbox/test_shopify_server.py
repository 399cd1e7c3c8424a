"""Running the sandbox: in a subprocess reached only over HTTP, the control API's shop
creation, and the ``rappit sandbox`` command's checks."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from rappit.cli import app
from rappit.sandbox.shopify import SandboxProcess, SandboxServer
from tests.sandbox.conftest import VERSION


def test_sandbox_in_a_subprocess() -> None:
    with SandboxProcess(
        "--shop",
        "proc.myshopify.com",
        "--token",
        "shpat_proc",
        "--secret",
        "shpss_proc",
        "--products",
        "10",
        "--orders",
        "120",
        "--seed",
        "4",
    ) as process:
        assert process.base_url.startswith("http://127.0.0.1:")
        (shop,) = process.shops
        assert shop == {
            "domain": "proc.myshopify.com",
            "api_base_url": f"{process.base_url}/shops/proc.myshopify.com",
            "access_token": "shpat_proc",
            "webhook_secret": "shpss_proc",
        }
        with httpx.Client(trust_env=False, timeout=10) as client:
            count = client.get(
                f"{shop['api_base_url']}/admin/api/{VERSION}/orders/count.json",
                params={"status": "any"},
                headers={"X-Shopify-Access-Token": "shpat_proc"},
            )
            assert count.json() == {"count": 120}
            created = client.post(
                f"{process.base_url}/_sandbox/shops", json={"domain": "second.myshopify.com"}
            )
            assert created.status_code == 201
            listed = client.get(f"{process.base_url}/_sandbox/shops").json()["shops"]
            assert [s["domain"] for s in listed] == ["proc.myshopify.com", "second.myshopify.com"]


def test_control_api_shop_creation_rules(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.base_url, trust_env=False) as client:
        created = client.post(
            "/_sandbox/shops",
            json={"domain": "rules.myshopify.com", "plan": "advanced", "locations": 3},
        )
        assert created.status_code == 201
        info = created.json()["shop"]
        assert info["access_token"].startswith("shpat_")
        assert info["webhook_secret"].startswith("shpss_")
        assert info["api_base_url"] == f"{sandbox.base_url}/shops/rules.myshopify.com"
        assert info["limits"]["rest_bucket"] == 80
        assert len(info["location_ids"]) == 3
        again = client.post("/_sandbox/shops", json={"domain": "rules.myshopify.com"})
        assert again.status_code == 409
        assert client.post("/_sandbox/shops", json={"domain": "x", "plan": "gold"}).status_code == (
            422
        )
        assert client.post("/_sandbox/shops", json={}).status_code == 422
        rotated = client.patch(
            "/_sandbox/shops/rules.myshopify.com", json={"access_token": "shpat_new"}
        )
        assert rotated.json()["shop"]["access_token"] == "shpat_new"
        old = client.get(
            f"/shops/rules.myshopify.com/admin/api/{VERSION}/shop.json",
            headers={"X-Shopify-Access-Token": info["access_token"]},
        )
        assert old.status_code == 401
        assert client.get("/_sandbox/shops/nobody.myshopify.com").status_code == 404


def test_cli_sandbox_refuses_bad_options() -> None:
    runner = CliRunner()
    unknown_plan = runner.invoke(app, ["sandbox", "--plan", "gold", "--port", "0"])
    assert unknown_plan.exit_code == 1
    assert "unknown plan" in unknown_plan.output
    no_products = runner.invoke(app, ["sandbox", "--products", "0", "--orders", "5"])
    assert no_products.exit_code == 1
    assert "--products" in no_products.output
    help_text = runner.invoke(app, ["sandbox", "--help"])
    assert help_text.exit_code == 0
    assert "--orders" in help_text.output
