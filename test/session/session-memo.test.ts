// Kept get-session answers (src/session/memo.ts): a listening server answers a request that repeats
// one the fast path answered from the cookie cache with the same body and headers, observed like any
// request, and never past the cache cookie's or the session's end.
import { describe, expect, test } from "bun:test";
import { createApp } from "../../src/http/app.ts";
import { createLogger } from "../../src/ops/log.ts";
import { getCookies } from "better-auth/cookies";
import { heapStats } from "bun:jsc";
import { createSessionMemo, SESSION_MEMO_BYTES, SESSION_MEMO_ENTRIES_PER_USER, SESSION_MEMO_MAX_KEY, type SessionMemo, type SessionMemoOptions } from "../../src/session/memo.ts";
import { untilTrusting } from "../../src/session/change-notices.ts";
import { cleanUpAfterFile, createTestApp, metricSample, onCleanup, quietLogger, signUp, SITE_ORIGIN } from "../helpers.ts";

cleanUpAfterFile();

const DATA = "better-auth.session_data";
const TOKEN = "better-auth.session_token";
const answer = (validUntil = Date.now() + 60_000, userId = "u1") => ({ body: '{"session":{},"user":{}}', validUntil, userId, sessionId: "s1", issuedAt: Date.now() });
const request = (headers: Record<string, string>, path = "/api/auth/get-session", method = "GET") =>
  new Request(`http://127.0.0.1${path}`, { method, headers });
const ok = () => new Response("{}", { headers: { "content-type": "application/json", "x-request-id": "r1", "cache-control": "no-store" } });
/** A memo with this server's default cookie names and the test site as the one trusted origin. */
const memoOf = (bounds: Partial<SessionMemoOptions> = {}) =>
  createSessionMemo({ cookies: getCookies({ baseURL: "http://127.0.0.1:3001" }), trustedOrigins: [SITE_ORIGIN], ...bounds });
/** The cookies the fast path answers get-session from the cache with (their values are the memo's key). */
const pair = (token = "t1", data = "d1") => `${TOKEN}=${token}; ${DATA}=${data}`;

