-- Tables and columns of the Better Auth plugins the server runs (src/plugins.ts): two-factor
-- authentication, admin, organizations with teams, and passkeys. Social and OpenID Connect sign-in
-- need nothing new: their links are rows in `accounts`. Names are snake_case and mapped in each
-- plugin's `schema` option; docs/schema.md describes every column.

-- two-factor plugin: whether sign-in asks for a second factor.
-- admin plugin: the platform role ("user", "teacher", "admin"; comma-separated when several) and bans.
alter table users
  add column two_factor_enabled boolean default false,
  add column role text default 'user',
  add column banned boolean default false,
  add column ban_reason text,
  add column ban_expires timestamptz;

create table organizations (
  id text primary key default gen_random_uuid()::text,
  name text not null,
  slug text not null,
  logo text,
  -- JSON text, as Better Auth stores it
  metadata text,
  created_at timestamptz not null default now()
);
create unique index organizations_slug_key on organizations (slug);

create table teams (
  id text primary key default gen_random_uuid()::text,
  name text not null,
  organization_id text not null references organizations (id) on delete cascade,
  member_count integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz default now()
);
create index teams_organization_id_idx on teams (organization_id);

-- admin plugin: the admin who started an impersonation session (the audit trail of who acted as whom).
-- organization plugin: the session's active organization and team.
alter table sessions
  add column impersonated_by text references users (id) on delete cascade,
  add column active_organization_id text references organizations (id) on delete set null,
  add column active_team_id text references teams (id) on delete set null;
create index sessions_impersonated_by_idx on sessions (impersonated_by) where impersonated_by is not null;

create table two_factors (
  id text primary key default gen_random_uuid()::text,
  -- TOTP secret and backup codes, encrypted with BETTER_AUTH_SECRET
  secret text not null,
  backup_codes text not null,
  user_id text not null references users (id) on delete cascade,
  -- false until the first code proves the authenticator app was set up
  verified boolean default true,
  -- lockout across factors: consecutive failures, and until when sign-in is refused
  failed_verification_count integer default 0,
  locked_until timestamptz,
  -- the last TOTP time step accepted (unix time / period): a code works once (RFC 6238 5.2, ASVS 2.8.4)
  last_totp_step bigint
);
create unique index two_factors_user_id_key on two_factors (user_id);
create index two_factors_secret_idx on two_factors (secret);

create table members (
  id text primary key default gen_random_uuid()::text,
  organization_id text not null references organizations (id) on delete cascade,
  user_id text not null references users (id) on delete cascade,
  -- owner, admin, instructor or student (comma-separated when several)
  role text not null default 'student',
  created_at timestamptz not null default now()
);
create unique index members_user_id_organization_id_key on members (user_id, organization_id);
create index members_organization_id_idx on members (organization_id);

create table invitations (
  id text primary key default gen_random_uuid()::text,
  organization_id text not null references organizations (id) on delete cascade,
  -- lower-cased, as Better Auth compares it
  email text not null,
  role text,
  team_id text references teams (id) on delete set null,
  status text not null default 'pending' check (status in ('pending', 'accepted', 'rejected', 'canceled')),
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  inviter_id text not null references users (id) on delete cascade
);
create index invitations_organization_id_idx on invitations (organization_id);
create index invitations_email_idx on invitations (email);

create table team_members (
  id text primary key default gen_random_uuid()::text,
  team_id text not null references teams (id) on delete cascade,
  user_id text not null references users (id) on delete cascade,
  -- team id and user id together, so a user joins a team once
  membership_key text,
  created_at timestamptz default now()
);
create index team_members_team_id_idx on team_members (team_id);
create index team_members_user_id_idx on team_members (user_id);
create unique index team_members_membership_key_key on team_members (membership_key);

create table passkeys (
  id text primary key default gen_random_uuid()::text,
  name text,
  -- COSE public key, base64
  public_key text not null,
  user_id text not null references users (id) on delete cascade,
  -- WebAuthn credential id, base64url; unique per relying party
  credential_id text not null,
  -- signature counter (WebAuthn 6.1.1): a cloned authenticator shows up as a counter going back
  counter integer not null default 0,
  device_type text not null,
  backed_up boolean not null,
  transports text,
  created_at timestamptz default now(),
  aaguid text
);
create index passkeys_user_id_idx on passkeys (user_id);
create unique index passkeys_credential_id_key on passkeys (credential_id);
