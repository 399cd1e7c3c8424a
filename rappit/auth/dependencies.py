from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rappit.auth.service import AuthContext, authenticate
from rappit.kit.errors import Forbidden, Unauthorized
from rappit.kit.fastapi import DbSession

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rpt_...`")


async def get_auth(
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthContext:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send 'Authorization: Bearer <api key>'")
    return await authenticate(session, credentials.credentials)


async def get_admin_auth(auth: Annotated[AuthContext, Depends(get_auth)]) -> AuthContext:
    if not auth.is_admin:
        raise Forbidden("this call needs an admin API key")
    return auth


CurrentAuth = Annotated[AuthContext, Depends(get_auth)]
AdminAuth = Annotated[AuthContext, Depends(get_admin_auth)]
