"""Reading the result of an orders bulk operation: the JSONL file streamed (never held whole),
cut into pages of whole orders (each order's child lines, ``__parentId``, put under it), each
order turned into the REST order JSON (``graphql_orders.rest_order``) and mapped with the same
``map_order`` as webhooks and polls, and each page prepared for the batch path
(``order_batch.prepare_orders``).

The pages are read ahead of the writer, ``READ_AHEAD`` at most. A large file is read in a
process of its own: reading and mapping cost about as much Python time as writing the orders,
and one process runs Python on one core at a time, so the importing process then only writes
while the reader works on another core (the database has processes of its own). The reader
is ``reader_process_main`` run by the same interpreter; the pages come back pickled on its
stdout. A small file is read in the importing process, by a task that runs whenever the writer
waits for the database: a process would take longer to start than it saves.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import pickle
import struct
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson

from rappit.integrations.shopify.graphql_orders import rest_order, shop_zone
from rappit.integrations.shopify.order_batch import PreparedOrders, prepare_orders
from rappit.integrations.shopify.orders import ShopifyPayloadError, map_order
from rappit.orders.inputs import ChannelOrder

logger = logging.getLogger(__name__)

PAGE_SIZE = 250
READ_AHEAD = 2
# Files with fewer orders than this are read in the importing process.
READ_ELSEWHERE_FROM = 5_000
DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=30.0)
# The reader process collects its youngest generation after this many new containers (700 by
# default): the lines it parses and the orders it maps mostly die before a pass sees them.
_READER_GC_YOUNG_THRESHOLD = 10_000


class ResultExpired(Exception):
    """The result file can no longer be downloaded (its signed URL expired)."""


class ReaderFailed(RuntimeError):
    """The reader process failed (its error, as text) or ended without finishing."""


@dataclass
class Page:
    """Orders read but not mapped yet, in file order, each with its child lines."""

    orders: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, node: dict[str, Any]) -> None:
        self.orders[str(node["id"])] = (node, [])

    def adopt(self, child: dict[str, Any]) -> bool:
        parent = self.orders.get(str(child.get("__parentId")))
        if parent is None:
            return False
        parent[1].append(child)
        return True


@dataclass
class PreparedPage:
    """A page ready to apply: its orders mapped and prepared, the newest ``updated_at`` among
    them, the orders that could not be mapped (id, error), how many orders it fetched, and the
    cursor progress it completes."""

    batch: PreparedOrders
    newest: datetime | None
    invalid: list[tuple[str, str]]
    fetched: int
    progress: dict[str, Any]


def prepare_page(page: Page, zone: Any, progress: dict[str, Any], *, fetched: bool) -> PreparedPage:
    mapped: list[ChannelOrder] = []
    invalid: list[tuple[str, str]] = []
    for node, children in page.orders.values():
        try:
            mapped.append(map_order(rest_order(node, children, zone)))
        except (ShopifyPayloadError, ValueError, TypeError) as exc:
            invalid.append((str(node.get("id")), str(exc)))
    fetched_count = len(page.orders) if fetched else 0
    newest = max((order.updated_at for order in mapped), default=None)
    return PreparedPage(prepare_orders(mapped), newest, invalid, fetched_count, progress)


async def lines(
    http: httpx.AsyncClient, url: str, skip: int
) -> AsyncIterator[list[tuple[int, dict[str, Any]]]]:
    """(line number, object) of every line after the first ``skip``, a batch for each piece
    of the file as it arrives (split and parsed as bytes: no text decoding, no per-line
    iterator)."""
    # The signed URL carries its own authorisation: the shop's token is not sent.
    async with http.stream("GET", url) as response:
        if response.status_code in (400, 401, 403, 404, 410):
            raise ResultExpired(f"GET result -> {response.status_code}")
        response.raise_for_status()
        number = 0
        rest = b""
        async for piece in response.aiter_bytes():
            texts = (rest + piece).split(b"\n")
            rest = texts.pop()  # the start of a line whose end has not arrived
            batch = []
            for text in texts:
                if not text or text.isspace():
                    continue
                number += 1
                if number > skip:
                    batch.append((number, orjson.loads(text)))
            if batch:
                yield batch
        if rest and not rest.isspace():
            number += 1
            if number > skip:
                yield [(number, orjson.loads(rest))]


async def pages(
    http: httpx.AsyncClient,
    url: str,
    zone_of_shop: list[Any],
    consumed: int,
    late: list[str],
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[PreparedPage]:
    """The file cut into pages of ``page_size`` whole orders, after its first ``consumed``
    lines. A child
    whose order is not in the page being built is not dropped: its order's id goes into the
    progress's ``late`` list (with those of ``late``), for a second pass over the file."""
    zone = shop_zone(*zone_of_shop)
    late_ids = set(late)
    page = Page()
    async for batch in lines(http, url, consumed):
        for number, line in batch:
            if "__parentId" in line:
                if not page.adopt(line):
                    late_ids.add(str(line["__parentId"]))
            else:
                if len(page.orders) >= page_size:
                    progress = {"lines": consumed, "late": sorted(late_ids)}
                    yield prepare_page(page, zone, progress, fetched=True)
                    page = Page()
                page.add(line)
            consumed = number
    progress = {"lines": consumed, "late": sorted(late_ids), "late_pass": bool(late_ids)}
    yield prepare_page(page, zone, progress, fetched=True)


