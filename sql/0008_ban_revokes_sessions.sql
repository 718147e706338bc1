-- A ban revokes the user's sessions, whoever bans: Better Auth's admin plugin deletes them when it bans
-- through the API, but a ban set directly in SQL (an operator in psql, the Python side) would leave
-- them signed in, because Better Auth checks `banned` only when it creates a session. When a ban comes
-- into force (banned, and no ban_expires or one still ahead) the user's sessions are deleted, and so are
-- the impersonation sessions the user started as an admin (sessions.impersonated_by): an admin right
-- withdrawn is withdrawn from what it opened (ASVS 4.0 3.3.1, 4.1.3). The same holds when an admin loses
-- the admin role. The deletes are announced by the change-notice trigger of 0006 like any other, so
-- cached copies go too.
create function revoke_sessions_of_banned_user() returns trigger
language plpgsql as $$
begin
  delete from sessions where user_id = new.id or impersonated_by = new.id;
  return null;
end;
$$;

create trigger users_ban_revokes_sessions after update of banned, ban_expires on users
  for each row
  when (new.banned is true and (new.ban_expires is null or new.ban_expires > now())
        and not (old.banned is true and (old.ban_expires is null or old.ban_expires > now())))
  execute function revoke_sessions_of_banned_user();

-- The platform role is a comma-separated list (Better Auth's admin plugin); "admin" is its admin role.
create function revoke_impersonations_of_demoted_admin() returns trigger
language plpgsql as $$
begin
  delete from sessions where impersonated_by = new.id;
  return null;
end;
$$;

create trigger users_demotion_revokes_impersonations after update of role on users
  for each row
  when ('admin' = any(string_to_array(replace(coalesce(old.role, ''), ' ', ''), ','))
        and not 'admin' = any(string_to_array(replace(coalesce(new.role, ''), ' ', ''), ',')))
  execute function revoke_impersonations_of_demoted_admin();
