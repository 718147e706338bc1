"""Test fixtures, defined once: per test module a fresh Postgres database and the real auth server
(`bun src/index.ts` on a free loopback port), users signed up over HTTP, and the example app driven
in process with FastAPI's TestClient, connected with each supported database driver."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from auth_server_fastapi import Authenticator, SessionAuth
from example_app import ROLE_PERMISSIONS, create_app

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The Postgres the tests create their databases in, as for the server's own tests.
ADMIN_URL = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
SITE_ORIGIN = "http://localhost:3000"
PASSWORD = "correct horse battery"
START_TIMEOUT_S = 30

# The database drivers SessionAuth supports, each opened the way an app would open it.
DRIVERS = ("asyncpg", "psycopg-async-pool", "psycopg-connection", "psycopg-sync-pool")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str, user: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rpartition("@")[2]
        netloc = f"{quote(user)}:{quote(password or '')}@{host}"
    return urlunsplit((parts.scheme, netloc, f"/{name}", parts.query, ""))


def admin(query: str, url: str = ADMIN_URL) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(query)


@dataclass
class SignedIn:
    """A user signed in over HTTP, and the credentials the auth server handed out."""

    email: str
    user_id: str
    token: str  # the unsigned token: the `token` of the answer's body, sessions.token
    cookie_name: str
    cookie_value: str  # as the browser sends it back: URL-encoded token.signature
    set_auth_token: str  # the set-auth-token header: token.signature

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"{self.cookie_name}={self.cookie_value}"}

    def bearer(self, value: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.set_auth_token if value is None else value}"}


class AuthServer:
    """The auth server as a subprocess on its own database, with a read-only role for readers."""

    def __init__(self, label: str):
        suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.database_name = f"authpy_{label}_{suffix}"
        self.database_url = with_database(ADMIN_URL, self.database_name)
        self.reader_role = f"authpy_reader_{suffix}"
        self.reader_password = secrets.token_urlsafe(16)
        self.secret = secrets.token_urlsafe(36)
        self.port = free_port()
        self.url = f"http://localhost:{self.port}"  # BETTER_AUTH_URL: cookies' site, JWT iss and aud
        self.api = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="auth-server-", suffix=".log", delete=False)
        self.http = httpx.Client(base_url=self.api, headers={"Origin": SITE_ORIGIN}, timeout=15)

    @property
    def reader_url(self) -> str:
        """The database as a reader sees it: a role that may only SELECT from users and sessions."""
        return with_database(ADMIN_URL, self.database_name, self.reader_role, self.reader_password)

    def create(self) -> None:
        admin(f'create database "{self.database_name}"')
        self.start()
        admin(f"create role \"{self.reader_role}\" login password '{self.reader_password}'")
        self.sql(f'grant select on users, sessions to "{self.reader_role}"')

    def destroy(self) -> None:
        self.stop()
        self.http.close()
        admin(f'drop database if exists "{self.database_name}" with (force)')
        admin(f'drop role if exists "{self.reader_role}"')
        os.unlink(self.log.name)

    def start(self, secret: str | None = None) -> None:
        bun = shutil.which("bun")
        if bun is None:
            raise RuntimeError("bun is not on PATH: the tests start the real auth server")
        if secret is not None:
            self.secret = secret
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "NODE_ENV": "test",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATABASE_URL": self.database_url,
            "BETTER_AUTH_SECRET": self.secret,
            "BETTER_AUTH_URL": self.url,
            "CORS_ORIGINS": SITE_ORIGIN,
            "RATE_LIMIT": "off",
            "LOG_LEVEL": "warn",
        }
        self.process = subprocess.Popen(
            [bun, "src/index.ts"], cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the auth server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.http.get("/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the auth server did not answer /health within {START_TIMEOUT_S} s:\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM to the server's pid (it drains and exits 0), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, secret: str | None = None) -> None:
        self.stop()
        self.start(secret)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """The test's own queries, as the database owner (the reader role cannot write)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def sql_without_triggers(self, query: str, params: tuple = ()) -> None:
        """A write the schema's triggers do not see (`session_replication_role = replica`): e.g. a ban its
        sessions outlive, as a session written by a server that raced the ban would, so that the module's own
        ban check is what refuses it (in the schema, a ban in force deletes the user's sessions)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute("set session_replication_role = replica")
            conn.execute(query, params)

    def sign_up(self, **profile: str) -> SignedIn:
        email = f"user-{secrets.token_hex(4)}@example.com"
        body = {"name": profile.pop("name", "Ada Lovelace"), "email": email, "password": PASSWORD, **profile}
        return self._signed_in(self.http.post("/api/auth/sign-up/email", json=body), email)

    def sign_in(self, email: str) -> SignedIn:
        return self._signed_in(self.http.post("/api/auth/sign-in/email", json={"email": email, "password": PASSWORD}), email)

    def _signed_in(self, response: httpx.Response, email: str) -> SignedIn:
        assert response.status_code == 200, f"{response.status_code} {response.text}\n{self.output()}"
        name, _, value = response.headers["set-cookie"].partition(";")[0].partition("=")
        body = response.json()
        return SignedIn(email, body["user"]["id"], body["token"], name, value, response.headers["set-auth-token"])

    def sign_out(self, user: SignedIn) -> None:
        response = self.http.post("/api/auth/sign-out", headers=user.cookie, json={})
        assert response.status_code == 200, response.text

    def jwt(self, headers: dict[str, str]) -> str:
        """A JWT from GET /api/auth/token, asked for with a cookie or a bearer header."""
        response = self.http.get("/api/auth/token", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["token"]

    def session_is_valid(self, user: SignedIn) -> bool:
        """Whether the auth server itself still accepts the user's cookie."""
        return self.http.get("/api/auth/get-session", headers=user.cookie).json() is not None