@dataclass(frozen=True)
class _Request:
    """What to read: the file, the shop's zone, the lines already applied, the orders already
    known to have children elsewhere, the page size."""

    url: str
    zone: list[Any]
    consumed: int
    late: list[str]
    page_size: int

    async def pages(self) -> AsyncIterator[PreparedPage]:
        async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as http:
            async for page in pages(
                http, self.url, self.zone, self.consumed, self.late, self.page_size
            ):
                yield page


@asynccontextmanager
async def read_ahead(
    url: str, zone_of_shop: list[Any], consumed: int, late: list[str], *, orders: int | None
) -> AsyncIterator[AsyncIterator[PreparedPage]]:
    """``pages`` read ahead of the caller: in a process of its own when the file holds
    ``READ_ELSEWHERE_FROM`` orders or more (``orders``: as the bulk operation counted them),
    else in this process. Leaving the block stops the reading."""
    request = _Request(url, zone_of_shop, consumed, late, PAGE_SIZE)
    reader: _ReaderTask | _ReaderProcess
    if orders is not None and orders >= READ_ELSEWHERE_FROM:
        reader = _ReaderProcess(request)
    else:
        reader = _ReaderTask(request)
    try:
        yield reader.pages()
    finally:
        await reader.stop()


class _ReaderTask:
    """Reading in this process: a task fills a queue whenever the writer waits."""

    def __init__(self, request: _Request):
        self.queue: asyncio.Queue[PreparedPage | BaseException | None] = asyncio.Queue(
            maxsize=READ_AHEAD
        )
        self.task = asyncio.create_task(self._fill(request))

    async def _fill(self, request: _Request) -> None:
        try:
            async for page in request.pages():
                await self.queue.put(page)
            await self.queue.put(None)
        except Exception as exc:  # handed to the writer, which raises it
            await self.queue.put(exc)

    async def pages(self) -> AsyncIterator[PreparedPage]:
        while (page := await self.queue.get()) is not None:
            if isinstance(page, BaseException):
                raise page
            yield page

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@dataclass(frozen=True)
class _Failure:
    """What the reader process sends instead of a page when it fails (exceptions of the HTTP
    client do not all survive pickling)."""

    message: str
    expired: bool

    def error(self) -> Exception:
        if self.expired:
            return ResultExpired(self.message)
        return ReaderFailed(f"reading the bulk result failed: {self.message}")


# A frame on the reader process's stdout: its length, then a pickled page, None (the end) or a
# ``_Failure``.
_FRAME = struct.Struct(">Q")


class _ReaderProcess:
    """Reading in a process of its own (``reader_process_main`` run by the same interpreter),
    told what to read on its stdin (the signed URL stays out of the process list), sending its
    pages back on its stdout. A task here receives them (up to ``READ_AHEAD`` waiting)."""

    def __init__(self, request: _Request):
        self.request = orjson.dumps(request)
        self.queue: asyncio.Queue[PreparedPage | Exception | None] = asyncio.Queue(
            maxsize=READ_AHEAD
        )
        self.process: asyncio.subprocess.Process | None = None
        self.task = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                f"from {__name__} import reader_process_main; reader_process_main()",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert self.process.stdin is not None
            assert self.process.stdout is not None
            self.process.stdin.write(self.request)
            await self.process.stdin.drain()
            self.process.stdin.close()
            while True:
                try:
                    (size,) = _FRAME.unpack(await self.process.stdout.readexactly(_FRAME.size))
                    item = pickle.loads(await self.process.stdout.readexactly(size))
                except asyncio.IncompleteReadError:
                    code = await self.process.wait()
                    raise ReaderFailed(
                        f"the bulk result reader ended (exit code {code}) before the end of "
                        "the file"
                    ) from None
                if isinstance(item, _Failure):
                    raise item.error()
                await self.queue.put(item)
                if item is None:
                    return
        except Exception as exc:  # handed to the writer, which raises it
            await self.queue.put(exc)

    async def pages(self) -> AsyncIterator[PreparedPage]:
        while (page := await self.queue.get()) is not None:
            if isinstance(page, Exception):
                raise page
            yield page

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self.process is not None:
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()


def reader_process_main() -> None:
    """The reader process: reads its request from stdin, sends every page on stdout (waiting
    while the importing process has not taken the earlier ones), then None; or a
    ``_Failure``."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames goes to the real stdout
    # Warnings and errors only: the request lines would show the signed URL.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # This process does nothing else: what it imported stays, and its own objects come and go.
    gc.freeze()
    gc.set_threshold(_READER_GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    def send(item: PreparedPage | _Failure | None) -> None:
        frame = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_FRAME.pack(len(frame)))
        out.write(frame)
        out.flush()

    try:
        request = _Request(**orjson.loads(sys.stdin.buffer.read()))
        asyncio.run(_send_pages(send, request))
    except ResultExpired as exc:
        send(_Failure(str(exc), expired=True))
    except Exception as exc:
        logger.exception("reading the bulk result failed")
        send(_Failure(f"{type(exc).__name__}: {exc}", expired=False))


async def _send_pages(
    send: Callable[[PreparedPage | _Failure | None], None], request: _Request
) -> None:
    async for page in request.pages():
        send(page)
    send(None)
