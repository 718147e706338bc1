// Sign-up does not tell who has an account by how long it takes (ASVS 4.0 2.5 / V2 account enumeration;
// OWASP Authentication Cheat Sheet, "Authentication Responses": "the response time should be the same").
// With REQUIRE_EMAIL_VERIFICATION=on Better Auth answers a taken address like a new one and hashes the
// password for it too, but a new address also writes the user and account rows, marks the verification
// mail, signs the verification token and records the audit event, so a taken address was answered about
// 2 ms sooner, which a few hundred requests reveal (test/security/sign-up-enumeration-timing.test.ts).
//
// The taken answer is held instead of made to do the same work. Work that imitates the new-address path
// (a transaction writing comparable rows, then rolled back) would still cost less, since a rollback
// skips the commit's WAL flush and the writes after it, would have to follow every change of that path,
// and would let anyone load the database with writes by signing up with a taken address. A hold costs a
// timer and follows whatever the two paths cost on this instance, as they are measured: the moving
// medians of the last SAMPLES answers of each (a new address answered 200; a taken one before its hold),
// and each taken answer is held for their difference. Both distributions then have the same median and
// keep their own spread, which in both is mostly the password hash's. (Holding until a new sign-up's
// time instead, max(own time, new time), answers a taken address measurably later: its own time is
// already close.) Until this instance has answered a new sign-up there is nothing to match and nothing
// is held: a few answers after a start, and a prober who signs up a new address to learn its cost gives
// the instance its first sample.
import { AsyncLocalStorage } from "node:async_hooks";

type Handler = (request: Request) => Promise<Response>;

/** How many recent answers of each path the medians are taken over. */
const SAMPLES = 64;
/** No answer is held longer than this, whatever a slow moment measured (a hold keeps a connection open). */
const MAX_HOLD_MS = 2000;

/** Per sign-up request: whether Better Auth took the taken-address branch (it calls onExistingUserSignUp). */
const signUps = new AsyncLocalStorage<{ taken: boolean }>();

/** Called from onExistingUserSignUp (src/mail/password-flow.ts): this request's address is taken, so its answer is held. */
export function markSignUpTaken(): void {
  const request = signUps.getStore();
  if (request) request.taken = true;
}

const isSignUp = (request: Request) => request.method === "POST" && new URL(request.url).pathname.endsWith("/sign-up/email");

/** The last SAMPLES durations (ms) added, and their median. */
function movingMedian() {
  const recent: number[] = [];
  let next = 0;
  return {
    add(ms: number) {
      recent[next] = ms;
      next = (next + 1) % SAMPLES;
    },
    median: (): number | null => (recent.length ? recent.toSorted((a, b) => a - b)[recent.length >> 1]! : null),
  };
}

/** `handler`, with email sign-ups for a taken address answered in the time those for a new one take. */
export function pacingSignUps(handler: Handler): Handler {
  const fresh = movingMedian();
  const taken = movingMedian();
  const late = movingMedian();
  return async (request) => {
    if (!isSignUp(request)) return handler(request);
    const started = performance.now();
    const signUp = { taken: false };
    const response = await signUps.run(signUp, () => handler(request));
    const elapsed = performance.now() - started;
    if (!signUp.taken) {
      if (response.status === 200) fresh.add(elapsed);
      return response;
    }
    taken.add(elapsed);
    // A timer wakes later than asked (Bun.sleep also drops the fraction of a millisecond), by an amount
    // measured here too: the hold asks for that much less.
    const hold = Math.min((fresh.median() ?? 0) - taken.median()!, MAX_HOLD_MS);
    const asked = hold - (late.median() ?? 0);
    if (hold > 0 && asked > 0) {
      const from = performance.now();
      await Bun.sleep(asked);
      late.add(performance.now() - from - asked);
    }
    return response;
  };
}
