"""Authenticate FastAPI requests against the auth server, as FastAPI dependencies.

Two ways, with the same dependencies (`current_user`, `optional_user`, `require_role`,
`require_permission`):

- `SessionAuth` reads the auth server's `sessions` and `users` tables: the signed session cookie or a
  bearer session token, then one query. Signing out, expiry and bans take effect at once. asyncpg or
  psycopg 3; it only ever reads.
- `JwtAuth` verifies the JWTs of `GET /api/auth/token` against `GET /api/auth/jwks`: no database, but
  a token stays valid until its `exp`, even after sign-out.

The module never reads the environment: the application passes every setting. See README.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence
from urllib.parse import unquote

import jwt
from fastapi import Depends, HTTPException, Request
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientError, PyJWKSetError
from starlette.concurrency import run_in_threadpool

# Why a request was refused, for the operator: what to check (the secret, the issuer, the JWKS address).
# The client's answer names none of it.
logger = logging.getLogger("auth_server_fastapi")
LOG_INTERVAL_SECONDS = 60
_last_logged: dict[str, float] = {}


def _log_cause(kind: str, level: int, message: str) -> None:
    """Log `message`, at most once per LOG_INTERVAL_SECONDS for each kind (bad tokens come in floods)."""
    now = time.monotonic()
    if now - _last_logged.get(kind, -math.inf) >= LOG_INTERVAL_SECONDS:
        _last_logged[kind] = now
        logger.log(level, message)


# Better Auth's session cookie: `__Secure-` prefixed when the server's URL (BETTER_AUTH_URL) is https://
# (RFC 6265bis 4.1.3.1), plain over http:// in development. The server reads only the one name its URL
# gives it, and so does this module (`session_cookie_name`).
SESSION_COOKIE = "better-auth.session_token"
SECURE_COOKIE_PREFIX = "__Secure-"

# RFC 9110 9.2.1: methods that change nothing; a cookie may authenticate them from any page.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# A session token is 32 characters; anything far longer is not worth a database round trip.
MAX_SESSION_TOKEN_LENGTH = 512
MAX_JWT_LENGTH = 16 * 1024

# RFC 8725 3.1: verify with algorithms fixed in advance, never the one a token names. Only public-key
# algorithms: "none" and HMAC ("HS256" keyed with the public key) are never accepted.
PUBLIC_KEY_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "ES512", "EdDSA"})
# RFC 7519 4.1: the claims every token of the auth server carries, and that this module relies on.
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "sub")

# Columns of sql/0001_core_schema.sql that the session lookup reads.
CORE_USER_COLUMNS = frozenset(
    {"id", "email", "name", "email_verified", "image", "experience_level", "professional_role", "role_other", "organization"}
)
CORE_SESSION_COLUMNS = frozenset({"id", "user_id", "token", "expires_at"})


@dataclass(frozen=True)
class AuthUser:
    """Who is calling, as the auth server knows them."""

    id: str
    email: str
    name: str
    email_verified: bool
    image: str | None = None
    # The admin plugin's role column (comma-separated roles); None while the column does not exist.
    role: str | None = None
    experience_level: str | None = None
    professional_role: str | None = None
    role_other: str | None = None
    organization: str | None = None
    # The organization plugin's active organization of the session; None while there is none.
    active_organization_id: str | None = None
    session_id: str | None = None
    # When the session (or the JWT) stops being valid.
    expires_at: datetime | None = None
    # "cookie", "bearer" (a session token) or "jwt".
    authenticated_by: str = "cookie"

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(part.strip() for part in (self.role or "").split(",") if part.strip())


class AuthError(Exception):
    """A request that is not authenticated (401) or not allowed (403)."""

    def __init__(self, status: int, code: str, message: str, challenge: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.challenge = challenge

    @classmethod
    def missing(cls) -> AuthError:
        # RFC 6750 3.1: a request without credentials gets the challenge but no error code.
        return cls(401, "UNAUTHENTICATED", "sign in to use this route", "Bearer")

    @classmethod
    def invalid(cls, code: str, message: str) -> AuthError:
        return cls(401, code, message, f'Bearer error="invalid_token", error_description="{message}"')

    @classmethod
    def forbidden(cls, code: str, message: str, insufficient_scope: bool = False) -> AuthError:
        return cls(403, code, message, 'Bearer error="insufficient_scope"' if insufficient_scope else None)

    def to_http(self) -> HTTPException:
        headers = {"WWW-Authenticate": self.challenge} if self.challenge else None
        return HTTPException(self.status, detail={"code": self.code, "message": self.message}, headers=headers)


def auth_unavailable(cause: str) -> HTTPException:
    """The auth server (its JWKS) cannot be reached: not the caller's fault, so not a 401. The cause
    (an internal address, a system error) goes to the log, not to the client (ASVS 7.4.1)."""
    _log_cause("jwks", logging.ERROR, f"answering 503 AUTH_UNAVAILABLE: {cause}")
    message = "the auth server cannot be reached to check the token; try again shortly"
    return HTTPException(503, detail={"code": "AUTH_UNAVAILABLE", "message": message}, headers={"Retry-After": "5"})


class Authenticator:
    """The dependencies both modes share; a mode implements `authenticate`."""

    def __init__(self, role_permissions: Mapping[str, Iterable[str]] | None = None):
        # Which permissions each role grants, e.g. {"admin": {"course:create", "course:delete"}}.
        self.role_permissions = {role: frozenset(perms) for role, perms in (role_permissions or {}).items()}

    async def authenticate(self, request: Request) -> AuthUser:
        """The caller, or AuthError."""
        raise NotImplementedError

    async def current_user(self, request: Request) -> AuthUser:
        """Dependency: the caller; 401 without valid credentials, 403 for a banned user."""
        try:
            return await self.authenticate(request)
        except AuthError as error:
            raise error.to_http() from None

    async def optional_user(self, request: Request) -> AuthUser | None:
        """Dependency: the caller, or None for a request without valid credentials (or a banned user)."""
        try:
            return await self.authenticate(request)
        except AuthError:
            return None

    def require_role(self, *roles: str) -> Callable[..., Awaitable[AuthUser]]:
        """Dependency factory: the caller, who must hold one of `roles` (403 otherwise)."""
        wanted = frozenset(roles)

        async def user_with_role(user: AuthUser = Depends(self.current_user)) -> AuthUser:
            if user.roles & wanted:
                return user
            raise AuthError.forbidden("FORBIDDEN", f"this route needs the role {' or '.join(sorted(wanted))}", True).to_http()

        return user_with_role

    def require_permission(self, *permissions: str) -> Callable[..., Awaitable[AuthUser]]:
        """Dependency factory: the caller, whose roles must grant every one of `permissions`."""
        wanted = frozenset(permissions)

        async def user_with_permission(user: AuthUser = Depends(self.current_user)) -> AuthUser:
            if wanted <= self.permissions_of(user):
                return user
            raise AuthError.forbidden("FORBIDDEN", f"this route needs the permission {', '.join(sorted(wanted))}", True).to_http()

        return user_with_permission

    def permissions_of(self, user: AuthUser) -> frozenset[str]:
        granted: set[str] = set()
        for role in user.roles:
            granted |= self.role_permissions.get(role, frozenset())
        return frozenset(granted)


def bearer_credential(request: Request) -> str | None:
    """The value of an `Authorization: Bearer ...` header (RFC 6750 2.1), or None."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


