"""The sandbox as a FastAPI application: Admin API (REST and GraphQL) per shop under
``/shops/{shop_domain}``, bulk operation files under ``/bulk/``, the control API under
``/_sandbox/``, and webhook delivery running on the application's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rappit.sandbox.shopify import control, graphql, rest
from rappit.sandbox.shopify.http import admin_middleware, errors
from rappit.sandbox.shopify.state import SandboxError, SandboxState
from rappit.sandbox.shopify.webhooks import WebhookDispatcher


def create_sandbox_app(state: SandboxState | None = None) -> FastAPI:
    state = state or SandboxState()
    dispatcher = WebhookDispatcher(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()
            for task in list(state.tasks):
                task.cancel()
            if state.tasks:
                await asyncio.gather(*state.tasks, return_exceptions=True)

    app = FastAPI(
        title="Rappit sandbox: Shopify Admin API",
        description="A simulated Shopify Admin API for tests, benchmarks and demos.",
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.dispatcher = dispatcher
    app.middleware("http")(admin_middleware)

    @app.exception_handler(SandboxError)
    async def sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        return errors(exc.status, exc.errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):  # Shopify answers unknown routes and methods 404
            return errors(404, "Not Found")
        return errors(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return errors(400, [str(error.get("msg")) for error in exc.errors()])

    app.include_router(control.router)
    app.include_router(rest.router)
    app.include_router(graphql.router)
    return app
