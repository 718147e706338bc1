"""Shared tables: the session cookie or a bearer session token, verified with the secret and looked
up in sessions + users by the read-only role, against the real auth server."""

from __future__ import annotations

import secrets
from urllib.parse import quote, unquote

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from auth_server_fastapi import AuthError, AuthUser, SessionAuth, sign_session_token
from conftest import DRIVERS, SITE_ORIGIN, AuthServer, database_lifespan, example_client, session_client
from example_app import app_from_env


def tampered(signed: str) -> str:
    """The same token with one character of its signature changed."""
    token, _, signature = signed.rpartition(".")
    return f"{token}.{('B' if signature[0] == 'A' else 'A') + signature[1:]}"


def test_the_server_signs_cookies_and_bearer_tokens_as_sign_session_token_does(auth_server: AuthServer):
    user = auth_server.sign_up()
    expected = sign_session_token(user.token, auth_server.secret)
    assert user.cookie_name == "better-auth.session_token"
    assert unquote(user.cookie_value) == expected
    assert user.cookie_value == quote(expected, safe="")  # encodeURIComponent
    assert user.set_auth_token == expected


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_session_cookie_authenticates_and_returns_the_user_and_profile(auth_server: AuthServer, driver: str):
    user = auth_server.sign_up(name="Grace", experienceLevel="advanced", professionalRole="other", roleOther="navy", organization="ACM")
    (session_id,) = auth_server.sql("select id from sessions where token = %s", (user.token,))[0]
    with session_client(auth_server, driver) as client:
        response = client.get("/api/profile", headers=user.cookie)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": user.user_id,
        "email": user.email,
        "name": "Grace",
        "emailVerified": False,
        "role": "user",  # users.role, the admin plugin's platform role (default "user")
        "experienceLevel": "advanced",
        "professionalRole": "other",
        "roleOther": "navy",
        "organization": "ACM",
        "activeOrganizationId": None,  # sessions.active_organization_id: no organization chosen
        "sessionId": session_id,
        "authenticatedBy": "cookie",
    }


@pytest.mark.parametrize("driver", DRIVERS)
def test_sign_out_makes_the_cookie_and_bearer_token_fail_at_once(auth_server: AuthServer, driver: str):
    user = auth_server.sign_up()
    with session_client(auth_server, driver) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        assert client.get("/api/profile", headers=user.bearer()).status_code == 200
        auth_server.sign_out(user)
        for headers in (user.cookie, user.bearer()):
            response = client.get("/api/profile", headers=headers)
            assert response.status_code == 401
            assert response.json()["detail"]["code"] == "INVALID_SESSION"
            assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_expired_session_answers_401_though_its_row_is_still_there(auth_server: AuthServer, driver: str):
    user = auth_server.sign_up()
    with session_client(auth_server, driver) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        auth_server.sql("update sessions set expires_at = now() - interval '1 second' where token = %s", (user.token,))
        assert client.get("/api/profile", headers=user.cookie).status_code == 401
    assert auth_server.sql("select count(*) from sessions where token = %s", (user.token,)) == [(1,)]


def test_the_set_auth_token_header_is_a_bearer_token_plain_or_url_encoded(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server) as client:
        for value in (user.set_auth_token, quote(user.set_auth_token, safe="")):
            response = client.get("/api/profile", headers=user.bearer(value))
            assert response.status_code == 200, response.text
            assert response.json()["authenticatedBy"] == "bearer"


def test_the_unsigned_token_is_refused_as_a_bearer_token_as_the_auth_server_refuses_it(auth_server: AuthServer):
    user = auth_server.sign_up()
    # A request of its own: the shared client's cookie jar holds the session cookie.
    assert httpx.get(f"{auth_server.api}/api/auth/get-session", headers={"Origin": SITE_ORIGIN, **user.bearer(user.token)}).json() is None
    assert httpx.get(f"{auth_server.api}/api/auth/get-session", headers={"Origin": SITE_ORIGIN, **user.bearer()}).json()["user"]["id"] == user.user_id
    with session_client(auth_server) as client:
        refused = client.get("/api/profile", headers=user.bearer(user.token))
        assert refused.status_code == 401
        assert refused.json()["detail"]["code"] == "INVALID_SESSION"
        assert client.get("/api/profile", headers=user.bearer()).status_code == 200


def test_only_the_cookie_name_the_servers_url_gives_is_read(auth_server: AuthServer):
    user = auth_server.sign_up()
    plain = {"Cookie": f"{user.cookie_name}={user.cookie_value}"}
    secure = {"Cookie": f"__Secure-{user.cookie_name}={user.cookie_value}"}
    # Over http:// the server names it plainly and never reads a `__Secure-` one.
    with session_client(auth_server) as client:
        assert client.get("/api/profile", headers=plain).status_code == 200
        assert client.get("/api/profile", headers=secure).status_code == 401
    assert auth_server.http.get("/api/auth/get-session", headers=secure).json() is None
    # Over https:// (and by default) only the `__Secure-` name: an unprefixed cookie, which a sibling
    # subdomain can plant, is no session.
    for options in ({"base_url": "https://auth.example.test"}, {"base_url": None}):
        with session_client(auth_server, **options) as client:
            assert client.get("/api/profile", headers=secure).status_code == 200
            response = client.get("/api/profile", headers=plain)
            assert response.status_code == 401
            assert "error=" not in response.headers["www-authenticate"]  # missing, not invalid