# --- Shared tables: the session cookie or a bearer session token, then one query -----------------


def session_cookie_name(base_url: str | None) -> str:
    """The session cookie's name for an auth server at `base_url` (its BETTER_AUTH_URL), as Better Auth
    names it: `__Secure-better-auth.session_token` unless the URL is http://. None means https://."""
    secure = base_url is None or not base_url.lower().startswith("http://")
    return f"{SECURE_COOKIE_PREFIX}{SESSION_COOKIE}" if secure else SESSION_COOKIE


# JavaScript's String.prototype.trim() whitespace within the Latin-1 range Starlette decodes headers to.
_JS_WHITESPACE = " \t\n\v\f\r\xa0"


def parse_cookie_header(header: str) -> dict[str, str]:
    """The pairs of a Cookie header exactly as Better Auth reads them (better-call's parseCookies):
    split on ";", names and values trimmed, one pair of double quotes removed, and the FIRST pair of
    a name wins. Starlette's `request.cookies` keeps the last one, so with `t=A; t=B` the auth server
    and `request.cookies` would name different sessions. Values stay URL-encoded."""
    cookies: dict[str, str] = {}
    index, length = 0, len(header)
    while index < length:
        eq = header.find("=", index)
        if eq == -1:
            break
        end = header.find(";", index)
        if end == -1:
            end = length
        elif end < eq:
            index = header.rfind(";", 0, eq) + 1
            continue
        name = header[index:eq].strip(_JS_WHITESPACE)
        if name not in cookies:
            value = header[eq + 1 : end].strip(_JS_WHITESPACE)
            cookies[name] = value[1:-1] if value.startswith('"') else value
        index = end + 1
    return cookies


