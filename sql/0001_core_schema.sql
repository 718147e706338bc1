-- Core identity tables, shared by the auth server (Better Auth, mapped in src/auth.ts) and any
-- service that reads them (see docs/schema.md). Defaults let a writer other than Better Auth insert
-- sane rows; ids are text because Better Auth generates its own random string ids.

create table users (
  id text primary key default gen_random_uuid()::text,
  name text not null,
  email text not null,
  email_verified boolean not null default false,
  image text,
  -- profile fields for personalisation (validated by the server too, see src/profile.ts)
  experience_level text check (experience_level in ('beginner', 'intermediate', 'advanced')),
  professional_role text check (professional_role in ('student', 'researcher', 'engineer', 'hobbyist', 'other')),
  role_other text check (char_length(role_other) <= 100),
  organization text check (char_length(organization) <= 255),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
-- Better Auth lower-cases emails before writing and looking them up.
create unique index users_email_key on users (email);

create table sessions (
  id text primary key default gen_random_uuid()::text,
  user_id text not null references users (id) on delete cascade,
  -- the unsigned session token; the cookie carries token.signature (see docs/schema.md)
  token text not null,
  expires_at timestamptz not null,
  ip_address text,
  user_agent text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index sessions_token_key on sessions (token);
create index sessions_user_id_idx on sessions (user_id);
create index sessions_expires_at_idx on sessions (expires_at);

create table accounts (
  id text primary key default gen_random_uuid()::text,
  -- the user's id at the provider; for email and password ("credential") it is users.id
  account_id text not null,
  provider_id text not null,
  user_id text not null references users (id) on delete cascade,
  access_token text,
  refresh_token text,
  id_token text,
  access_token_expires_at timestamptz,
  refresh_token_expires_at timestamptz,
  scope text,
  -- password hash: argon2id PHC string, or Better Auth's legacy scrypt salt:key (rehashed at sign-in)
  password text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index accounts_user_id_idx on accounts (user_id);
create unique index accounts_provider_account_key on accounts (provider_id, account_id);

create table verifications (
  id text primary key default gen_random_uuid()::text,
  identifier text not null,
  value text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index verifications_identifier_idx on verifications (identifier);
create index verifications_expires_at_idx on verifications (expires_at);

-- JWT signing keys (jwt plugin); private keys are encrypted with the server secret.
create table jwks (
  id text primary key default gen_random_uuid()::text,
  public_key text not null,
  private_key text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  alg text,
  crv text
);

-- Rate-limit counters shared by every instance (Better Auth's database storage).
create table rate_limits (
  id text primary key default gen_random_uuid()::text,
  key text not null,
  count integer not null default 0,
  -- milliseconds since the epoch, as Better Auth stores it
  last_request bigint not null default (extract(epoch from now()) * 1000)::bigint
);
create unique index rate_limits_key_key on rate_limits (key);
