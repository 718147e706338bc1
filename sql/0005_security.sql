-- Security state shared by every instance: fixed-window rate-limit counters that expire, per-account
-- failed sign-in counters (lockout), and the audit trail of authentication events. Written by the
-- server's own queries (src/rate-limit.ts, src/lockout.ts, src/audit.ts), not through Better Auth.

-- End of the counter's window; a row past it restarts at 1 and is pruned (src/housekeeping.ts).
-- Rows from before this migration count as ended.
alter table rate_limits add column expires_at timestamptz not null default now();
create index rate_limits_expires_at_idx on rate_limits (expires_at);

-- ASVS 2.2.1: failed sign-ins per account, whichever IP they come from.
create table account_lockouts (
  user_id text primary key references users (id) on delete cascade,
  -- failures in the window that started at window_started_at
  failed_count integer not null default 0 check (failed_count >= 0),
  window_started_at timestamptz not null default now(),
  -- sign-ins for this account are refused until then, whatever the password
  locked_until timestamptz,
  updated_at timestamptz not null default now()
);
create index account_lockouts_updated_at_idx on account_lockouts (updated_at);

-- ASVS 7.1.x / 7.2.x: who did what, from where; never a password, token, cookie or secret.
create table auth_events (
  id bigint generated always as identity primary key,
  occurred_at timestamptz not null default now(),
  type text not null check (type ~ '^[a-z][a-z0-9_]*$'),
  -- no foreign key: the trail outlives a deleted user
  user_id text,
  ip text,
  user_agent text check (char_length(user_agent) <= 512),
  details jsonb not null default '{}'::jsonb check (jsonb_typeof(details) = 'object')
);
create index auth_events_occurred_at_idx on auth_events (occurred_at);
create index auth_events_user_id_idx on auth_events (user_id, occurred_at);
create index auth_events_type_idx on auth_events (type, occurred_at);