def sign_session_token(token: str, secret: str) -> str:
    """`token.base64(HMAC-SHA256(secret, token))`: the cookie value before URL-encoding."""
    digest = hmac.new(secret.encode(), token.encode(), hashlib.sha256).digest()
    return f"{token}.{base64.b64encode(digest).decode()}"


def verify_signed_token(value: str, secrets: Sequence[str]) -> str | None:
    """The session token in a signed value (URL-encoded or not) if a secret of the keyring signed it."""
    token, dot, signature = unquote(value).rpartition(".")
    if not dot or not token or len(token) > MAX_SESSION_TOKEN_LENGTH:
        return None
    given = signature.encode()
    matched = False
    for secret in secrets:
        expected = sign_session_token(token, secret).rpartition(".")[2].encode()
        matched |= hmac.compare_digest(given, expected)  # ASVS 6.2.x: constant-time comparison
    if not matched:
        _log_cause(
            "signature",
            logging.WARNING,
            f"a session token's signature matches none of the {len(secrets)} secret(s) given to SessionAuth: check that "
            "they are the auth server's BETTER_AUTH_SECRET (in development the auth server's .data/secret) and, after "
            "a rotation, the whole BETTER_AUTH_SECRETS keyring, current first",
        )
    return token if matched else None


@dataclass(frozen=True)
class SessionSchema:
    """Which optional plugin columns exist: the ban check and role apply only where they do."""

    role: bool = False  # users.role (admin plugin)
    banned: bool = False  # users.banned (admin plugin)
    ban_expires: bool = False  # users.ban_expires (admin plugin)
    active_organization_id: bool = False  # sessions.active_organization_id (organization plugin)


SCHEMA_COLUMNS_SQL = """
select c.relname as table_name, a.attname as column_name
from pg_attribute a
join pg_class c on c.oid = a.attrelid
where a.attrelid in (to_regclass('users'), to_regclass('sessions')) and a.attnum > 0 and not a.attisdropped
"""


def session_user_sql(schema: SessionSchema, param: str) -> str:
    """The one lookup: a live session by its token, joined to its user, with the ban state.

    statement_timestamp(), not now(): now() is the start of the transaction, and a connection that
    sits in an open transaction would compare expiry with a stale clock.
    """
    role = "u.role" if schema.role else "null::text"
    if schema.banned and schema.ban_expires:
        # A ban whose ban_expires has passed is over (the admin plugin lifts it at the next sign-in).
        banned = "coalesce(u.banned, false) and (u.ban_expires is null or u.ban_expires > statement_timestamp())"
    elif schema.banned:
        banned = "coalesce(u.banned, false)"
    else:
        banned = "false"
    organization = "s.active_organization_id" if schema.active_organization_id else "null::text"
    return f"""
select u.id, u.email, u.name, u.email_verified, u.image,
       u.experience_level, u.professional_role, u.role_other, u.organization,
       {role} as role, {banned} as banned, {organization} as active_organization_id,
       s.id as session_id, s.expires_at
from sessions s
join users u on u.id = s.user_id
where s.token = {param} and s.expires_at > statement_timestamp()
"""