def test_with_a_session_cookie_twice_the_module_and_the_auth_server_pick_the_same_session(auth_server: AuthServer):
    victim, attacker = auth_server.sign_up(), auth_server.sign_up()
    name = victim.cookie_name
    shapes = [
        f"{name}={victim.cookie_value}; {name}={attacker.cookie_value}",
        f"{name}={attacker.cookie_value}; {name}={victim.cookie_value}",
        f"other=1;{name}={victim.cookie_value};{name}={attacker.cookie_value}",
        f'{name}="{victim.cookie_value}"; {name}={attacker.cookie_value}',
        f"x=1; {name} = {attacker.cookie_value} ; {name}={victim.cookie_value}",
        f"{name}=; {name}={victim.cookie_value}",
        f"junk; {name}={attacker.cookie_value}; {name}={victim.cookie_value}",
        f"{name}={victim.cookie_value}garbage; {name}={attacker.cookie_value}",
    ]
    with session_client(auth_server) as client:
        for header in shapes:
            server = auth_server.http.get("/api/auth/get-session", headers={"Cookie": header}).json()
            response = client.get("/api/profile", headers={"Cookie": header})
            module = response.json()["id"] if response.status_code == 200 else None
            assert module == (server["user"]["id"] if server else None), header


def test_the_session_cookie_in_two_cookie_header_lines_is_refused(auth_server: AuthServer):
    # httpx joins header lines, so the request is built as a server hands it over: two Cookie lines.
    user = auth_server.sign_up()
    auth = SessionAuth(auth_server.secret, base_url=auth_server.url)

    def request(*lines: str) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": [(b"cookie", line.encode()) for line in lines]})

    signed = f"{user.cookie_name}={user.cookie_value}"
    with pytest.raises(AuthError) as refused:
        auth.session_token(request(signed, f"{user.cookie_name}=x.y"))
    assert refused.value.code == "INVALID_SESSION"
    # A second Cookie line without the session cookie changes nothing.
    assert auth.session_token(request(signed, "theme=dark")) == (user.token, "cookie")


def test_a_request_without_credentials_answers_401_with_a_bearer_challenge(auth_server: AuthServer):
    with session_client(auth_server) as client:
        response = client.get("/api/profile")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": {"code": "UNAUTHENTICATED", "message": "sign in to use this route"}}


def test_a_tampered_signature_answers_401_before_any_database_lookup(auth_server: AuthServer):
    user = auth_server.sign_up()
    # No database at all: a lookup would fail loudly, so a 401 proves the signature check came first.
    with example_client(SessionAuth(auth_server.secret, base_url=auth_server.url)) as client:
        forged_cookie = {"Cookie": f"{user.cookie_name}={quote(tampered(unquote(user.cookie_value)), safe='')}"}
        for headers in (forged_cookie, user.bearer(tampered(user.set_auth_token))):
            response = client.get("/api/profile", headers=headers)
            assert response.status_code == 401
            assert response.json()["detail"]["code"] == "INVALID_SESSION"


def test_a_signature_of_another_token_or_secret_answers_401(auth_server: AuthServer):
    user, other = auth_server.sign_up(), auth_server.sign_up()
    signature = user.set_auth_token.rpartition(".")[2]
    with session_client(auth_server) as client:
        assert client.get("/api/profile", headers=user.bearer(f"{other.token}.{signature}")).status_code == 401
        forged = sign_session_token(user.token, "a secret the server does not have, 32+ characters")
        assert client.get("/api/profile", headers=user.bearer(forged)).status_code == 401


def test_a_previous_secret_in_the_keyring_still_verifies_and_without_it_the_cookie_fails(auth_server: AuthServer):
    user = auth_server.sign_up()
    new_secret = secrets.token_urlsafe(36)
    with session_client(auth_server, keyring=(new_secret, auth_server.secret)) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
    with session_client(auth_server, keyring=(new_secret,)) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 401


def test_a_bearer_header_decides_alone_and_other_authorization_schemes_leave_the_cookie_in_charge(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server) as client:
        bad_bearer = {**user.cookie, **user.bearer(tampered(user.set_auth_token))}
        assert client.get("/api/profile", headers=bad_bearer).status_code == 401
        basic = {**user.cookie, "Authorization": "Basic dXNlcjpwYXNz"}
        assert client.get("/api/profile", headers=basic).status_code == 200


