-- Change notices for TRUNCATE: row triggers (0006) do not fire on `truncate sessions` or `truncate users`,
-- so an operator who signs everybody out that way would leave every cached copy trusted until it expired.
-- A statement-level trigger announces it on the same channel with the payload "all": every auth-server
-- instance forgets what it remembered and distrusts every copy written before it (src/session/change-notices.ts).
-- Sent at commit, and not at all for a rolled-back transaction, like the row notices.
create function notify_auth_truncate() returns trigger
language plpgsql as $$
begin
  perform pg_notify('auth_changes', 'all');
  return null;
end;
$$;

create trigger sessions_notify_auth_truncate after truncate on sessions
  for each statement execute function notify_auth_truncate();
create trigger users_notify_auth_truncate after truncate on users
  for each statement execute function notify_auth_truncate();
