// Requests racing each other: simultaneous sign-ups of one email make one user and never a 5xx,
// in process and over real sockets; simultaneous sign-ins each get their own session.
import { describe, expect, test } from "bun:test";
import { hashPassword as legacyScryptHash } from "better-auth/crypto";
import { countIdentityRows, createTestApp, PASSWORD, SITE_ORIGIN, signUp, startTestServer, uniqueEmail, ERROR_BODY, attemptSignIn } from "../helpers.ts";

const RACERS = 20;
const t = await createTestApp();
const server = await startTestServer();

type Answer = { status: number; body: { code?: string; message?: string; user?: { id: string } } };

async function answerOf(response: Response): Promise<Answer> {
  return { status: response.status, body: (await response.json()) as Answer["body"] };
}

/** Every answer is a 200 or a 4xx with a JSON code and message, and exactly one is the winning 200. */
function expectOneWinner(answers: Answer[]) {
  for (const answer of answers) {
    expect(answer.status === 200 || (answer.status >= 400 && answer.status < 500)).toBe(true);
    if (answer.status !== 200) expect(answer.body).toEqual(ERROR_BODY);
  }
  expect(answers.filter((answer) => answer.status === 200).length).toBe(1);
}

describe("sign-up races", () => {
  test(`${RACERS} simultaneous sign-ups with one email make exactly one user, one account and one session, and no 5xx`, async () => {
    const email = uniqueEmail("race");
    const before = await countIdentityRows(t.db.sql);
    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, i) =>
        t.request("/api/auth/sign-up/email", { method: "POST", json: { name: `Racer ${i}`, email, password: PASSWORD } }).then(answerOf),
      ),
    );
    expectOneWinner(answers);
    const users = await t.db.sql<{ id: string }[]>`select id from users where email = ${email}`;
    expect(users.length).toBe(1);
    expect(answers.find((answer) => answer.status === 200)!.body.user!.id).toBe(users[0]!.id);
    expect(await countIdentityRows(t.db.sql)).toEqual({ users: before.users + 1, accounts: before.accounts + 1, sessions: before.sessions + 1 });
  });

  test(`${RACERS} simultaneous sign-ups of one email over real sockets make exactly one user and no 5xx`, async () => {
    const email = uniqueEmail("socket-race");
    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, i) =>
        fetch(`${server.url}/api/auth/sign-up/email`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: SITE_ORIGIN },
          body: JSON.stringify({ name: `Socket racer ${i}`, email, password: PASSWORD }),
        }).then(answerOf),
      ),
    );
    expectOneWinner(answers);
    const users = await server.db.sql`select id from users where email = ${email}`;
    expect(users.length).toBe(1);
    const accounts = await server.db.sql`select id from accounts where user_id = ${users[0]!.id}`;
    expect(accounts.length).toBe(1);
  });

  test("simultaneous sign-ups of one email in different letter cases still make one user", async () => {
    const email = uniqueEmail("case-race");
    const variants = [email, email.toUpperCase(), email[0]!.toUpperCase() + email.slice(1)];
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Case", email: variants[i % variants.length], password: PASSWORD } }).then(answerOf),
      ),
    );
    expectOneWinner(answers);
    const users = await t.db.sql`select id from users where lower(email) = ${email.toLowerCase()}`;
    expect(users.length).toBe(1);
  });
});

describe("sign-in races", () => {
  test("simultaneous sign-ins of one user each answer 200 with a distinct session", async () => {
    const { email, userId } = await signUp(t);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => attemptSignIn(t, email)),
    );
    const tokens = await Promise.all(
      answers.map(async (response) => {
        expect(response.status).toBe(200);
        return ((await response.json()) as { token: string }).token;
      }),
    );
    expect(new Set(tokens).size).toBe(10);
    const rows = await t.db.sql`select token from sessions where user_id = ${userId}`;
    expect(rows.length).toBe(11);
  });

  test("simultaneous sign-ins against a legacy scrypt hash all succeed and leave one argon2id hash", async () => {
    const { email, userId } = await signUp(t);
    await t.db.sql`update accounts set password = ${await legacyScryptHash(PASSWORD)} where user_id = ${userId}`;
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => attemptSignIn(t, email)),
    );
    expect(answers.map((response) => response.status)).toEqual(Array(6).fill(200));
    const [row] = await t.db.sql<{ password: string }[]>`select password from accounts where user_id = ${userId}`;
    expect(row!.password).toStartWith("$argon2id$");
    expect(await Bun.password.verify(PASSWORD, row!.password)).toBe(true);
    const after = await attemptSignIn(t, email);
    expect(after.status).toBe(200);
  });
});
