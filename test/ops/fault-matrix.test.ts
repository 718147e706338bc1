// The fault matrix (ASVS 7.4.1: errors answer safely; 1.14.x / 11.1.x: availability): every kind of
// request runs under a short concurrent load while one fault is injected and healed, against a server
// of its own process (Postgres behind a TCP proxy, a Redis and an SMTP relay of the test's own). Every
// answer must be a 200, the request's documented 4xx, or the fault's documented 503 with Retry-After;
// nothing acknowledged may be lost or half-written, and the server serves again soon after the fault
// heals, without a restart. SIGTERM answers every request that reached the server and exits 0.
//
// A request kind and a fault are one table entry each (REQUESTS, FAULTS). The table printed at the
// end is the one in bench/RESULTS.md:  bun test test/ops/fault-matrix.test.ts
// (FAULT_MATRIX_LOG=1 also prints each server's log and when each 500, if any, was sent.)
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { RedisClient } from "bun";
import { TOTP, URI } from "otpauth";
import { cleanUpAfterFile, createTestDatabase, PASSWORD, SITE_ORIGIN, spawnServer, uniqueEmail, type TestDatabase } from "../helpers.ts";
import { postgresProxy } from "../postgres-proxy.ts";
import { redisServer } from "../redis-server.ts";
import { startSmtpServer, type TestSmtpServer } from "../smtp.ts";

cleanUpAfterFile();
setDefaultTimeout(120_000);

/** Concurrent clients per request kind. */
const WORKERS = 2;
/** Load before the fault, and how long the fault lasts. */
const WARM_MS = 800;
const FAULT_MS = 3_000;
/** After the fault heals, the first request served as if nothing had happened is sent within this... */
const SERVED_AGAIN_WITHIN_MS = 2_000;
/** ...and answered within this (its latency under the test's load included). */
const ANSWERED_AGAIN_WITHIN_MS = 6_000;
/** A client gives up on a request after this long (recorded as no answer). */
const REQUEST_TIMEOUT_MS = 20_000;
/** SIGTERM to exit: SHUTDOWN_TIMEOUT (10 s) for requests and their work, the pool's close (5 s), a margin. */
const SHUTDOWN_WITHIN_MS = 20_000;
/** How long a client pauses after an answer other than the request's normal one. */
const RETRY_PAUSE_MS = 25;
/** Load after every kind has been served again. */
const AFTER_MS = 500;

// ---- the world a server runs in -------------------------------------------------------------------

interface World {
  db: TestDatabase;
  proxy: ReturnType<typeof postgresProxy>;
  /** DATABASE_URL through the proxy. */
  proxiedUrl: string;
  redis: ReturnType<typeof redisServer>;
  smtp: TestSmtpServer;
  /** Brings the relay back on its port after a stop. */
  restartSmtp(): Promise<void>;
}

async function createWorld(): Promise<World> {
  const db = await createTestDatabase("fault_matrix");
  const proxy = postgresProxy();
  const proxied = new URL(db.url);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(await proxy.start());
  const redis = redisServer();
  await redis.start();
  const world: World = {
    db,
    proxy,
    proxiedUrl: proxied.toString(),
    redis,
    smtp: await startSmtpServer(),
    async restartSmtp() {
      world.smtp = await startSmtpServer({ port: world.smtp.port });
    },
  };
  return world;
}

async function startServerIn(world: World, env: Record<string, string> = {}) {
  // The rate-limit counters of the previous server's load are not this one's.
  const redis = new RedisClient(world.redis.url);
  await redis.send("FLUSHALL", []);
  redis.close();
  const unlimited = "100000/1m";
  return spawnServer(
    ["bun", "src/index.ts"],
    {
      DATABASE_URL: world.proxiedUrl,
      REDIS_URL: world.redis.url,
      SMTP_URL: world.smtp.url,
      MAIL_FROM: "Auth <no-reply@auth.test>",
      RATE_LIMIT: "on",
      RATE_LIMIT_SIGN_IN: unlimited,
      RATE_LIMIT_SIGN_UP: unlimited,
      RATE_LIMIT_MAIL: unlimited,
      RATE_LIMIT_OTHER: unlimited,
      ORGANIZATION_LIMIT: "10000",
      LOG_LEVEL: "error",
      ...env,
    },
    world.db,
  );
}

