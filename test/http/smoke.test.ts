import { expect, test } from "bun:test";
import { createTestApp, createTestClient, inProcessFetch, PASSWORD, signUp, uniqueEmail } from "../helpers.ts";

const t = await createTestApp();

test("sign-up through HTTP returns a session cookie", async () => {
  const { cookie, userId } = await signUp(t);
  const res = await t.request("/api/auth/get-session", { headers: { cookie } });
  expect(res.status).toBe(200);
  expect(((await res.json()) as any).user.id).toBe(userId);
});

test("Better Auth's client signs up and keeps the session in its cookie jar", async () => {
  const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
  const email = uniqueEmail();
  const up = await client.signUp.email({ email, password: PASSWORD, name: "C", experienceLevel: "advanced" });
  expect(up.error).toBeNull();
  const session = await client.getSession();
  expect(session.data?.user.email).toBe(email);
  expect(session.data?.user.experienceLevel).toBe("advanced");
  const token = await client.token();
  expect(typeof token.data?.token).toBe("string");
});
