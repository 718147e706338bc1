// A request that runs into one of the database's unique constraints gets 409 CONFLICT {code, message},
// never a 500: here a passkey credential that is already registered, registered again by another
// account. The passkey plugin catches the database's error and answers its own 500
// (FAILED_TO_VERIFY_REGISTRATION); the server turns it into the conflict it is. The authenticator is a
// software one: a P-256 key and a "none" attestation, which WebAuthn §8.7 lets any client produce.
import { describe, expect, test } from "bun:test";
import { isoBase64URL, isoCBOR } from "@simplewebauthn/server/helpers";
import makeFetchCookie from "fetch-cookie";
import { cleanUpAfterFile, createTestApp, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, uniqueEmail } from "../helpers.ts";

cleanUpAfterFile();

const t = await createTestApp();

/** A credential of a software authenticator: its id and its attested data for rp "localhost". */
async function softwareCredential() {
  const { publicKey } = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey("jwk", publicKey);
  const cosePublicKey = isoCBOR.encode(
    new Map<number, number | Uint8Array>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, isoBase64URL.toBuffer(jwk.x!)],
      [-3, isoBase64URL.toBuffer(jwk.y!)],
    ]),
  );
  const credentialId = crypto.getRandomValues(new Uint8Array(16));
  const rpIdHash = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(t.config.plugins.passkey.rpId)));
  const authData = Buffer.concat([
    rpIdHash,
    Uint8Array.of(0x45), // user present, user verified, attested credential data
    new Uint8Array(4), // sign count
    new Uint8Array(16), // AAGUID
    Uint8Array.of(0, credentialId.length),
    credentialId,
    cosePublicKey,
  ]);
  const attestationObject = isoCBOR.encode(new Map<string, unknown>([["fmt", "none"], ["attStmt", new Map()], ["authData", new Uint8Array(authData)]]) as never);
  return { id: isoBase64URL.fromBuffer(credentialId), attestationObject: isoBase64URL.fromBuffer(attestationObject) };
}

/** A signed-up user's browser: Better Auth's client and its cookie jar's fetch. */
async function signedUp(label: string) {
  const { client, jar } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
  const { data, error } = await client.signUp.email({ name: label, email: uniqueEmail(label), password: PASSWORD });
  expect(error).toBeNull();
  return { id: data!.user.id, fetch: makeFetchCookie(inProcessFetch(t.app), jar) };
}

/** Registers `credential` for the browser's user: options, then the attestation answering their challenge. */
async function register(browser: Awaited<ReturnType<typeof signedUp>>, credential: Awaited<ReturnType<typeof softwareCredential>>) {
  const options = await browser.fetch(`${t.config.baseUrl}/api/auth/passkey/generate-register-options`, { headers: { origin: SITE_ORIGIN } });
  expect(options.status).toBe(200);
  const { challenge } = (await options.json()) as { challenge: string };
  const clientDataJSON = isoBase64URL.fromUTF8String(JSON.stringify({ type: "webauthn.create", challenge, origin: SITE_ORIGIN, crossOrigin: false }));
  return browser.fetch(`${t.config.baseUrl}/api/auth/passkey/verify-registration`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: SITE_ORIGIN },
    body: JSON.stringify({
      name: "software key",
      response: {
        id: credential.id,
        rawId: credential.id,
        type: "public-key",
        response: { clientDataJSON, attestationObject: credential.attestationObject, transports: ["internal"] },
        clientExtensionResults: {},
      },
    }),
  });
}

const passkeysWith = async (credentialId: string) =>
  [...(await t.db.sql<{ user_id: string }[]>`select user_id from passkeys where credential_id = ${credentialId}`)];

describe("unique constraints answer 409 CONFLICT", () => {
  test("a passkey credential already registered to one account, registered by another, answers 409 CONFLICT JSON and stays the first account's", async () => {
    const credential = await softwareCredential();
    const first = await signedUp("first");
    const registered = await register(first, credential);
    expect(registered.status).toBe(200);
    expect(await passkeysWith(credential.id)).toEqual([{ user_id: first.id }]);

    const second = await signedUp("second");
    const again = await register(second, credential);
    expect(again.status).toBe(409);
    expect(await again.json()).toEqual({ code: "CONFLICT", message: "the request conflicts with a record that already exists" });
    expect(await passkeysWith(credential.id)).toEqual([{ user_id: first.id }]);
    // The same account registering it twice is the same conflict.
    expect((await register(first, credential)).status).toBe(409);
    expect(await passkeysWith(credential.id)).toEqual([{ user_id: first.id }]);
  });
});
