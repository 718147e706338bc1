"""Refusals that come from the app's own settings say what to check in the app's log (the secret, the
expected and received issuer, the key set's address), and never in the client's answer."""

from __future__ import annotations

import logging
import socket

import pytest

import auth_server_fastapi
from auth_server_fastapi import JwtAuth, SessionAuth, sign_session_token
from conftest import example_client
from test_jwt_policy import KeyServer, bearer, keys  # noqa: F401 (the key server fixture)

SERVER_SECRET = "the auth server's secret, 32 characters or more"


@pytest.fixture(autouse=True)
def fresh_log_interval():
    # Each cause is logged at most once a minute per process: every test starts with none logged.
    auth_server_fastapi._last_logged.clear()


def causes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "auth_server_fastapi"]


def test_a_session_token_signed_with_another_secret_logs_what_to_check_and_answers_a_plain_401(caplog):
    signed = sign_session_token("a" * 32, SERVER_SECRET)
    with caplog.at_level(logging.WARNING), example_client(SessionAuth("not the server's secret, but 32 characters long", base_url="http://localhost:3001")) as client:
        for _ in range(3):
            response = client.get("/api/profile", headers=bearer(signed))
            assert response.status_code == 401
            assert response.json()["detail"] == {"code": "INVALID_SESSION", "message": "the bearer token is not a session token of this server"}
        client.cookies.set("better-auth.session_token", signed)
        assert client.get("/api/profile").json()["detail"]["code"] == "INVALID_SESSION"
    logged = causes(caplog)
    assert len(logged) == 1  # at most once a minute, however many tokens fail
    assert "matches none of the 1 secret(s) given to SessionAuth" in logged[0]
    assert "BETTER_AUTH_SECRET" in logged[0] and ".data/secret" in logged[0]
    assert "BETTER_AUTH_SECRET" not in response.text


def test_a_jwt_from_another_issuer_logs_both_issuers_but_the_client_sees_neither(keys: KeyServer, caplog):
    expected = "https://auth.expected.example"
    auth = JwtAuth(expected, audience=keys.url, jwks_url=f"{keys.url}/api/auth/jwks")
    with caplog.at_level(logging.WARNING), example_client(auth) as client:
        response = client.get("/api/profile", headers=bearer(keys.sign(keys.claims())))
    assert response.status_code == 401
    assert response.json()["detail"] == {"code": "INVALID_TOKEN", "message": "the JWT comes from another issuer"}
    assert keys.url not in response.text and expected not in response.text
    [logged] = causes(caplog)
    assert f"has the issuer {keys.url!r}, this JwtAuth expects {expected!r}" in logged
    assert "BETTER_AUTH_URL" in logged


def test_a_jwt_for_another_audience_logs_both_audiences(keys: KeyServer, caplog):
    auth = JwtAuth(keys.url, audience="https://api.expected.example")
    with caplog.at_level(logging.WARNING), example_client(auth) as client:
        response = client.get("/api/profile", headers=bearer(keys.sign(keys.claims())))
    assert response.json()["detail"] == {"code": "INVALID_TOKEN", "message": "the JWT is meant for another audience"}
    [logged] = causes(caplog)
    assert f"has the audience {keys.url!r}, this JwtAuth expects 'https://api.expected.example'" in logged


def test_a_503_names_no_internal_address_or_system_error_but_the_log_does(keys: KeyServer, caplog):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    internal = f"http://127.0.0.1:{closed_port}/api/auth/jwks"
    auth = JwtAuth(keys.url, jwks_url=internal, timeout=2)
    with caplog.at_level(logging.WARNING), example_client(auth) as client:
        response = client.get("/api/profile", headers=bearer(keys.sign(keys.claims())))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["detail"] == {
        "code": "AUTH_UNAVAILABLE",
        "message": "the auth server cannot be reached to check the token; try again shortly",
    }
    assert str(closed_port) not in response.text and "refused" not in response.text.lower()
    [logged] = causes(caplog)
    assert internal in logged and "refused" in logged.lower()
