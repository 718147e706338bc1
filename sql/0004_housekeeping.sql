-- Housekeeping (src/housekeeping.ts): a record of each run, so that instances sharing the database
-- run the periodic job once per interval between them, and an operator can see what it removed.
create table housekeeping_runs (
  id bigint generated always as identity primary key,
  -- host and process of the instance (or `bun run cleanup`) that ran it
  instance text not null,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  -- rows deleted per table, e.g. {"sessions": 120, "verifications": 4}
  deleted jsonb not null default '{}'::jsonb,
  -- why the run stopped, when it failed; null when it finished
  error text
);
create index housekeeping_runs_started_at_idx on housekeeping_runs (started_at);

-- The job deletes rate-limit counters idle for a day; without this it would scan the whole table.
create index if not exists rate_limits_last_request_idx on rate_limits (last_request);