@pytest.fixture(scope="module")
def auth_server(request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    server = AuthServer(request.module.__name__.removeprefix("test_"))
    try:
        server.create()
        yield server
    finally:
        server.destroy()


def database_lifespan(auth: SessionAuth, driver: str, url: str):
    """The app's lifespan: open the database the way an app using `driver` would, hand it to auth."""

    @asynccontextmanager
    async def lifespan(app):
        if driver == "asyncpg":
            import asyncpg

            database = await asyncpg.create_pool(url, min_size=1, max_size=4)
            close = database.close
        elif driver == "psycopg-async-pool":
            from psycopg_pool import AsyncConnectionPool

            database = AsyncConnectionPool(url, min_size=1, max_size=4, open=False)
            await database.open(wait=True)
            close = database.close
        elif driver == "psycopg-connection":
            # A single connection in its default mode (not autocommit): the reader must not leave
            # a transaction open behind it.
            database = await psycopg.AsyncConnection.connect(url)
            close = database.close
        elif driver == "psycopg-sync-pool":
            from psycopg_pool import ConnectionPool

            database = ConnectionPool(url, min_size=1, max_size=4, open=False)
            database.open(wait=True)

            async def close() -> None:
                database.close()
        else:
            raise ValueError(driver)
        auth.database = database
        try:
            yield
        finally:
            auth.database = None
            await close()

    return lifespan


@contextmanager
def example_client(auth: Authenticator, lifespan=None) -> Iterator[TestClient]:
    """The example app around `auth`, in process."""
    with TestClient(create_app(auth, lifespan)) as client:
        yield client


@contextmanager
def session_client(server: AuthServer, driver: str = "asyncpg", keyring: tuple[str, ...] | None = None, **options) -> Iterator[TestClient]:
    """The example app in shared-tables mode, reading the server's tables as the read-only role."""
    auth = SessionAuth(keyring or (server.secret,), role_permissions=ROLE_PERMISSIONS, **{"base_url": server.url, **options})
    with example_client(auth, database_lifespan(auth, driver, server.reader_url)) as client:
        yield client