class _Database:
    """One interface over asyncpg (Pool, Connection) and psycopg 3 (connections and psycopg_pool pools)."""

    def __init__(self, database: Any):
        self.database = database
        package = type(database).__module__.partition(".")[0]
        if package == "asyncpg":
            self.param, self.fetch = "$1", self._fetch_asyncpg
        elif package in ("psycopg", "psycopg_pool"):
            from psycopg.rows import dict_row

            self.dict_row = dict_row
            self.param = "%s"
            self.is_pool = package == "psycopg_pool"
            asynchronous = type(database).__name__.startswith("Async")
            self.fetch = self._fetch_psycopg_async if asynchronous else self._fetch_psycopg_in_thread
        else:
            raise TypeError(
                f"database must be an asyncpg Pool or Connection, or a psycopg 3 connection or pool, not {type(database).__name__}"
            )

    async def _fetch_asyncpg(self, query: str, *args: Any) -> list[dict]:
        return [dict(row) for row in await self.database.fetch(query, *args)]

    async def _fetch_psycopg_async(self, query: str, *args: Any) -> list[dict]:
        if self.is_pool:
            async with self.database.connection() as conn:
                return await self._run_async(conn, query, args)
        return await self._run_async(self.database, query, args)

    async def _run_async(self, conn: Any, query: str, args: tuple) -> list[dict]:
        # Leave no transaction open behind us: an idle-in-transaction connection holds back vacuum.
        if conn.autocommit:
            return await self._cursor_async(conn, query, args)
        async with conn.transaction():
            return await self._cursor_async(conn, query, args)

    async def _cursor_async(self, conn: Any, query: str, args: tuple) -> list[dict]:
        async with conn.cursor(row_factory=self.dict_row) as cursor:
            await cursor.execute(query, args)
            return await cursor.fetchall()

    async def _fetch_psycopg_in_thread(self, query: str, *args: Any) -> list[dict]:
        return await run_in_threadpool(self._fetch_psycopg_sync, query, args)

    def _fetch_psycopg_sync(self, query: str, args: tuple) -> list[dict]:
        if self.is_pool:
            with self.database.connection() as conn:
                return self._run_sync(conn, query, args)
        return self._run_sync(self.database, query, args)

    def _run_sync(self, conn: Any, query: str, args: tuple) -> list[dict]:
        if conn.autocommit:
            return self._cursor_sync(conn, query, args)
        with conn.transaction():
            return self._cursor_sync(conn, query, args)

    def _cursor_sync(self, conn: Any, query: str, args: tuple) -> list[dict]:
        with conn.cursor(row_factory=self.dict_row) as cursor:
            cursor.execute(query, args)
            return cursor.fetchall()


