"""JWT mode's rules, against a key set the tests hold the private keys of (served on a loopback port
at the path the auth server uses): required claims, expiry, pinned algorithms, kid handling and how
often an unknown kid may fetch the key set again."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from auth_server_fastapi import JwtAuth
from conftest import example_client
from example_app import ROLE_PERMISSIONS


class KeyServer:
    """A JWKS endpoint on a loopback port, publishing keys whose private halves the test holds."""

    def __init__(self) -> None:
        self.private_keys: dict[str, tuple[object, str]] = {}
        self.fetches = 0
        self.add_key("rsa-1", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
        self.add_key("ed-1", Ed25519PrivateKey.generate(), "EdDSA")
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                keys.fetches += 1
                body = json.dumps(keys.jwks()).encode()
                self.send_response(200 if self.path == "/api/auth/jwks" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def add_key(self, kid: str, private_key: object, alg: str) -> None:
        self.private_keys[kid] = (private_key, alg)

    def jwks(self) -> dict:
        keys = []
        for kid, (private_key, alg) in self.private_keys.items():
            to_jwk = OKPAlgorithm.to_jwk if alg == "EdDSA" else RSAAlgorithm.to_jwk
            keys.append({**json.loads(to_jwk(private_key.public_key())), "kid": kid, "alg": alg})
        return {"keys": keys}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.url, "sub": "user-1", "iat": now, "exp": now + 900, "email": "ada@example.com", "name": "Ada", "emailVerified": True}
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(self, claims: dict, kid: str | None = "rsa-1", key_of: str | None = None, alg: str | None = None) -> str:
        private_key, key_alg = self.private_keys[key_of or kid]
        headers = {"kid": kid} if kid is not None else {}
        token = jwt.encode(claims, private_key, algorithm=alg or key_alg, headers=headers)
        if kid is None:
            assert "kid" not in jwt.get_unverified_header(token)
        return token

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def keys() -> Iterator[KeyServer]:
    server = KeyServer()
    yield server
    server.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def profile(auth: JwtAuth, token: str):
    with example_client(auth) as client:
        return client.get("/api/profile", headers=bearer(token))


def test_a_valid_token_is_the_user_of_its_claims_and_role_and_organization_claims_count(keys: KeyServer):
    auth = JwtAuth(keys.url, role_permissions=ROLE_PERMISSIONS)
    token = keys.sign(keys.claims(role="admin", activeOrganizationId="org-1", professionalRole="student", roleOther="stale"))
    with example_client(auth) as client:
        body = client.get("/api/profile", headers=bearer(token)).json()
        assert (body["id"], body["email"], body["emailVerified"], body["role"], body["roleOther"]) == ("user-1", "ada@example.com", True, "admin", None)
        assert client.get("/api/admin/overview", headers=bearer(token)).json() == {"admin": "user-1"}
        assert client.get("/api/organization/courses", headers=bearer(token)).json()["organizationId"] == "org-1"


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
def test_a_token_without_a_required_claim_answers_401(keys: KeyServer, claim: str):
    response = profile(JwtAuth(keys.url), keys.sign(keys.claims(**{claim: None})))
    assert response.status_code == 401
    assert response.json()["detail"]["message"] == f"the JWT lacks the {claim} claim"


def test_an_empty_subject_answers_401(keys: KeyServer):
    assert profile(JwtAuth(keys.url), keys.sign(keys.claims(sub=""))).status_code == 401


def test_expiry_allows_only_the_configured_clock_leeway(keys: KeyServer):
    now = int(time.time())
    auth = JwtAuth(keys.url, leeway=10)
    assert profile(auth, keys.sign(keys.claims(exp=now - 5))).status_code == 200
    response = profile(auth, keys.sign(keys.claims(exp=now - 60)))
    assert (response.status_code, response.json()["detail"]["message"]) == (401, "the JWT has expired")


def test_a_token_issued_in_the_future_answers_401(keys: KeyServer):
    assert profile(JwtAuth(keys.url), keys.sign(keys.claims(iat=int(time.time()) + 300))).status_code == 401


def test_eddsa_is_refused_unless_configured(keys: KeyServer):
    token = keys.sign(keys.claims(), kid="ed-1")
    assert profile(JwtAuth(keys.url), token).status_code == 401
    assert profile(JwtAuth(keys.url, algorithms=("RS256", "EdDSA")), token).status_code == 200


def test_a_token_whose_algorithm_differs_from_its_keys_answers_401(keys: KeyServer):
    token = keys.sign(keys.claims(), kid="ed-1", key_of="rsa-1")  # RS256, naming the Ed25519 key
    response = profile(JwtAuth(keys.url, algorithms=("RS256", "EdDSA")), token)
    assert (response.status_code, response.json()["detail"]["message"]) == (401, "the JWT algorithm does not match its key")


def test_a_validly_signed_token_without_kid_answers_401(keys: KeyServer):
    response = profile(JwtAuth(keys.url), keys.sign(keys.claims(), kid=None, key_of="rsa-1"))
    assert (response.status_code, response.json()["detail"]["message"]) == (401, "the JWT names no signing key (kid)")


def test_symmetric_and_none_algorithms_cannot_be_configured():
    for algorithms in (("HS256",), ("none",), ("RS256", "HS512"), ()):
        with pytest.raises(ValueError):
            JwtAuth("https://auth.example.com", algorithms=algorithms)


def test_a_new_kid_fetches_the_key_set_again_but_made_up_kids_at_most_once_per_interval(keys: KeyServer):
    auth = JwtAuth(keys.url, min_refetch_seconds=60)
    keys.fetches = 0
    with example_client(auth) as client:
        assert client.get("/api/profile", headers=bearer(keys.sign(keys.claims()))).status_code == 200
        assert keys.fetches == 1
        keys.add_key("rsa-2", rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")
        assert client.get("/api/profile", headers=bearer(keys.sign(keys.claims(), kid="rsa-2"))).status_code == 200
        assert keys.fetches == 2
        for kid in ("made-up-1", "made-up-2", "made-up-3"):
            forged = keys.sign(keys.claims(), kid=kid, key_of="rsa-1")
            assert client.get("/api/profile", headers=bearer(forged)).status_code == 401
        assert keys.fetches == 2  # within the interval: no fetch for made-up kids
        assert client.get("/api/profile", headers=bearer(keys.sign(keys.claims()))).status_code == 200
        assert keys.fetches == 2
