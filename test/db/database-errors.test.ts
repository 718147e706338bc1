// Which errors mean the database went away (answered 503 DATABASE_UNAVAILABLE, never 500).
// test/ops/fault-matrix.test.ts checks the answers themselves under load.
import { describe, expect, test } from "bun:test";
import { isDatabaseConnectionError } from "../../src/db/request-failures.ts";

const withCode = (code: string) => Object.assign(new Error("x"), { code });

describe("isDatabaseConnectionError", () => {
  test("knows postgres.js's connection codes, socket errors, SQLSTATE class 08 and 57P01-57P03, also as a cause", () => {
    for (const code of ["CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT", "ECONNRESET", "ECONNREFUSED", "08006", "08001", "57P01", "57P03"]) {
      expect([code, isDatabaseConnectionError(withCode(code))]).toEqual([code, true]);
    }
    expect(isDatabaseConnectionError(new Error("wrapped", { cause: withCode("ECONNRESET") }))).toBe(true);
  });

  test("anything else is not: a constraint violation, a bare error, a malformed code, a string", () => {
    for (const error of [new Error("x"), withCode("23505"), withCode("08"), withCode("57014"), null, undefined, "ECONNRESET"]) {
      expect(isDatabaseConnectionError(error)).toBe(false);
    }
  });
});
