"""Request-edge dependencies: the per-request unit of work and shared runtime objects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rappit.config import Settings
from rappit.kit.crypto import SecretBox
from rappit.kit.db import unit_of_work


@dataclass(frozen=True)
class Runtime:
    """What one process shares between requests; lives on ``app.state.runtime``."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    secret_box: SecretBox


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(get_runtime(request).sessionmaker) as session:
        yield session


# scope="function": commit (and the after-commit hooks) before the response is sent, so a
# failed commit is never answered with a success.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
