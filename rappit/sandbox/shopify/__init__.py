"""A simulated Shopify Admin API served over real HTTP (DESIGN §8).

Start one in a test::

    from rappit.sandbox.shopify import Clock, SandboxServer, SandboxState, generate

    with SandboxServer(SandboxState(clock=Clock(frozen_at=1_767_225_600))) as sandbox:
        shop = sandbox.call(lambda: sandbox.state.create_shop("acme.myshopify.com"))
        sandbox.call(lambda: generate(sandbox.state, shop.domain, products=50, orders=500, seed=1))
        api_base_url = sandbox.shop_url(shop.domain)  # a channel's api_base_url

or create shops over HTTP with ``POST {base_url}/_sandbox/shops`` (see ``control``).
"""

from rappit.sandbox.shopify.app import create_sandbox_app
from rappit.sandbox.shopify.generator import GENERATED_UNTIL, GenerationSummary, generate
from rappit.sandbox.shopify.server import SandboxProcess, SandboxServer, serve
from rappit.sandbox.shopify.state import PLANS, Clock, LineSpec, Plan, SandboxState, Shop

__all__ = [
    "GENERATED_UNTIL",
    "PLANS",
    "Clock",
    "GenerationSummary",
    "LineSpec",
    "Plan",
    "SandboxProcess",
    "SandboxServer",
    "SandboxState",
    "Shop",
    "create_sandbox_app",
    "generate",
    "serve",
]
