-- A ban revokes the user's sessions, whoever bans: Better Auth's admin plugin deletes them when it bans
-- through the API, but a ban set directly in SQL (an operator in psql, the Python side) would leave
-- them signed in, because Better Auth checks `banned` only when it creates a session. When a ban comes
-- into force (banned, and no ban_expires or one still ahead) the user's sessions are deleted; the
-- deletes are announced by the change-notice trigger of 0006 like any other, so cached copies go too.
create function revoke_sessions_of_banned_user() returns trigger
language plpgsql as $$
begin
  delete from sessions where user_id = new.id;
  return null;
end;
$$;

create trigger users_ban_revokes_sessions after update of banned, ban_expires on users
  for each row
  when (new.banned is true and (new.ban_expires is null or new.ban_expires > now())
        and not (old.banned is true and (old.ban_expires is null or old.ban_expires > now())))
  execute function revoke_sessions_of_banned_user();