// ---- request kinds --------------------------------------------------------------------------------

/** What a server's load needs: a signed-in user, and one with TOTP half-way through a two-factor sign-in. */
interface Actors {
  url: string;
  email: string;
  /** session_token and session_data (the cookie cache). */
  cookies: string;
  /** session_token alone: every get-session asks the stores. */
  tokenCookie: string;
  /** The two-factor challenge cookie of a TOTP user's sign-in, and that user's authenticator. */
  twoFactorCookie: string;
  totp: TOTP;
}

/** What acknowledged answers promised, checked against the database afterwards. */
interface Acknowledged {
  signUps: string[];
  sessionTokens: string[];
  organizations: string[];
}

interface RequestKind {
  name: string;
  /** The 4xx answers this request gives anyway (not caused by a fault). */
  documented: number[];
  /** Sends one request with `requestId` as its X-Request-Id. */
  send(actors: Actors, acknowledged: Acknowledged, requestId: string): Promise<Response>;
}

const cookiesOf = (response: Response) =>
  response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(";")[0]!)
    .filter((pair) => !pair.endsWith("="))
    .join("; ");

const call = (url: string, path: string, { json, cookie, requestId, method = json ? "POST" : "GET" }: { json?: unknown; cookie?: string; requestId?: string; method?: string } = {}) =>
  fetch(`${url}/api/auth${path}`, {
    method,
    headers: { origin: SITE_ORIGIN, ...(json ? { "content-type": "application/json" } : {}), ...(cookie ? { cookie } : {}), ...(requestId ? { "x-request-id": requestId } : {}) },
    body: json ? JSON.stringify(json) : undefined,
    // A request left without an answer is recorded as such, not waited for forever.
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });

/** Reads an answer's JSON (when it is JSON) and records what a 200 acknowledged. */
const acknowledge = async (response: Response, record: (body: Record<string, any>) => void) => {
  if (response.status === 200) record((await response.clone().json()) as Record<string, any>);
  return response;
};

let slug = 0;
const REQUESTS: RequestKind[] = [
  {
    name: "sign-up",
    documented: [],
    send: ({ url }, acknowledged, requestId) => {
      const email = uniqueEmail("matrix");
      return call(url, "/sign-up/email", { requestId, json: { name: "Matrix", email, password: PASSWORD } }).then((response) =>
        acknowledge(response, () => acknowledged.signUps.push(email)),
      );
    },
  },
  {
    name: "sign-in",
    documented: [],
    send: ({ url, email }, acknowledged, requestId) =>
      call(url, "/sign-in/email", { requestId, json: { email, password: PASSWORD } }).then((response) => acknowledge(response, (body) => acknowledged.sessionTokens.push(body.token))),
  },
  { name: "get-session (cookie cache)", documented: [], send: ({ url, cookies }, _, requestId) => call(url, "/get-session", { requestId, cookie: cookies }) },
  { name: "get-session (no cache)", documented: [], send: ({ url, tokenCookie }, _, requestId) => call(url, "/get-session", { requestId, cookie: tokenCookie }) },
  { name: "/token", documented: [], send: ({ url, tokenCookie }, _, requestId) => call(url, "/token", { requestId, cookie: tokenCookie }) },
  { name: "update-user", documented: [], send: ({ url, tokenCookie }, _, requestId) => call(url, "/update-user", { requestId, cookie: tokenCookie, json: { name: `Matrix ${++slug}` } }) },
  {
    name: "organization create",
    documented: [],
    send: ({ url, tokenCookie }, acknowledged, requestId) => {
      const organization = `matrix-${Date.now().toString(36)}-${++slug}`;
      return call(url, "/organization/create", { requestId, cookie: tokenCookie, json: { name: "Matrix School", slug: organization } }).then((response) =>
        acknowledge(response, () => acknowledged.organizations.push(organization)),
      );
    },
  },
  {
    // A code already used (or one step off) is refused; after 10 refusals the account is locked for a while.
    name: "two-factor verify",
    documented: [401, 429],
    send: ({ url, twoFactorCookie, totp }, _, requestId) => call(url, "/two-factor/verify-totp", { requestId, cookie: twoFactorCookie, json: { code: totp.generate() } }),
  },
  {
    name: "password reset request",
    documented: [],
    send: ({ url, email }, _, requestId) => call(url, "/request-password-reset", { requestId, json: { email, redirectTo: `${SITE_ORIGIN}/reset` } }),
  },
];

