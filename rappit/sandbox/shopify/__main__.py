"""``python -m rappit.sandbox.shopify``: serve a sandbox with one or more shops (used by
``SandboxProcess``; people use ``rappit sandbox``)."""

from __future__ import annotations

import argparse
import json
import sys

from rappit.sandbox.shopify.generator import generate
from rappit.sandbox.shopify.server import LOOPBACK, base_url_of, bind, serve
from rappit.sandbox.shopify.state import PLANS, WEBHOOK_RETRY_DELAYS, SandboxState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rappit.sandbox.shopify")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--shop", action="append", default=[], help="shop domain (repeatable)")
    parser.add_argument("--token", help="access token (one shop only)")
    parser.add_argument("--secret", help="webhook secret (one shop only)")
    parser.add_argument("--plan", choices=sorted(PLANS), default="standard")
    parser.add_argument("--products", type=int, default=0)
    parser.add_argument("--orders", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--retry-delays", help="webhook retry delays in seconds, comma-separated")
    parser.add_argument("--json", action="store_true", help="announce the URL as one JSON line")
    args = parser.parse_args(argv)
    delays = (
        tuple(float(part) for part in args.retry_delays.split(",") if part)
        if args.retry_delays is not None
        else WEBHOOK_RETRY_DELAYS
    )
    state = SandboxState(webhook_retry_delays=delays)
    shops = []
    for domain in args.shop:
        single = len(args.shop) == 1
        shop = state.create_shop(
            domain,
            access_token=args.token if single else None,
            webhook_secret=args.secret if single else None,
            plan=args.plan,
        )
        if args.products or args.orders:
            generate(
                state,
                domain,
                products=max(args.products, 1 if args.orders else 0),
                orders=args.orders,
                seed=args.seed,
            )
        shops.append(shop)
    sock = bind(args.host, args.port)
    base = base_url_of(sock)
    announced = {
        "base_url": base,
        "shops": [
            {
                "domain": shop.domain,
                "api_base_url": f"{base}/shops/{shop.domain}",
                "access_token": shop.access_token,
                "webhook_secret": shop.webhook_secret,
            }
            for shop in shops
        ],
    }
    sys.stdout.write((json.dumps(announced) if args.json else f"Shopify sandbox on {base}") + "\n")
    sys.stdout.flush()
    try:
        serve(state, sock=sock, log_level="warning")
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