describe("the memo", () => {
  test("keeps an answer for the same session cookies and Origin only, with the headers that do not vary per request", async () => {
    const memo = memoOf();
    expect(memo.lookup(request({ cookie: pair() }))).toBeNull();
    memo.remember(request({ cookie: pair(), origin: SITE_ORIGIN }), ok(), answer());
    const hit = memo.lookup(request({ cookie: pair(), origin: SITE_ORIGIN }))!;
    expect(hit.userId).toBe("u1");
    const replay = hit.response();
    expect(await replay.text()).toBe('{"session":{},"user":{}}');
    expect(replay.headers.get("cache-control")).toBe("no-store");
    expect(replay.headers.has("x-request-id")).toBe(false);
    // A header set on one replay (the observer's request id) is not kept for the next.
    replay.headers.set("x-request-id", "first");
    expect(hit.response().headers.has("x-request-id")).toBe(false);
    expect(memo.lookup(request({ cookie: pair() }))).toBeNull(); // no Origin
    expect(memo.lookup(request({ cookie: pair(), origin: "https://other.test" }))).toBeNull();
    expect(memo.lookup(request({ cookie: pair("t1", "d2"), origin: SITE_ORIGIN }))).toBeNull();
    expect(memo.lookup(request({ cookie: pair("t2", "d1"), origin: SITE_ORIGIN }))).toBeNull();
    // Cookies the fast path does not read do not change the answer, nor the key.
    expect(memo.lookup(request({ cookie: `junk=1; ${pair()}; theme=dark`, origin: SITE_ORIGIN }))).toBe(hit);
  });

  test("keeps nothing for a query, a bearer token, a body, another method, an answer other than 200, or cookies the fast path leaves to Better Auth", () => {
    const memo = memoOf();
    memo.remember(request({ cookie: pair() }, "/api/auth/get-session?disableCookieCache=true"), ok(), answer());
    memo.remember(request({ cookie: pair(), authorization: "Bearer x" }), ok(), answer());
    memo.remember(request({ cookie: pair(), "content-length": "2" }, undefined, "POST"), ok(), answer());
    memo.remember(request({ cookie: pair() }), new Response("{}", { status: 401 }), answer());
    memo.remember(request({}), ok(), answer());
    memo.remember(request({ cookie: `${TOKEN}=t1` }), ok(), answer());
    memo.remember(request({ cookie: `${pair()}; better-auth.dont_remember=true` }), ok(), answer());
    memo.remember(request({ cookie: `${pair()}; ${DATA}.0=x` }), ok(), answer());
    expect(memo.size).toBe(0);
    // A kept entry is not answered to a request carrying such cookies either.
    memo.remember(request({ cookie: pair() }), ok(), answer());
    expect(memo.lookup(request({ cookie: `${pair()}; better-auth.dont_remember=true` }))).toBeNull();
    expect(memo.lookup(request({ cookie: `${pair()}; ${DATA}.1=x` }))).toBeNull();
    expect(memo.lookup(request({ cookie: pair() }))).not.toBeNull();
  });

  test("an entry ends when its cookie stops proving the session, and the oldest go first past the bound", async () => {
    const memo = memoOf({ maxEntries: 2 });
    memo.remember(request({ cookie: pair("gone") }), ok(), answer(Date.now() - 1));
    expect(memo.size).toBe(0);
    memo.remember(request({ cookie: pair("short") }), ok(), answer(Date.now() + 30));
    expect(memo.lookup(request({ cookie: pair("short") }))).not.toBeNull();
    await Bun.sleep(40);
    expect(memo.lookup(request({ cookie: pair("short") }))).toBeNull();
    expect(memo.bytes).toBe(0);
    for (const n of [1, 2, 3]) memo.remember(request({ cookie: pair(`n${n}`) }), ok(), answer(undefined, `u${n}`));
    expect(memo.size).toBe(2);
    expect(memo.lookup(request({ cookie: pair("n1") }))).toBeNull();
    expect(memo.lookup(request({ cookie: pair("n3") }))).not.toBeNull();
  });

  test("one user flooding it with fresh cache cookies keeps at most SESSION_MEMO_ENTRIES_PER_USER entries, and every other user's entry survives", () => {
    const memo = memoOf({ maxEntries: 50 });
    for (let u = 0; u < 20; u++) memo.remember(request({ cookie: pair(`token-${u}`, `data-${u}`), origin: SITE_ORIGIN }), ok(), answer(undefined, `user-${u}`));
    // One signed-in client: a new session or a new cache cookie per request, as many as it likes.
    for (let i = 0; i < 1_000; i++) memo.remember(request({ cookie: pair(`attacker-token-${i % 7}`, `attacker-data-${i}`), origin: SITE_ORIGIN }), ok(), answer(undefined, "attacker"));
    expect(memo.size).toBe(20 + SESSION_MEMO_ENTRIES_PER_USER);
    for (let u = 0; u < 20; u++) expect(memo.lookup(request({ cookie: pair(`token-${u}`, `data-${u}`), origin: SITE_ORIGIN }))?.userId).toBe(`user-${u}`);
    // The attacker's newest entries are the ones kept.
    expect(memo.lookup(request({ cookie: pair("attacker-token-5", "attacker-data-999"), origin: SITE_ORIGIN }))).not.toBeNull();
    expect(memo.lookup(request({ cookie: pair("attacker-token-0", "attacker-data-0"), origin: SITE_ORIGIN }))).toBeNull();
  });

  test("a key longer than a session cookie pair is never kept, and the entries' bytes stay under the bound that the heap confirms", () => {
    const memo = memoOf();
    memo.remember(request({ cookie: pair("t1", "x".repeat(SESSION_MEMO_MAX_KEY)) }), ok(), answer());
    expect(memo.size).toBe(0);
    // The largest entries a client can get kept: a data cookie at the key's limit, one per user.
    const heapBefore = heapAfterCollection();
    const data = (n: number) => `${String(n).padStart(8, "0")}${"d".repeat(SESSION_MEMO_MAX_KEY - 200)}`;
    const count = 2 * Math.ceil(SESSION_MEMO_BYTES / SESSION_MEMO_MAX_KEY);
    for (let n = 0; n < count; n++) memo.remember(request({ cookie: pair(`token-${n}`, data(n)), origin: SITE_ORIGIN }), ok(), answer(undefined, `user-${n}`));
    expect(memo.bytes).toBeLessThanOrEqual(SESSION_MEMO_BYTES);
    expect(memo.bytes).toBeGreaterThan(SESSION_MEMO_BYTES - 2 * SESSION_MEMO_MAX_KEY);
    expect(memo.size).toBeLessThan(count);
    // What the entries really hold on the heap is within the estimate.
    const grown = heapAfterCollection() - heapBefore;
    expect(grown).toBeLessThanOrEqual(SESSION_MEMO_BYTES);
    expect(memo.lookup(request({ cookie: pair(`token-${count - 1}`, data(count - 1)), origin: SITE_ORIGIN }))).not.toBeNull();
  });
});