class SessionAuth(Authenticator):
    """Authenticates with the auth server's session: cookie or bearer session token, then one query.

    `secrets`: the auth server's BETTER_AUTH_SECRET first, then any previous secret still accepted
    while a rotation rolls out. `database`: an asyncpg Pool/Connection or a psycopg 3 connection or
    pool, connected to the auth server's database (a role with SELECT on users and sessions is
    enough); it may be set later, e.g. in the application's lifespan. `trusted_origins`: the site
    origins allowed to send cookie-authenticated POST/PUT/PATCH/DELETE requests (CSRF, ASVS 4.2.2),
    as the auth server's CORS_ORIGINS; None leaves that check to the application.
    """

    def __init__(
        self,
        secrets: str | Sequence[str],
        database: Any = None,
        *,
        base_url: str | None = None,
        cookie_name: str | None = None,
        trusted_origins: Sequence[str] | None = None,
        role_permissions: Mapping[str, Iterable[str]] | None = None,
    ):
        super().__init__(role_permissions)
        keyring = (secrets,) if isinstance(secrets, str) else tuple(secrets)
        self.secrets = tuple(secret for secret in keyring if secret)
        if not self.secrets:
            raise ValueError("SessionAuth needs the auth server's BETTER_AUTH_SECRET")
        # Only the name the auth server reads: an unprefixed cookie planted next to the `__Secure-`
        # one (a sibling subdomain can) is never taken for the session.
        self.cookie_name = cookie_name or session_cookie_name(base_url)
        self.trusted_origins = None if trusted_origins is None else frozenset(o.rstrip("/") for o in trusted_origins)
        self._db: _Database | None = None
        self._schema: SessionSchema | None = None
        self._query: str | None = None
        if database is not None:
            self.database = database

    @property
    def database(self) -> Any:
        return self._db.database if self._db else None

    @database.setter
    def database(self, database: Any) -> None:
        self._db = _Database(database) if database is not None else None
        self.refresh_schema()

    def refresh_schema(self) -> None:
        """Detect the optional columns again at the next request (after the auth server migrated)."""
        self._schema = None
        self._query = None

    def session_token(self, request: Request) -> tuple[str, str]:
        """The verified session token and where it came from ("bearer" or "cookie"), or AuthError.

        A bearer header, when present, decides on its own: a bad one is not rescued by a cookie.
        """
        bearer = bearer_credential(request)
        if bearer is not None:
            # Only the signed value (set-auth-token) is a bearer token, as the auth server's bearer plugin
            # (requireSignature) accepts it: the bare session token alone is not a credential.
            token = verify_signed_token(bearer, self.secrets)
            if token is None:
                raise AuthError.invalid("INVALID_SESSION", "the bearer token is not a session token of this server")
            return token, "bearer"
        value = self.session_cookie(request)
        if value:
            token = verify_signed_token(value, self.secrets)
            if token is None:
                raise AuthError.invalid("INVALID_SESSION", "the session cookie's signature does not match")
            return token, "cookie"
        raise AuthError.missing()

    def session_cookie(self, request: Request) -> str | None:
        """The session cookie's raw value, read from the Cookie header as the auth server reads it
        (first pair of the name wins), so both always see the same session; or None."""
        headers = [header for header in request.headers.getlist("cookie") if self.cookie_name in header]
        if len(headers) > 1:
            # Several Cookie header lines are joined differently by different servers: refuse rather than guess.
            raise AuthError.invalid("INVALID_SESSION", "the session cookie came in more than one Cookie header")
        return parse_cookie_header(headers[0]).get(self.cookie_name) if headers else None

    async def authenticate(self, request: Request) -> AuthUser:
        token, source = self.session_token(request)
        if source == "cookie" and self.trusted_origins is not None and request.method not in SAFE_METHODS:
            # A browser attaches the cookie to requests from any same-site page (SameSite=Lax); only
            # the site's own pages may change things with it. A bearer token is never sent implicitly.
            if request.headers.get("origin") not in self.trusted_origins:
                raise AuthError.forbidden("UNTRUSTED_ORIGIN", "cookie-authenticated writes must come from a trusted origin")
        rows = await self._database().fetch(await self._session_user_sql(), token)
        if not rows:
            raise AuthError.invalid("INVALID_SESSION", "the session is signed out or expired")
        row = rows[0]
        if row["banned"]:
            raise AuthError.forbidden("USER_BANNED", "this account is banned")
        return AuthUser(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            email_verified=row["email_verified"],
            image=row["image"],
            role=row["role"],
            experience_level=row["experience_level"],
            professional_role=row["professional_role"],
            # docs/schema.md: role_other means something only next to professional_role "other".
            role_other=row["role_other"] if row["professional_role"] == "other" else None,
            organization=row["organization"],
            active_organization_id=row["active_organization_id"],
            session_id=row["session_id"],
            expires_at=row["expires_at"],
            authenticated_by=source,
        )

    async def detect_schema(self) -> SessionSchema:
        """Which optional columns the auth server's tables have; once, until refresh_schema()."""
        if self._schema is None:
            columns: dict[str, set[str]] = {"users": set(), "sessions": set()}
            for row in await self._database().fetch(SCHEMA_COLUMNS_SQL):
                columns[row["table_name"]].add(row["column_name"])
            missing = sorted(
                [f"users.{c}" for c in CORE_USER_COLUMNS - columns["users"]]
                + [f"sessions.{c}" for c in CORE_SESSION_COLUMNS - columns["sessions"]]
            )
            if missing:
                raise RuntimeError(
                    f"the database lacks {', '.join(missing)}: connect to the auth server's database after its migrations ran"
                )
            self._schema = SessionSchema(
                role="role" in columns["users"],
                banned="banned" in columns["users"],
                ban_expires="ban_expires" in columns["users"],
                active_organization_id="active_organization_id" in columns["sessions"],
            )
        return self._schema

    async def _session_user_sql(self) -> str:
        if self._query is None:
            self._query = session_user_sql(await self.detect_schema(), self._database().param)
        return self._query

    def _database(self) -> _Database:
        if self._db is None:
            raise RuntimeError("SessionAuth.database is not set: assign the database pool (e.g. in the app's lifespan)")
        return self._db


