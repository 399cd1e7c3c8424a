"""The FastAPI application: wiring of routers, error rendering and the process runtime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rappit import __version__
from rappit.config import Settings, get_settings
from rappit.kit.errors import RappitError
from rappit.runtime import Runtime, build_runtime
from rappit.wiring import Background

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    runtime: Runtime | None = None,
    *,
    background: bool = False,
) -> FastAPI:
    """The HTTP app. ``background=True`` also runs the workers and the scheduler in this
    process (the embedded default, ``rappit serve``)."""
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or build_runtime(settings)
        worker_side = Background(app.state.runtime) if background else None
        if worker_side is not None:
            worker_side.start()
        try:
            yield
        finally:
            # Workers first: they may still need the database and Redis to finish their jobs.
            if worker_side is not None:
                await worker_side.stop()
            if owned:
                await app.state.runtime.close()

    app = FastAPI(
        title="Rappit",
        version=__version__,
        description="Multi-channel commerce operations hub: orders, stock, channels, shipping.",
        lifespan=lifespan,
    )
    if runtime is not None:
        # Tests hand in a runtime and may call the app without running the lifespan.
        app.state.runtime = runtime
    _install_error_handlers(app)
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    from rappit.api import router as api_router
    from rappit.health import router as health_router
    from rappit.integrations.shopify.webhook_endpoints import router as shopify_webhooks

    # Webhooks first: routes are matched in order, and deliveries are the busiest path.
    app.include_router(shopify_webhooks)
    app.include_router(health_router)
    app.include_router(api_router)


def _error(status_code: int, code: str, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse(status_code=status_code, content={"error": code, "detail": detail, **extra})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RappitError)
    async def _rappit_error(_: Request, exc: RappitError) -> JSONResponse:
        return _error(exc.status_code, exc.code, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "field": ".".join(str(part) for part in error["loc"]),
                "message": error["msg"],
            }
            for error in exc.errors()
        ]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return _error(422, "validation_error", detail, fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return _error(500, "internal_error", "an unexpected error occurred")


__all__ = ["create_app"]
