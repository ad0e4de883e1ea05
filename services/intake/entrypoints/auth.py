"""Bearer-token credentials with a role, checked against intake's API clients."""
from __future__ import annotations

from typing import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.intake.adapters.repository import ApiClient, client_by_token

_bearer = HTTPBearer(auto_error=False, description="an API client's token (Authorization: Bearer …)")


def require_role(*roles: str) -> Callable[..., object]:
    """A dependency admitting only clients with one of these roles."""

    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> ApiClient:
        if credentials is None:
            raise HTTPException(401, "missing credential: send Authorization: Bearer <token> (需要凭证)",
                                headers={"WWW-Authenticate": "Bearer"})
        client = await client_by_token(request.app.state.runtime.pool, credentials.credentials)
        if client is None:
            raise HTTPException(401, "unknown or revoked token (凭证无效)", headers={"WWW-Authenticate": "Bearer"})
        if client.role not in roles:
            raise HTTPException(403, f"role {client.role!r} may not do this; needs one of {', '.join(roles)} (无权限)")
        return client

    return check