function heapAfterCollection(): number {
  Bun.gc(true);
  return heapStats().heapSize;
}

/** The app listening on a free port with a memo that counts its hits; `logLines` collects its JSON log lines. */
async function listeningApp(env: Record<string, string> = {}, logLines?: string[]) {
  const t = await createTestApp(env);
  const inner = createSessionMemo({ cookies: getCookies(t.auth.options), trustedOrigins: t.config.corsOrigins });
  let hits = 0;
  const memo: SessionMemo = {
    lookup(r) {
      const hit = inner.lookup(r);
      if (hit) hits++;
      return hit;
    },
    remember: (...args) => inner.remember(...args),
    get size() {
      return inner.size;
    },
    get bytes() {
      return inner.bytes;
    },
  };
  const app = createApp({ config: t.config, auth: t.auth, sql: t.db.sql, logger: logLines ? createLogger("info", (line) => logLines.push(line), "json") : quietLogger, version: "test", sessionMemo: memo, notices: t.notices });
  await untilTrusting(t.notices);
  app.listen({ port: 0, hostname: "127.0.0.1" });
  onCleanup(() => app.stop(true));
  const url = `http://127.0.0.1:${app.server!.port}`;
  const get = (cookie: string, headers: Record<string, string> = {}) => fetch(`${url}/api/auth/get-session`, { headers: { origin: SITE_ORIGIN, cookie, ...headers } });
  return { t, memo, url, get, hits: () => hits };
}
const withoutPerRequest = (response: Response) =>
  [...response.headers.entries()].filter(([name]) => !["x-request-id", "date"].includes(name)).sort(([a], [b]) => a.localeCompare(b));
const getSessionCount = async (url: string) =>
  metricSample(await (await fetch(`${url}/metrics`)).text(), "http_requests_total", { route: "/api/auth/get-session", status: "200" }) ?? 0;

