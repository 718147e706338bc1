-- Change notices: every update or delete of a session or user row, whoever makes it (the auth server,
-- the Python side, an operator in psql), is announced on the channel auth_changes so that each
-- auth-server instance stops answering from cached copies of that session or user (the cookie cache,
-- its kept get-session answers, Redis) at once (src/change-notices.ts). The payload names the row
-- only ("session:<id>" or "user:<id>"), never a token. Notices are sent at commit, and not at all for
-- a rolled-back transaction.
create function notify_auth_change() returns trigger
language plpgsql as $$
begin
  perform pg_notify('auth_changes', case tg_table_name when 'sessions' then 'session:' else 'user:' end || old.id);
  return null;
end;
$$;

create trigger sessions_notify_auth_change after update or delete on sessions
  for each row execute function notify_auth_change();
create trigger users_notify_auth_change after update or delete on users
  for each row execute function notify_auth_change();
