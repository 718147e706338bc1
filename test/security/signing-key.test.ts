// The first JWT signing key is created once, at start-up, and a secret that cannot decrypt it stops
// the start instead of failing every /token later.
import { expect, test } from "bun:test";
import { createAuth, ensureSigningKey, SigningKeyError } from "../../src/auth/better-auth.ts";
import { createTestApp, quietLogger, testConfig } from "../helpers.ts";

test("start-up with the same secret finds the existing key", async () => {
  const t = await createTestApp();
  const config = testConfig({ DATABASE_URL: t.db.url }) as typeof t.config & { secret: string };
  const again = createAuth({ config, sql: t.db.sql, logger: quietLogger });
  expect(await ensureSigningKey(again, t.db.sql, config)).toBe("present");
  const [{ count }] = (await t.db.sql`select count(*)::int as count from jwks`) as unknown as [{ count: number }];
  expect(count).toBe(1);
});

test("start-up with a different secret is refused with a clear error, and no key is added", async () => {
  const t = await createTestApp();
  const config = testConfig({ DATABASE_URL: t.db.url, BETTER_AUTH_SECRET: "another-secret-0123456789-abcdefghijklmnopqr" }) as typeof t.config & { secret: string };
  const other = createAuth({ config, sql: t.db.sql, logger: quietLogger });
  const attempt = ensureSigningKey(other, t.db.sql, config);
  await expect(attempt).rejects.toBeInstanceOf(SigningKeyError);
  await expect(attempt).rejects.toThrow(/BETTER_AUTH_SECRET/);
  const [{ count }] = (await t.db.sql`select count(*)::int as count from jwks`) as unknown as [{ count: number }];
  expect(count).toBe(1);
});
