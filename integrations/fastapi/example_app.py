"""A FastAPI app protected by the auth server, in either mode.

    AUTH_MODE=session AUTH_DATABASE_URL=... BETTER_AUTH_SECRET=... uvicorn --factory example_app:app_from_env
    AUTH_MODE=jwt BETTER_AUTH_URL=https://auth.example.com uvicorn --factory example_app:app_from_env

The routes are the same in both modes: only the authenticator differs.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncContextManager, Callable

from fastapi import Depends, FastAPI, HTTPException

from auth_server_fastapi import Authenticator, AuthUser, JwtAuth, SessionAuth

# What each role may do in this app; roles come from the auth server's users.role (admin plugin).
ROLE_PERMISSIONS = {
    "admin": {"course:create", "course:delete"},
    "instructor": {"course:create"},
}


def profile_json(user: AuthUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "emailVerified": user.email_verified,
        "role": user.role,
        "experienceLevel": user.experience_level,
        "professionalRole": user.professional_role,
        "roleOther": user.role_other,
        "organization": user.organization,
        "activeOrganizationId": user.active_organization_id,
        "sessionId": user.session_id,
        "authenticatedBy": user.authenticated_by,
    }


def create_app(auth: Authenticator, lifespan: Callable[[FastAPI], AsyncContextManager[None]] | None = None) -> FastAPI:
    app = FastAPI(title="course API")
    if lifespan is not None:
        # FastAPI(lifespan=...) on FastAPI 0.93 and later; this form works on older releases too.
        app.router.lifespan_context = lifespan

    @app.get("/api/profile")
    async def profile(user: AuthUser = Depends(auth.current_user)) -> dict[str, Any]:
        return profile_json(user)

    @app.get("/api/greeting")
    async def greeting(user: AuthUser | None = Depends(auth.optional_user)) -> dict[str, str]:
        return {"greeting": f"Hello, {user.name}" if user else "Hello, guest"}

    @app.get("/api/organization/courses")
    async def organization_courses(user: AuthUser = Depends(auth.current_user)) -> dict[str, Any]:
        # Scoped to the session's active organization (sessions.active_organization_id, or the JWT's
        # activeOrganizationId). The JWT also carries activeOrganizationRole; in session mode a route that
        # needs the caller's role inside the organization looks it up in members.
        if not user.active_organization_id:
            raise HTTPException(403, detail={"code": "NO_ACTIVE_ORGANIZATION", "message": "choose an organization first"})
        return {"organizationId": user.active_organization_id, "courses": []}

    @app.get("/api/admin/overview")
    async def admin_overview(user: AuthUser = Depends(auth.require_role("admin"))) -> dict[str, str]:
        return {"admin": user.id}

    @app.post("/api/courses", status_code=201)
    async def create_course(user: AuthUser = Depends(auth.require_permission("course:create"))) -> dict[str, str]:
        return {"createdBy": user.id}

    return app


def app_from_env() -> FastAPI:
    """The app configured from the environment (the module itself reads none)."""
    if os.environ.get("AUTH_MODE", "session") == "jwt":
        issuer = os.environ["BETTER_AUTH_URL"]
        return create_app(
            JwtAuth(issuer, os.environ.get("JWT_AUDIENCE") or issuer, role_permissions=ROLE_PERMISSIONS)
        )

    import asyncpg

    # The auth server's secret first; during a rotation, the previous one after it.
    secrets = [os.environ["BETTER_AUTH_SECRET"], os.environ.get("BETTER_AUTH_PREVIOUS_SECRET", "")]
    # The auth server's BETTER_AUTH_URL names its session cookie (`__Secure-` prefixed over https).
    auth = SessionAuth(secrets, base_url=os.environ.get("BETTER_AUTH_URL"), role_permissions=ROLE_PERMISSIONS)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool = await asyncpg.create_pool(os.environ["AUTH_DATABASE_URL"], min_size=1, max_size=10)
        auth.database = pool
        try:
            yield
        finally:
            await pool.close()

    return create_app(auth, lifespan)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app_from_env(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
