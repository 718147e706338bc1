"""The admin plugin's users.role/banned/ban_expires and the organization plugin's
sessions.active_organization_id, as the auth server's sql/0003 creates them: the reader detects them and
applies the ban check, the roles and the active organization. A real ban through the auth server's admin
API revokes the user's sessions at once."""

from __future__ import annotations

import secrets

import pytest

from auth_server_fastapi import SessionAuth, SessionSchema
from conftest import PASSWORD, AuthServer, SignedIn, database_lifespan, example_client, session_client

# A reader that started before sql/0003 saw no ban columns: renamed away for the length of a test.
HIDE_BAN_COLUMNS = "alter table users rename column banned to banned_hidden"
SHOW_BAN_COLUMNS = "alter table users rename column banned_hidden to banned"


def detected(server: AuthServer) -> SessionSchema:
    auth = SessionAuth(server.secret, base_url=server.url)
    with example_client(auth, database_lifespan(auth, "asyncpg", server.reader_url)) as client:
        return client.portal.call(auth.detect_schema)


def make_admin(server: AuthServer) -> SignedIn:
    admin = server.sign_up(name="Grace Admin")
    server.sql("update users set role = 'admin' where id = %s", (admin.user_id,))
    return admin


def create_organization(server: AuthServer, user: SignedIn) -> str:
    """An organization created by `user` through the auth server; it becomes the session's active one."""
    slug = f"school-{secrets.token_hex(4)}"
    response = server.http.post("/api/auth/organization/create", headers=user.cookie, json={"name": "Physics School", "slug": slug})
    assert response.status_code == 200, response.text
    return response.json()["id"]


def test_the_plugin_columns_of_the_auth_servers_schema_are_detected(auth_server: AuthServer):
    assert detected(auth_server) == SessionSchema(role=True, banned=True, ban_expires=True, active_organization_id=True)


def test_a_reader_that_detected_the_schema_before_the_ban_columns_applies_the_ban_after_refresh_schema(auth_server: AuthServer):
    server = auth_server
    user = server.sign_up()
    auth = SessionAuth(server.secret, base_url=server.url)
    server.sql(HIDE_BAN_COLUMNS)
    try:
        with example_client(auth, database_lifespan(auth, "asyncpg", server.reader_url)) as client:
            assert client.get("/api/profile", headers=user.cookie).status_code == 200
            server.sql(SHOW_BAN_COLUMNS)
            server.sql_without_triggers("update users set banned = true where id = %s", (user.user_id,))
            assert client.get("/api/profile", headers=user.cookie).status_code == 200  # detected once
            auth.refresh_schema()
            assert client.get("/api/profile", headers=user.cookie).status_code == 403
    finally:
        if server.sql("select 1 from information_schema.columns where table_name = 'users' and column_name = 'banned_hidden'"):
            server.sql(SHOW_BAN_COLUMNS)


def test_a_ban_through_the_auth_servers_admin_api_revokes_the_sessions_and_refuses_sign_in(auth_server: AuthServer):
    server = auth_server
    admin = make_admin(server)
    user = server.sign_up(name="Mallory")
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        response = server.http.post(
            "/api/auth/admin/ban-user", headers=admin.cookie, json={"userId": user.user_id, "banReason": "spam", "banExpiresIn": 3600}
        )
        assert response.status_code == 200, response.text
        # The ban deleted the user's sessions: the reader sees no session at all.
        assert client.get("/api/profile", headers=user.cookie).status_code == 401
    (banned, reason, expires_in) = server.sql(
        "select banned, ban_reason, extract(epoch from ban_expires - now())::int from users where id = %s", (user.user_id,)
    )[0]
    assert (banned, reason) == (True, "spam")
    assert 3500 < expires_in <= 3600
    refused = server.http.post("/api/auth/sign-in/email", json={"email": user.email, "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["code"] == "BANNED_USER"


def test_a_banned_user_answers_403_and_is_a_guest_on_optional_routes(auth_server: AuthServer):
    server = auth_server
    user = server.sign_up(name="Mallory")
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        server.sql_without_triggers("update users set banned = true, ban_reason = 'spam' where id = %s", (user.user_id,))
        response = client.get("/api/profile", headers=user.cookie)
        assert response.status_code == 403
        assert response.json()["detail"] == {"code": "USER_BANNED", "message": "this account is banned"}
        assert client.get("/api/profile", headers=user.bearer()).status_code == 403
        assert client.get("/api/greeting", headers=user.cookie).json() == {"greeting": "Hello, guest"}


@pytest.mark.parametrize(
    ("ban_expires", "status"),
    [("now() + interval '1 day'", 403), ("now() - interval '1 second'", 200), ("null", 403)],
    ids=["ban-running", "ban-over", "ban-forever"],
)
def test_a_ban_lasts_until_ban_expires(auth_server: AuthServer, ban_expires: str, status: int):
    server = auth_server
    user = server.sign_up()
    server.sql_without_triggers(f"update users set banned = true, ban_expires = {ban_expires} where id = %s", (user.user_id,))
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == status


@pytest.mark.parametrize(
    ("ban_expires", "status"),
    [("now() + interval '1 day'", 401), ("now() - interval '1 second'", 200), ("null", 401)],
    ids=["ban-running", "ban-over", "ban-forever"],
)
def test_a_ban_in_force_set_in_sql_deletes_the_users_sessions(auth_server: AuthServer, ban_expires: str, status: int):
    server = auth_server
    user = server.sign_up()
    server.sql(f"update users set banned = true, ban_expires = {ban_expires} where id = %s", (user.user_id,))
    remaining = server.sql("select count(*) from sessions where user_id = %s", (user.user_id,))[0][0]
    assert remaining == (1 if status == 200 else 0)
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == status


def test_roles_come_from_users_role_and_grant_routes(auth_server: AuthServer):
    server = auth_server
    user = server.sign_up()
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).json()["role"] == "user"
        assert client.get("/api/admin/overview", headers=user.cookie).status_code == 403
        assert client.post("/api/courses", headers=user.cookie).status_code == 403

        server.sql("update users set role = 'user,instructor' where id = %s", (user.user_id,))
        assert client.post("/api/courses", headers=user.cookie).json() == {"createdBy": user.user_id}
        assert client.get("/api/admin/overview", headers=user.cookie).status_code == 403

        server.sql("update users set role = 'admin' where id = %s", (user.user_id,))
        assert client.get("/api/admin/overview", headers=user.cookie).json() == {"admin": user.user_id}


def test_the_organization_route_serves_the_sessions_active_organization(auth_server: AuthServer):
    server = auth_server
    user = server.sign_up()
    with session_client(server) as client:
        assert client.get("/api/organization/courses", headers=user.cookie).status_code == 403
        organization_id = create_organization(server, user)
        response = client.get("/api/organization/courses", headers=user.cookie)
    assert response.status_code == 200
    assert response.json() == {"organizationId": organization_id, "courses": []}


def test_the_auth_server_still_signs_users_in_with_the_extra_columns(auth_server: AuthServer):
    user = auth_server.sign_up()
    again = auth_server.sign_in(user.email)
    assert auth_server.session_is_valid(again)