async function prepareActors(url: string): Promise<Actors> {
  const expectOk = async (response: Response, what: string) => {
    if (response.status !== 200) throw new Error(`${what}: ${response.status} ${await response.text()}`);
    return response;
  };
  const email = uniqueEmail("matrix-user");
  const signedUp = await expectOk(await call(url, "/sign-up/email", { json: { name: "Matrix", email, password: PASSWORD } }), "sign-up");
  const cookies = cookiesOf(signedUp);
  const tokenCookie = cookies.split("; ").find((pair) => pair.includes("session_token="))!;

  const totpEmail = uniqueEmail("matrix-2fa");
  const totpSignUp = await expectOk(await call(url, "/sign-up/email", { json: { name: "Matrix", email: totpEmail, password: PASSWORD } }), "sign-up");
  const totpCookie = cookiesOf(totpSignUp);
  const enabled = (await (await expectOk(await call(url, "/two-factor/enable", { cookie: totpCookie, json: { password: PASSWORD } }), "enable")).json()) as { totpURI: string };
  const totp = URI.parse(enabled.totpURI) as TOTP;
  await expectOk(await call(url, "/two-factor/verify-totp", { cookie: totpCookie, json: { code: totp.generate() } }), "first code");
  const challenge = await expectOk(await call(url, "/sign-in/email", { json: { email: totpEmail, password: PASSWORD } }), "two-factor sign-in");
  return { url, email, cookies, tokenCookie, twoFactorCookie: cookiesOf(challenge), totp };
}

// ---- faults ---------------------------------------------------------------------------------------

interface Fault {
  name: string;
  /** What an answer caused by this fault looks like: status and code. */
  answers: { status: number; code: string }[];
  /** How long it lasts; FAULT_MS when absent. */
  lastsMs?: number;
  inject(world: World, server: Awaited<ReturnType<typeof startServerIn>>): Promise<void>;
  heal(world: World): Promise<void>;
}

const DATABASE_UNAVAILABLE = { status: 503, code: "DATABASE_UNAVAILABLE" };
let resetting: ReturnType<typeof setInterval> | undefined;
let killingListener: ReturnType<typeof setInterval> | undefined;

