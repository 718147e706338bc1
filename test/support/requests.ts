// Requests as a test states them: sign up, sign in, post JSON, and what an error answer must be.
import { expect } from "bun:test";
import { SITE_ORIGIN, type TestApp } from "./app.ts";

export const PASSWORD = "correct horse battery";

let userCounter = 0;
export function uniqueEmail(prefix = "user"): string {
  return `${prefix}-${Date.now().toString(36)}-${++userCounter}@example.test`;
}

/** Signs a user up over HTTP; returns the user, the session token and the cookie header to send. */
export async function signUp(
  to: Target,
  fields: Record<string, unknown> = {},
): Promise<{ email: string; userId: string; token: string; cookie: string; response: Response }> {
  const email = (fields.email as string) ?? uniqueEmail();
  const response = await post(to, "/api/auth/sign-up/email", { name: "Test User", email, password: PASSWORD, ...fields });
  if (response.status !== 200) throw new Error(`sign-up failed: ${response.status} ${await response.text()}`);
  const body = (await response.clone().json()) as { token: string; user: { id: string } };
  return { email, userId: body.user.id, token: body.token, cookie: sessionCookieOf(response), response };
}

/** Where a request goes: the app in process, a running server, or a base URL. */
export type Target = Pick<TestApp, "request"> | { url: string } | string;

/**
 * POSTs `json` to `path` from the site's origin; `headers` adds to (or replaces) the browser's, and a
 * string stands for the cookie header.
 */
export function post(to: Target, path: string, json: unknown, headers: Record<string, string> | string = {}): Promise<Response> {
  const extra = typeof headers === "string" ? { cookie: headers } : headers;
  if (typeof to === "object" && "request" in to) return to.request(path, { method: "POST", json, headers: extra });
  const base = typeof to === "string" ? to : to.url;
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { origin: SITE_ORIGIN, "content-type": "application/json", ...extra },
    body: JSON.stringify(json),
  });
}

/** A sign-in with email and password, whatever its outcome. */
export function attemptSignIn(to: Target, email: string, password = PASSWORD): Promise<Response> {
  return post(to, "/api/auth/sign-in/email", { email, password });
}

/** Signs `email` in with its password, expecting success; returns the session token and the cookie to send. */
export async function signIn(to: Target, email: string, password = PASSWORD): Promise<{ token: string; cookie: string; response: Response }> {
  const response = await attemptSignIn(to, email, password);
  if (response.status !== 200) throw new Error(`sign-in failed: ${response.status} ${await response.clone().text()}`);
  const body = (await response.clone().json()) as { token: string };
  return { token: body.token, cookie: sessionCookieOf(response), response };
}

/** The body of every error answer: a stable code and a message for people, nothing else. */
export const ERROR_BODY = { code: expect.stringMatching(/^[A-Z_]+$/), message: expect.stringMatching(/\S/) };

/** An error answer as every client may rely on: `status`, JSON, and a body of exactly `code` and a non-empty `message`. */
export async function expectError(response: Response, status: number, code: string): Promise<{ code: string; message: string }> {
  const text = await response.clone().text();
  expect({ status: response.status, type: response.headers.get("content-type")?.split(";")[0], text }).toMatchObject({ status, type: "application/json" });
  const body = JSON.parse(text) as { code: string; message: string };
  expect(body).toEqual({ ...ERROR_BODY, code });
  return body;
}

/** The `token` list-sessions answers (a handle, src/session/handles.ts) for the session `token`, as `cookie`'s user sees it. */
export async function listedHandle(t: Pick<TestApp, "request" | "db">, cookie: string, token: string): Promise<string> {
  const [row] = await t.db.sql<{ id: string }[]>`select id from sessions where token = ${token}`;
  const listed = (await (await t.request("/api/auth/list-sessions", { headers: { cookie } })).json()) as Array<{ id: string; token: string }>;
  return listed.find((session) => session.id === row!.id)!.token;
}

/** The value of one sample in a Prometheus text exposition (the first with these labels), or undefined. */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[4]);
  }
  return undefined;
}

/** The `name=value` of the session cookie a response sets. */
export function sessionCookieOf(response: Response): string {
  const cookie = response.headers.getSetCookie().find((c) => c.includes("session_token="));
  if (!cookie) throw new Error("no session cookie in the response");
  return cookie.split(";")[0]!;
}

/**
 * A POST whose headers are on the wire but whose body is not: the request is surely in flight until
 * `send()` writes the body. `answer()` is everything the server sent; `closed` settles when it hangs up.
 */
export async function openRawPost(port: number, path: string, body: string) {
  let received = "";
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_socket, chunk) => void (received += chunk.toString()), close: () => resolve(), error: () => resolve() },
  });
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nOrigin: ${SITE_ORIGIN}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
  );
  return { closed, send: () => socket.write(body), answer: () => received };
}
