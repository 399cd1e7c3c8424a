"""Request-edge dependency: the per-request unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rappit.kit.db import unit_of_work


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    # app.state.runtime is rappit.runtime.Runtime; kit only needs its sessionmaker.
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.runtime.sessionmaker
    async with unit_of_work(sessionmaker) as session:
        yield session


# scope="function": commit (and the after-commit hooks, such as enqueueing jobs) before the
# response is sent, so a failed commit is never answered with a success.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