describe("over the socket", () => {
  test("a repeated cache-cookie request gets the kept answer: same body and headers, its own request id, counted in the metrics", async () => {
    const s = await listeningApp();
    const { cookie, token } = await signUp(s.t);
    const first = await s.get(cookie);
    const cache = first.headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
    const both = `${cookie}; ${cache}`;
    const fromCookie = await s.get(both);
    expect(s.memo.size).toBe(1);
    expect(s.hits()).toBe(0);
    const counted = await getSessionCount(s.url);
    const kept = await s.get(both, { "x-request-id": "memo-check-1" });
    expect(s.hits()).toBe(1);
    expect(kept.status).toBe(200);
    expect(await kept.text()).toBe(await fromCookie.text());
    expect(withoutPerRequest(kept)).toEqual(withoutPerRequest(fromCookie));
    expect(kept.headers.get("access-control-allow-origin")).toBe(SITE_ORIGIN);
    expect(kept.headers.get("x-content-type-options")).toBe("nosniff");
    expect(kept.headers.get("x-request-id")).toBe("memo-check-1");
    expect(kept.headers.get("x-request-id")).not.toBe(fromCookie.headers.get("x-request-id"));
    expect(await getSessionCount(s.url)).toBe(counted + 1);
    // No revocation delay: once the row is gone (here in SQL), the kept answer is not replayed, within a second.
    await s.t.db.sql`delete from sessions where token = ${token}`;
    const deletedAt = Date.now();
    let answer: unknown = "not asked";
    while (Date.now() - deletedAt < 1000 && answer !== null) answer = await (await s.get(both)).json();
    expect(answer).toBeNull();
    expect(await (await s.get(cookie)).json()).toBeNull();
  });

  test("a kept answer writes the request line the app would: its request id, the route, the client IP and the user", async () => {
    const lines: string[] = [];
    const s = await listeningApp({}, lines);
    const { cookie, userId } = await signUp(s.t);
    const cache = (await s.get(cookie)).headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
    await (await s.get(`${cookie}; ${cache}`, { "x-request-id": "memo-log-app" })).text();
    await (await s.get(`${cookie}; ${cache}`, { "x-request-id": "memo-log-kept" })).text();
    expect(s.hits()).toBe(1);
    const requestLine = (id: string) => {
      const line = lines.map((text) => JSON.parse(text) as Record<string, unknown>).find((fields) => fields.requestId === id);
      expect(line).toBeDefined();
      const { time, durationMs, requestId, ...rest } = line!;
      expect(typeof durationMs).toBe("number");
      return rest;
    };
    const kept = requestLine("memo-log-kept");
    expect(kept).toEqual({ level: "info", method: "GET", route: "/api/auth/get-session", status: 200, ip: "127.0.0.1", userId, msg: "request" });
    expect(kept).toEqual(requestLine("memo-log-app"));
  });

  test("another origin, a changed cookie or a tampered cache cookie is never answered from another request's entry", async () => {
    const s = await listeningApp();
    const { cookie } = await signUp(s.t);
    const cache = (await s.get(cookie)).headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
    await s.get(`${cookie}; ${cache}`);
    expect(s.memo.size).toBe(1);
    const foreign = await fetch(`${s.url}/api/auth/get-session`, { headers: { origin: "https://evil.test", cookie: `${cookie}; ${cache}` } });
    expect(foreign.headers.get("access-control-allow-origin")).toBeNull();
    await foreign.text();
    const value = cache.slice(cache.indexOf("=") + 1);
    const tampered = `${DATA}=${value.slice(0, -4)}AAAA`;
    const refused = await s.get(`${cookie}; ${tampered}`);
    expect(refused.status).toBe(200);
    await refused.text();
    expect(s.hits()).toBe(0);
    // Neither the untrusted origin's answer nor the tampered one was kept.
    expect(s.memo.size).toBe(1);
  });

  test("one signed-in client varying Origin, adding junk cookies or fetching fresh cache cookies cannot grow it past its own few entries; another user's entry stays", async () => {
    const s = await listeningApp();
    const cacheOf = async (cookie: string) => (await s.get(cookie)).headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
    const victim = await signUp(s.t);
    const victimCookies = `${victim.cookie}; ${await cacheOf(victim.cookie)}`;
    await (await s.get(victimCookies)).text();
    const attacker = await signUp(s.t);
    const attackerCookies = `${attacker.cookie}; ${await cacheOf(attacker.cookie)}`;
    // 600 requests with a 12 KB Origin each, then 300 with a junk cookie each, then 20 fresh cache cookies.
    for (let i = 0; i < 600; i++) await (await s.get(attackerCookies, { origin: `https://${String(i).padStart(4, "0")}${"a".repeat(12_000)}.test` })).text();
    for (let i = 0; i < 300; i++) await (await s.get(`${attackerCookies}; junk${i}=${"j".repeat(1_000)}`)).text();
    for (let i = 0; i < 20; i++) await (await s.get(`${attacker.cookie}; ${await cacheOf(attacker.cookie)}`)).text();
    expect(s.memo.size).toBeLessThanOrEqual(1 + SESSION_MEMO_ENTRIES_PER_USER);
    expect(s.memo.bytes).toBeLessThan((1 + SESSION_MEMO_ENTRIES_PER_USER) * 8 * 1024);
    const hitsBefore = s.hits();
    const kept = await s.get(victimCookies);
    expect(s.hits()).toBe(hitsBefore + 1);
    expect(((await kept.json()) as { user: { id: string } }).user.id).toBe(victim.userId);
  }, 60_000);

  test("with the cookie cache off nothing is kept, and with a one-second cache the entry ends with the cookie", async () => {
    const off = await listeningApp({ SESSION_COOKIE_CACHE: "off" });
    const user = await signUp(off.t);
    for (let i = 0; i < 3; i++) expect(((await (await off.get(user.cookie)).json()) as { user: { id: string } }).user.id).toBe(user.userId);
    expect(off.memo.size).toBe(0);

    const short = await listeningApp({ SESSION_COOKIE_CACHE: "1s" });
    const { cookie } = await signUp(short.t);
    const cache = (await short.get(cookie)).headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
    await (await short.get(`${cookie}; ${cache}`)).text();
    await (await short.get(`${cookie}; ${cache}`)).text();
    expect(short.hits()).toBe(1);
    await Bun.sleep(1100);
    const late = await short.get(`${cookie}; ${cache}`);
    expect(short.hits()).toBe(1);
    // The expired cache cookie proves nothing: the session row answered, with a new cache cookie.
    expect(late.headers.getSetCookie().some((line) => line.startsWith(`${DATA}=`))).toBe(true);
  });
});
