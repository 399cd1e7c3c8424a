"""`rappit sync` in a process of its own that starts on cue, so that several can pull one shop
at the same moment.

Usage: python -m tests.support.sync_process PAGE_SIZE CHANNEL RESOURCE
(with the CLI's RAPPIT_* settings in the environment)

Prints ``ready`` once everything is imported, waits for a line on stdin, then runs
``rappit sync CHANNEL RESOURCE`` exactly as the command line does and exits with its status.
The one change: REST lists are read in pages of at most PAGE_SIZE items instead of 250, so a
small shop takes enough requests to run through its rate limit.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

from rappit.cli import app
from rappit.integrations.shopify.client import MAX_PAGE_SIZE, ShopifyClient, ShopifyResponse


def read_in_small_pages(page_size: int) -> None:
    original = ShopifyClient.pages

    def pages(
        self: ShopifyClient,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        limit: int = MAX_PAGE_SIZE,
        **options: Any,
    ) -> AsyncIterator[ShopifyResponse]:
        return original(self, path, params, limit=min(limit, page_size), **options)

    ShopifyClient.pages = pages  # type: ignore[method-assign]


def main(page_size: int, arguments: list[str]) -> None:
    read_in_small_pages(page_size)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    app(["sync", *arguments], prog_name="rappit")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