const FAULTS: Fault[] = [
  {
    name: "Postgres refused",
    answers: [DATABASE_UNAVAILABLE],
    inject: (world) => world.proxy.stop(),
    heal: async (world) => void (await world.proxy.start()),
  },
  {
    // Every connection reset every 200 ms, whatever it was doing; new connections are accepted.
    name: "Postgres reset mid-query",
    answers: [DATABASE_UNAVAILABLE],
    inject: async (world) => {
      world.proxy.reset();
      resetting = setInterval(() => world.proxy.reset(), 200);
    },
    heal: async () => clearInterval(resetting),
  },
  {
    // Long enough for requests to give up on it (DATABASE_HUNG_PROBES probes without an answer).
    name: "Postgres hung",
    answers: [DATABASE_UNAVAILABLE],
    lastsMs: 8_000,
    inject: async (world) => world.proxy.hang(),
    heal: async (world) => world.proxy.resume(),
  },
  {
    // Sessions are served from Postgres; the rate-limit counters live in Redis and cannot be counted.
    name: "Redis gone",
    answers: [{ status: 503, code: "RATE_LIMIT_UNAVAILABLE" }],
    inject: (world) => world.redis.kill(),
    heal: (world) => world.redis.start(),
  },
  {
    // The change listener's connection killed again and again (docs/sessions.md, "Revocation and cached copies"):
    // no cached copy is trusted, every session is read from Postgres, and nothing else changes.
    name: "change listener lost",
    answers: [],
    inject: async (world) => {
      const kill = () =>
        world.db.sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${world.db.name} and application_name = 'auth-server listener'`.catch(() => {});
      await kill();
      killingListener = setInterval(kill, 200);
    },
    heal: async () => clearInterval(killingListener),
  },
  {
    // Mail is queued or answered as documented (MAIL_NOT_SENT 424 only where a flow waits for it).
    name: "SMTP relay gone",
    answers: [],
    inject: (world) => world.smtp.stop(),
    heal: (world) => world.restartSmtp(),
  },
];

// ---- the load and the checks ----------------------------------------------------------------------

interface Answer {
  requestId: string;
  status: number;
  code: string | null;
  retryAfter: string | null;
  /** Empty, or not JSON. */
  bodyless: boolean;
  startedAt: number;
  endedAt: number;
  /** A fetch that failed without an answer: its error code. */
  error?: string;
}

interface Cell {
  fault: string;
  request: string;
  answers: Answer[];
  /** ms from the heal to the sending, and to the answer, of the first request served as if nothing had happened; null when never. */
  servedAgain: { sentMs: number; answeredMs: number } | null;
  lost: number;
}

let requestCounter = 0;
async function send(kind: RequestKind, actors: Actors, acknowledged: Acknowledged): Promise<Answer> {
  const startedAt = performance.now();
  const requestId = `fault-matrix-${++requestCounter}`;
  try {
    const response = await kind.send(actors, acknowledged, requestId);
    const text = await response.text();
    let code: string | null = null;
    let bodyless = text.length === 0;
    try {
      const parsed = JSON.parse(text) as { code?: string } | null;
      code = parsed && typeof parsed === "object" ? (parsed.code ?? null) : null;
    } catch {
      bodyless = true;
    }
    return { requestId, status: response.status, code, retryAfter: response.headers.get("retry-after"), bodyless, startedAt, endedAt: performance.now() };
  } catch (error) {
    return { requestId, status: 0, code: null, retryAfter: null, bodyless: true, startedAt, endedAt: performance.now(), error: (error as { code?: string; name?: string }).code ?? (error as { name?: string }).name ?? String(error) };
  }
}

/** Runs every request kind at once until `until` resolves; the answers by kind. */
function runLoad(actors: Actors, acknowledged: Acknowledged) {
  let running = true;
  const answers = new Map(REQUESTS.map((kind) => [kind.name, [] as Answer[]]));
  const workers = REQUESTS.flatMap((kind) =>
    Array.from({ length: WORKERS }, async () => {
      while (running) {
        const answer = await send(kind, actors, acknowledged);
        answers.get(kind.name)!.push(answer);
        // A client that was refused does not retry at once (nor does it wait the whole Retry-After here).
        if (!normal(kind, answer)) await Bun.sleep(RETRY_PAUSE_MS);
      }
    }),
  );
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(workers);
    },
  };
}

const normal = (kind: RequestKind, answer: Answer) => answer.status === 200 || kind.documented.includes(answer.status);

/** Rows an acknowledged answer promised that are missing, and rows half-written. */
async function lostRows(db: TestDatabase, acknowledged: Acknowledged) {
  const users = new Set((await db.sql<{ email: string }[]>`select email from users`).map((row) => row.email));
  const sessions = new Set((await db.sql<{ token: string }[]>`select token from sessions`).map((row) => row.token));
  const organizations = new Set((await db.sql<{ slug: string }[]>`select slug from organizations`).map((row) => row.slug));
  const [halfWritten] = await db.sql<{ users: number; sessions: number; organizations: number }[]>`
    select (select count(*)::int from users u where not exists (select 1 from accounts a where a.user_id = u.id and a.provider_id = 'credential')) as users,
           (select count(*)::int from sessions s where not exists (select 1 from users u where u.id = s.user_id)) as sessions,
           (select count(*)::int from organizations o where not exists (select 1 from members m where m.organization_id = o.id and m.role = 'owner')) as organizations`;
  return {
    "sign-up": acknowledged.signUps.filter((email) => !users.has(email.toLowerCase())).length,
    "sign-in": acknowledged.sessionTokens.filter((token) => !sessions.has(token)).length,
    "organization create": acknowledged.organizations.filter((organization) => !organizations.has(organization)).length,
    halfWritten: halfWritten!,
  };
}

const cells: Cell[] = [];
let world: World;

function summarise(answers: Answer[]) {
  const counts = new Map<string, number>();
  for (const answer of answers) {
    const key = answer.error ? `no answer (${answer.error})` : answer.code && answer.status >= 400 ? `${answer.status} ${answer.code}` : String(answer.status);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort().map(([key, n]) => `${n}x ${key}`).join(", ");
}

afterAll(() => {
  const rows = cells.map((cell) => `| ${cell.fault} | ${cell.request} | ${summarise(cell.answers)} | ${cell.lost} | ${cell.servedAgain === null ? "n/a" : `${Math.round(cell.servedAgain.sentMs)} / ${Math.round(cell.servedAgain.answeredMs)} ms`} |`);
  console.log(["", "| fault | request | answers seen | rows lost | served again: request sent / answered, after the heal |", "|---|---|---|---:|---:|", ...rows].join("\n"));
});

describe("fault matrix", () => {
  beforeAll(async () => {
    world = await createWorld();
  });

  for (const fault of FAULTS) {
    test(`${fault.name}: every request kind answers 200, its documented 4xx, or ${fault.answers.map((a) => `${a.status} ${a.code}`).join(" / ") || "nothing else"}; nothing lost; served again after the heal`, async () => {
      const server = await startServerIn(world);
      const actors = await prepareActors(server.url);
      const acknowledged: Acknowledged = { signUps: [], sessionTokens: [], organizations: [] };
      const load = runLoad(actors, acknowledged);
      await Bun.sleep(WARM_MS);
      const injectedAt = performance.now();
      await fault.inject(world, server);
      await Bun.sleep(fault.lastsMs ?? FAULT_MS);
      await fault.heal(world);
      const healedAt = performance.now();
      // Served again: each kind, asked afresh one request at a time, gives its normal answer.
      const servedAgain = new Map<string, { sentMs: number; answeredMs: number }>();
      await Promise.all(
        REQUESTS.map(async (kind) => {
          while (performance.now() - healedAt < ANSWERED_AGAIN_WITHIN_MS + 5_000) {
            const answer = await send(kind, actors, acknowledged);
            load.answers.get(kind.name)!.push(answer);
            if (normal(kind, answer)) return void servedAgain.set(kind.name, { sentMs: answer.startedAt - healedAt, answeredMs: answer.endedAt - healedAt });
            await Bun.sleep(50);
          }
        }),
      );
      await Bun.sleep(AFTER_MS);
      await load.stop();

      const lost = await lostRows(world.db, acknowledged);
      for (const kind of REQUESTS) {
        cells.push({
          fault: fault.name,
          request: kind.name,
          answers: load.answers.get(kind.name)!,
          servedAgain: servedAgain.get(kind.name) ?? null,
          lost: lost[kind.name as keyof typeof lost] as number ?? 0,
        });
      }
      if (process.env.FAULT_MATRIX_LOG) {
        console.log(server.child.output());
        for (const [name, answers] of load.answers) {
          for (const answer of answers.filter((candidate) => candidate.status === 500)) {
            console.log(`${name}: 500 sent ${Math.round(answer.startedAt - injectedAt)} ms after the fault (healed at ${Math.round(healedAt - injectedAt)} ms), answered in ${Math.round(answer.endedAt - answer.startedAt)} ms`);
          }
        }
      }
      expect(server.child.process.exitCode).toBeNull();

      const unexpected = REQUESTS.flatMap((kind) =>
        load.answers
          .get(kind.name)!
          .filter((answer) => !normal(kind, answer) && !fault.answers.some((allowed) => allowed.status === answer.status && allowed.code === answer.code && answer.retryAfter))
          .map((answer) => `${kind.name}: ${answer.error ?? `${answer.status} ${answer.code ?? (answer.bodyless ? "(empty body)" : "")}`}`),
      );
      expect([...new Set(unexpected)]).toEqual([]);
      expect(load.answers.values().every((answers) => answers.every((answer) => !answer.bodyless || answer.status === 0))).toBe(true);
      expect(lost).toEqual({ "sign-up": 0, "sign-in": 0, "organization create": 0, halfWritten: { users: 0, sessions: 0, organizations: 0 } });
      expect(REQUESTS.filter((kind) => !servedAgain.has(kind.name)).map((kind) => kind.name)).toEqual([]);
      expect(Math.max(...[...servedAgain.values()].map((served) => served.sentMs))).toBeLessThan(SERVED_AGAIN_WITHIN_MS);
      expect(Math.max(...[...servedAgain.values()].map((served) => served.answeredMs))).toBeLessThan(ANSWERED_AGAIN_WITHIN_MS);

      // Work answered 503 may still run after the heal; shutdown waits for it up to SHUTDOWN_TIMEOUT (10 s),
      // then closes the pool (5 s at most).
      server.child.process.kill("SIGTERM");
      expect(await server.child.exited(SHUTDOWN_WITHIN_MS)).toBe(0);
    });
  }

  test("SIGTERM under load: every request that reached the server is answered, nothing acknowledged is lost, exit 0", async () => {
    // Each request the server handled is in its log by its X-Request-Id.
    const server = await startServerIn(world, { LOG_LEVEL: "info" });
    const actors = await prepareActors(server.url);
    const acknowledged: Acknowledged = { signUps: [], sessionTokens: [], organizations: [] };
    const load = runLoad(actors, acknowledged);
    await Bun.sleep(WARM_MS);
    server.child.process.kill("SIGTERM");
    const code = await server.child.exited(SHUTDOWN_WITHIN_MS);
    await load.stop();

    const lost = await lostRows(world.db, acknowledged);
    for (const kind of REQUESTS) cells.push({ fault: "SIGTERM", request: kind.name, answers: load.answers.get(kind.name)!, servedAgain: null, lost: lost[kind.name as keyof typeof lost] as number ?? 0 });

    expect(code).toBe(0);
    const handled = server.child.output();
    const all = [...load.answers.values()].flat();
    // A request the server handled whose answer did not arrive was dropped. One that failed without
    // reaching it (refused once the listener closed, or sent on a keep-alive connection the server was
    // closing) never reached it: a client retries those.
    expect(all.filter((answer) => !answer.error && !handled.includes(answer.requestId)).map((answer) => answer.requestId)).toEqual([]);
    const dropped = all.filter((answer) => answer.error && handled.includes(answer.requestId)).map((answer) => `${answer.requestId}: ${answer.error}`);
    expect(dropped).toEqual([]);
    expect(all.filter((answer) => answer.error && !["ECONNREFUSED", "ECONNRESET"].includes(answer.error)).map((answer) => answer.error)).toEqual([]);
    const answered = REQUESTS.flatMap((kind) => load.answers.get(kind.name)!.filter((answer) => !answer.error && !normal(kind, answer)).map((answer) => `${kind.name}: ${answer.status}`));
    expect(answered).toEqual([]);
    expect(lost).toEqual({ "sign-up": 0, "sign-in": 0, "organization create": 0, halfWritten: { users: 0, sessions: 0, organizations: 0 } });
  });
});