# --- JWT: GET /api/auth/token verified against GET /api/auth/jwks, no database ------------------


class JwksUnavailable(Exception):
    """The key set could not be fetched or has no usable key."""


class _JwksClient(PyJWKClient):
    """PyJWKClient with a network timeout (PyJWT before 2.7 waits forever) and fetch errors of its own."""

    def __init__(self, url: str, cache_seconds: int, timeout: float):
        super().__init__(url, cache_jwk_set=True, lifespan=cache_seconds)
        self.timeout = timeout

    def fetch_data(self) -> Any:
        request = urllib.request.Request(self.uri, headers={"accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                key_set = json.load(response)
        except (OSError, ValueError) as error:  # URLError, timeouts, refused connections; bad JSON
            raise JwksUnavailable(f"could not fetch {self.uri}: {error}") from error
        if self.jwk_set_cache is not None:
            self.jwk_set_cache.put(key_set)
        return key_set


def _key_algorithm(key: jwt.PyJWK) -> str | None:
    # PyJWT 2.8+ exposes the JWK's "alg" as algorithm_name; older versions only keep the raw JWK.
    return getattr(key, "algorithm_name", None) or getattr(key, "_jwk_data", {}).get("alg")


class JwtAuth(Authenticator):
    """Authenticates with a JWT from `GET /api/auth/token`, sent as `Authorization: Bearer <jwt>`.

    `issuer`: the auth server's BETTER_AUTH_URL. `audience`: its JWT_AUDIENCE (default: the issuer).
    `jwks_url`: where to fetch the keys (default: issuer + /api/auth/jwks). The key set is cached
    for `jwks_cache_seconds`; a token naming an unknown `kid` fetches it again at once (a rotated
    key), but at most once every `min_refetch_seconds`, so made-up kids cannot hammer the server.
    """

    def __init__(
        self,
        issuer: str,
        audience: str | Sequence[str] | None = None,
        *,
        jwks_url: str | None = None,
        algorithms: Sequence[str] = ("RS256",),
        leeway: float = 10.0,
        jwks_cache_seconds: int = 300,
        min_refetch_seconds: float = 10.0,
        timeout: float = 5.0,
        role_permissions: Mapping[str, Iterable[str]] | None = None,
    ):
        super().__init__(role_permissions)
        refused = set(algorithms) - PUBLIC_KEY_ALGORITHMS
        if refused or not algorithms:
            raise ValueError(f"algorithms must be among {sorted(PUBLIC_KEY_ALGORITHMS)}; refused: {sorted(refused)}")
        self.issuer = issuer.rstrip("/")
        self.audience = audience if audience is not None else self.issuer
        self.algorithms = tuple(algorithms)
        self.leeway = leeway  # RFC 7519 4.1.4: a small allowance for clock skew between hosts
        self.min_refetch_seconds = min_refetch_seconds
        self.jwks = _JwksClient(jwks_url or f"{self.issuer}/api/auth/jwks", jwks_cache_seconds, timeout)
        self._refetch_lock = threading.Lock()
        self._last_refetch = -math.inf

    async def authenticate(self, request: Request) -> AuthUser:
        token = bearer_credential(request)
        if not token:
            raise AuthError.missing()
        if token.count(".") != 2 or len(token) > MAX_JWT_LENGTH:
            raise AuthError.invalid("INVALID_TOKEN", "the bearer token is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError.invalid("INVALID_TOKEN", "the JWT header cannot be read") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            # The message is fixed: it ends up in a header, and `alg` is whatever the caller wrote.
            raise AuthError.invalid("INVALID_TOKEN", "the JWT algorithm is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError.invalid("INVALID_TOKEN", "the JWT names no signing key (kid)")
        claims = await run_in_threadpool(self.verify, token, algorithm, kid)
        role_other = claims.get("roleOther") if claims.get("professionalRole") == "other" else None
        return AuthUser(
            id=claims["sub"],
            email=claims.get("email") or "",
            name=claims.get("name") or "",
            email_verified=claims.get("emailVerified") is True,
            # The platform role claim (admin plugin); absent in tokens of servers without it.
            role=claims.get("role"),
            experience_level=claims.get("experienceLevel"),
            professional_role=claims.get("professionalRole"),
            role_other=role_other,
            organization=claims.get("organization"),
            active_organization_id=claims.get("activeOrganizationId"),
            session_id=claims.get("sid"),
            expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc),
            authenticated_by="jwt",
        )

    def verify(self, token: str, algorithm: str, kid: str) -> dict:
        """The verified claims, or AuthError (blocking: it may fetch the key set)."""
        try:
            key = self.signing_key(kid)
        except JwksUnavailable as error:
            raise auth_unavailable(str(error)) from None
        if key is None:
            raise AuthError.invalid("INVALID_TOKEN", "the JWT is signed with a key the auth server does not publish")
        if _key_algorithm(key) not in (None, algorithm):
            raise AuthError.invalid("INVALID_TOKEN", "the JWT algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            self._log_refusal(token, error)
            raise AuthError.invalid("INVALID_TOKEN", _describe(error)) from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthError.invalid("INVALID_TOKEN", "the JWT subject is empty")
        return claims

    def _log_refusal(self, token: str, error: Exception) -> None:
        """A refusal that points at this app's settings rather than at the caller: say what to check."""
        if isinstance(error, (jwt.InvalidIssuerError, jwt.InvalidAudienceError)):
            # The signature verified before the claims were checked: these claims are the auth server's.
            claims = jwt.decode(token, options={"verify_signature": False})
        if isinstance(error, jwt.InvalidIssuerError):
            _log_cause(
                "issuer",
                logging.WARNING,
                f"a JWT signed by a published key has the issuer {claims.get('iss')!r}, this JwtAuth expects "
                f"{self.issuer!r}: JwtAuth(issuer=...) must be the auth server's BETTER_AUTH_URL",
            )
        elif isinstance(error, jwt.InvalidAudienceError):
            _log_cause(
                "audience",
                logging.WARNING,
                f"a JWT signed by a published key has the audience {claims.get('aud')!r}, this JwtAuth expects "
                f"{self.audience!r}: JwtAuth(audience=...) must be the auth server's JWT_AUDIENCE (default: its BETTER_AUTH_URL)",
            )
        elif isinstance(error, jwt.InvalidSignatureError):
            _log_cause(
                "jwt-signature",
                logging.WARNING,
                f"a JWT's signature does not verify with the key it names from {self.jwks.uri}: check that this is the "
                "key set of the auth server that issued it",
            )

    def signing_key(self, kid: str) -> jwt.PyJWK | None:
        """The published key `kid`, fetching the key set again (rate-limited) when it is unknown."""
        key = self._find_key(kid, refresh=False)
        if key is not None:
            return key
        with self._refetch_lock:
            key = self._find_key(kid, refresh=False)  # another thread may have fetched it meanwhile
            if key is not None or time.monotonic() - self._last_refetch < self.min_refetch_seconds:
                return key
            self._last_refetch = time.monotonic()
            return self._find_key(kid, refresh=True)

    def _find_key(self, kid: str, refresh: bool) -> jwt.PyJWK | None:
        try:
            keys = self.jwks.get_signing_keys(refresh=refresh)
        except (PyJWKClientError, PyJWKSetError) as error:
            raise JwksUnavailable(f"the key set at {self.jwks.uri} is unusable: {error}") from error
        return next((key for key in keys if key.key_id == kid), None)


def _describe(error: Exception) -> str:
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the JWT has expired"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the JWT is meant for another audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the JWT comes from another issuer"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the JWT lacks the {error.claim} claim"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the JWT is not valid yet"
    if isinstance(error, jwt.InvalidSignatureError):
        return "the JWT signature does not verify"
    return "the JWT is not valid"
