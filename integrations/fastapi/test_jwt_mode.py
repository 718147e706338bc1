"""JWT mode against the real auth server: tokens from GET /api/auth/token verified with its JWKS,
forged tokens refused, and a rotated signing key picked up."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from auth_server_fastapi import JwtAuth
from conftest import AuthServer, example_client, free_port
from example_app import ROLE_PERMISSIONS, app_from_env


def jwt_auth(server: AuthServer, **options) -> JwtAuth:
    return JwtAuth(server.url, jwks_url=f"{server.api}/api/auth/jwks", role_permissions=ROLE_PERMISSIONS, **options)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    return json.loads(base64.urlsafe_b64decode(header + "==")), json.loads(base64.urlsafe_b64decode(payload + "=="))


def forge(header: dict, payload: dict, hmac_key: bytes | None = None, signature: str = "") -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if hmac_key is not None:
        signature = b64url(hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{signature}"


def test_a_jwt_from_the_token_endpoint_authenticates_with_the_users_claims(auth_server: AuthServer):
    user = auth_server.sign_up(name="Ada", experienceLevel="beginner", professionalRole="student")
    (session_id,) = auth_server.sql("select id from sessions where token = %s", (user.token,))[0]
    with example_client(jwt_auth(auth_server)) as client:
        response = client.get("/api/profile", headers=bearer(auth_server.jwt(user.cookie)))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": user.user_id,
        "email": user.email,
        "name": "Ada",
        "emailVerified": False,
        "role": "user",  # the platform role (admin plugin), in the JWT's role claim
        "experienceLevel": "beginner",
        "professionalRole": "student",
        "roleOther": None,
        "organization": None,
        "activeOrganizationId": None,
        "sessionId": session_id,
        "authenticatedBy": "jwt",
    }


def test_a_jwt_asked_for_with_a_bearer_session_token_works_too(auth_server: AuthServer):
    user = auth_server.sign_up()
    with example_client(jwt_auth(auth_server)) as client:
        response = client.get("/api/profile", headers=bearer(auth_server.jwt(user.bearer())))
    assert response.json()["id"] == user.user_id


def test_a_jwt_stays_valid_after_sign_out_until_it_expires(auth_server: AuthServer):
    user = auth_server.sign_up()
    token = auth_server.jwt(user.cookie)
    auth_server.sign_out(user)
    with example_client(jwt_auth(auth_server)) as client:
        assert client.get("/api/profile", headers=bearer(token)).status_code == 200


def test_a_jwt_for_another_audience_or_from_another_issuer_answers_401(auth_server: AuthServer):
    token = auth_server.jwt(auth_server.sign_up().cookie)
    with example_client(jwt_auth(auth_server, audience="https://api.elsewhere.example")) as client:
        response = client.get("/api/profile", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["detail"] == {"code": "INVALID_TOKEN", "message": "the JWT is meant for another audience"}
    foreign = JwtAuth("https://auth.elsewhere.example", audience=auth_server.url, jwks_url=f"{auth_server.api}/api/auth/jwks")
    with example_client(foreign) as client:
        assert client.get("/api/profile", headers=bearer(token)).json()["detail"]["message"] == "the JWT comes from another issuer"


def test_forged_tokens_answer_401(auth_server: AuthServer):
    token = auth_server.jwt(auth_server.sign_up().cookie)
    header, payload = parts(token)
    public_jwk = auth_server.http.get("/api/auth/jwks").json()["keys"][0]
    public_pem = (
        jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(public_jwk))
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signature = token.rpartition(".")[2]
    forgeries = {
        "alg none": forge({**header, "alg": "none"}, payload),
        "HS256 keyed with the public key (PEM)": forge({**header, "alg": "HS256"}, payload, hmac_key=public_pem),
        "HS256 keyed with the public key (JWK)": forge({**header, "alg": "HS256"}, payload, hmac_key=json.dumps(public_jwk).encode()),
        "no kid": forge({"alg": "RS256"}, payload, signature=signature),
        "another subject": forge(header, {**payload, "sub": "someone-else"}, signature=signature),
        "an unknown kid": forge({**header, "kid": "not-a-key-of-the-server"}, payload, signature=signature),
        "not a JWT": "a.b",
    }
    with example_client(jwt_auth(auth_server)) as client:
        for name, forged in forgeries.items():
            response = client.get("/api/profile", headers=bearer(forged))
            assert response.status_code == 401, name
            assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"'), name
        assert client.get("/api/profile", headers=bearer(token)).status_code == 200


def test_session_credentials_are_not_jwts(auth_server: AuthServer):
    user = auth_server.sign_up()
    with example_client(jwt_auth(auth_server)) as client:
        assert client.get("/api/profile", headers=user.bearer()).status_code == 401
        response = client.get("/api/profile", headers=user.cookie)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_organization_route_answers_403_without_an_active_organization(auth_server: AuthServer):
    token = auth_server.jwt(auth_server.sign_up().cookie)
    with example_client(jwt_auth(auth_server)) as client:
        response = client.get("/api/organization/courses", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "NO_ACTIVE_ORGANIZATION"


def test_the_active_organization_and_the_role_in_it_are_claims(auth_server: AuthServer):
    user = auth_server.sign_up()
    created = auth_server.http.post("/api/auth/organization/create", headers=user.cookie, json={"name": "Bootcamp", "slug": f"bootcamp-{user.user_id.lower()}"})
    assert created.status_code == 200, created.text
    token = auth_server.jwt(user.cookie)
    claims = parts(token)[1]
    assert claims["activeOrganizationId"] == created.json()["id"]
    assert claims["activeOrganizationRole"] == "owner"
    with example_client(jwt_auth(auth_server)) as client:
        response = client.get("/api/organization/courses", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"organizationId": created.json()["id"], "courses": []}


def test_an_unreachable_key_set_answers_503_not_401(auth_server: AuthServer):
    token = auth_server.jwt(auth_server.sign_up().cookie)
    nobody = JwtAuth(auth_server.url, jwks_url=f"http://127.0.0.1:{free_port()}/api/auth/jwks", timeout=2)
    with example_client(nobody) as client:
        response = client.get("/api/profile", headers=bearer(token))
        assert response.status_code == 503
        assert response.json()["detail"]["code"] == "AUTH_UNAVAILABLE"
        assert client.get("/api/greeting", headers=bearer(token)).status_code == 503


def test_the_example_app_configured_from_the_environment_verifies_jwts(auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch):
    user = auth_server.sign_up()
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("BETTER_AUTH_URL", auth_server.url)
    with TestClient(app_from_env()) as client:
        assert client.get("/api/profile", headers=bearer(auth_server.jwt(user.cookie))).json()["id"] == user.user_id


def test_a_rotated_signing_key_is_fetched_when_its_kid_first_appears(auth_server: AuthServer):
    # Runs last: it restarts the server with a new signing key.
    user = auth_server.sign_up()
    auth = jwt_auth(auth_server)
    fetches = []
    fetch_data = auth.jwks.fetch_data
    auth.jwks.fetch_data = lambda: fetches.append(1) or fetch_data()  # a spy: the real fetch runs
    with example_client(auth) as client:
        old_token = auth_server.jwt(user.cookie)
        assert client.get("/api/profile", headers=bearer(old_token)).status_code == 200
        assert len(fetches) == 1

        # Rotation: the current key expires and the restarted server mints a new one with a new kid.
        auth_server.sql("update jwks set expires_at = now() - interval '1 second'")
        auth_server.restart()
        new_token = auth_server.jwt(user.cookie)
        assert parts(new_token)[0]["kid"] != parts(old_token)[0]["kid"]
        assert client.get("/api/profile", headers=bearer(new_token)).status_code == 200
        assert len(fetches) == 2

        # The expired key stays published for the server's grace period, so earlier tokens still verify.
        assert client.get("/api/profile", headers=bearer(old_token)).status_code == 200
        assert client.get("/api/profile", headers=bearer(new_token)).status_code == 200
        assert len(fetches) == 2