def test_a_jwt_is_not_a_session_token(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server) as client:
        assert client.get("/api/profile", headers=user.bearer(auth_server.jwt(user.cookie))).status_code == 401


def test_optional_user_greets_guests_signed_in_users_and_treats_a_dead_session_as_a_guest(auth_server: AuthServer):
    user = auth_server.sign_up(name="Ada")
    with session_client(auth_server) as client:
        assert client.get("/api/greeting").json() == {"greeting": "Hello, guest"}
        assert client.get("/api/greeting", headers=user.cookie).json() == {"greeting": "Hello, Ada"}
        auth_server.sign_out(user)
        response = client.get("/api/greeting", headers=user.cookie)
        assert (response.status_code, response.json()) == (200, {"greeting": "Hello, guest"})


def test_the_organization_route_answers_403_while_the_session_has_no_active_organization(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server) as client:
        response = client.get("/api/organization/courses", headers=user.cookie)
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "NO_ACTIVE_ORGANIZATION"


def test_role_and_permission_routes_answer_403_while_users_have_no_role_column(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server) as client:
        for response in (client.get("/api/admin/overview", headers=user.cookie), client.post("/api/courses", headers=user.cookie)):
            assert response.status_code == 403
            assert response.json()["detail"]["code"] == "FORBIDDEN"
            assert response.headers["www-authenticate"] == 'Bearer error="insufficient_scope"'
        assert client.get("/api/admin/overview").status_code == 401


def test_with_trusted_origins_cookie_authenticated_writes_need_a_trusted_origin(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server, trusted_origins=[SITE_ORIGIN]) as client:
        for origin in (None, "https://evil.example", "null"):
            headers = {**user.cookie, **({"Origin": origin} if origin else {})}
            response = client.post("/api/courses", headers=headers)
            assert (response.status_code, response.json()["detail"]["code"]) == (403, "UNTRUSTED_ORIGIN")
        # Past the origin check, the route's own rule answers (this user has no role that may create).
        response = client.post("/api/courses", headers={**user.cookie, "Origin": SITE_ORIGIN})
        assert response.json()["detail"]["code"] == "FORBIDDEN"
        assert client.post("/api/courses", headers=user.bearer()).json()["detail"]["code"] == "FORBIDDEN"
        assert client.get("/api/profile", headers=user.cookie).status_code == 200


def test_reading_a_session_never_writes_it(auth_server: AuthServer):
    user = auth_server.sign_up()
    # Due for a slide by the auth server's rules (updateAge is a day): a reader must not extend it.
    auth_server.sql(
        "update sessions set updated_at = now() - interval '2 days', expires_at = now() + interval '1 hour' where token = %s",
        (user.token,),
    )
    before = auth_server.sql("select expires_at, updated_at from sessions where token = %s", (user.token,))
    with session_client(auth_server) as client:
        for _ in range(3):
            assert client.get("/api/profile", headers=user.cookie).status_code == 200
    assert auth_server.sql("select expires_at, updated_at from sessions where token = %s", (user.token,)) == before


def test_the_example_app_configured_from_the_environment_reads_the_session(auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch):
    user = auth_server.sign_up()
    monkeypatch.setenv("AUTH_MODE", "session")
    monkeypatch.setenv("AUTH_DATABASE_URL", auth_server.reader_url)
    monkeypatch.setenv("BETTER_AUTH_SECRET", secrets.token_urlsafe(36))
    monkeypatch.setenv("BETTER_AUTH_PREVIOUS_SECRET", auth_server.secret)
    monkeypatch.setenv("BETTER_AUTH_URL", auth_server.url)
    with TestClient(app_from_env()) as client:
        assert client.get("/api/profile", headers=user.cookie).json()["id"] == user.user_id


def test_current_user_is_a_typed_auth_user(auth_server: AuthServer):
    user = auth_server.sign_up()
    auth = SessionAuth(auth_server.secret, base_url=auth_server.url)
    app = FastAPI()
    app.router.lifespan_context = database_lifespan(auth, "asyncpg", auth_server.reader_url)
    seen: list[AuthUser] = []

    @app.get("/whoami")
    async def whoami(current: AuthUser = Depends(auth.current_user)) -> dict:
        seen.append(current)
        return {}

    with TestClient(app) as client:
        assert client.get("/whoami", headers=user.cookie).status_code == 200
    (current,) = seen
    assert isinstance(current, AuthUser)
    assert (current.id, current.email, current.email_verified, current.roles) == (user.user_id, user.email, False, frozenset({"user"}))
    assert current.expires_at is not None and current.expires_at.tzinfo is not None


def test_a_reader_on_a_single_connection_leaves_no_transaction_open(auth_server: AuthServer):
    user = auth_server.sign_up()
    with session_client(auth_server, "psycopg-connection") as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        states = auth_server.sql("select state from pg_stat_activity where usename = %s", (auth_server.reader_role,))
    assert states == [("idle",)]
