-- Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies", src/lockout.ts): a browser
-- that signed in to an account before carries a signed cookie naming the account, and has a failure count
-- of its own, so that guesses from everywhere else cannot lock the owner out. The row with device '' counts
-- the failures of every other client of the account, as before.
alter table account_lockouts add column device text not null default '';
alter table account_lockouts drop constraint account_lockouts_pkey;
alter table account_lockouts add primary key (user_id, device);
