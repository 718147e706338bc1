"""The admin plugin's users.role/banned/ban_expires and the organization plugin's
sessions.active_organization_id are not in the auth server's schema yet. This module's database gets
them with ALTER TABLE, shaped as those plugins define them, to prove that the reader detects them and
then applies the ban check, the roles and the active organization. The tests run in file order: first
without the columns, then the migration, then with them."""

from __future__ import annotations

import pytest

from auth_server_fastapi import SessionAuth, SessionSchema
from conftest import AuthServer, database_lifespan, example_client, session_client

PLUGIN_COLUMNS = """
alter table users add column if not exists role text default 'user',
                  add column if not exists banned boolean default false,
                  add column if not exists ban_reason text,
                  add column if not exists ban_expires timestamptz;
alter table sessions add column if not exists active_organization_id text;
"""


@pytest.fixture(scope="module")
def server_with_plugin_columns(auth_server: AuthServer) -> AuthServer:
    auth_server.sql(PLUGIN_COLUMNS)
    # As a deploy would: a server instance that ran before the columns existed answers 500 ("cached
    # plan must not change result type") for statements it prepared earlier, so start a fresh one.
    auth_server.restart()
    return auth_server


def detected(server: AuthServer) -> SessionSchema:
    auth = SessionAuth(server.secret)
    with example_client(auth, database_lifespan(auth, "asyncpg", server.reader_url)) as client:
        return client.portal.call(auth.detect_schema)


def test_without_the_plugin_columns_there_is_no_ban_check_role_or_organization(auth_server: AuthServer):
    assert detected(auth_server) == SessionSchema()


def test_a_reader_that_detected_the_schema_before_the_migration_applies_the_ban_after_refresh_schema(auth_server: AuthServer):
    # The migration happens here, while the app runs; the tests below find the columns in place.
    server = auth_server
    user = server.sign_up()
    auth = SessionAuth(server.secret)
    with example_client(auth, database_lifespan(auth, "asyncpg", server.reader_url)) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        server.sql(PLUGIN_COLUMNS)
        server.sql("update users set banned = true where id = %s", (user.user_id,))
        assert client.get("/api/profile", headers=user.cookie).status_code == 200  # detected once
        auth.refresh_schema()
        assert client.get("/api/profile", headers=user.cookie).status_code == 403


def test_the_plugin_columns_are_detected(server_with_plugin_columns: AuthServer):
    assert detected(server_with_plugin_columns) == SessionSchema(role=True, banned=True, ban_expires=True, active_organization_id=True)


def test_a_banned_user_answers_403_and_is_a_guest_on_optional_routes(server_with_plugin_columns: AuthServer):
    server = server_with_plugin_columns
    user = server.sign_up(name="Mallory")
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == 200
        server.sql("update users set banned = true, ban_reason = 'spam' where id = %s", (user.user_id,))
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
def test_a_ban_lasts_until_ban_expires(server_with_plugin_columns: AuthServer, ban_expires: str, status: int):
    server = server_with_plugin_columns
    user = server.sign_up()
    server.sql(f"update users set banned = true, ban_expires = {ban_expires} where id = %s", (user.user_id,))
    with session_client(server) as client:
        assert client.get("/api/profile", headers=user.cookie).status_code == status


def test_roles_come_from_users_role_and_grant_routes(server_with_plugin_columns: AuthServer):
    server = server_with_plugin_columns
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


def test_the_organization_route_serves_the_sessions_active_organization(server_with_plugin_columns: AuthServer):
    server = server_with_plugin_columns
    user = server.sign_up()
    with session_client(server) as client:
        assert client.get("/api/organization/courses", headers=user.cookie).status_code == 403
        server.sql("update sessions set active_organization_id = 'org_physics' where token = %s", (user.token,))
        response = client.get("/api/organization/courses", headers=user.cookie)
    assert response.status_code == 200
    assert response.json() == {"organizationId": "org_physics", "courses": []}


def test_the_auth_server_still_signs_users_in_with_the_extra_columns(server_with_plugin_columns: AuthServer):
    user = server_with_plugin_columns.sign_up()
    again = server_with_plugin_columns.sign_in(user.email)
    assert server_with_plugin_columns.session_is_valid(again)
