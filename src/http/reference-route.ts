// GET /api/auth/reference (a page, or JSON on request) and Better Auth's own schema route, from one
// generated document built on first use.
import { Elysia } from "elysia";
import type { Auth } from "../auth/better-auth.ts";
import type { Config } from "../config.ts";
import { completeReference, referencePage } from "./reference.ts";

export function referenceRoute(auth: Auth, config: Config, basePath: string, version: string) {
  let reference: Promise<Record<string, unknown>> | undefined;
  const apiReference = () =>
    (reference ??= auth.api
      .generateOpenAPISchema()
      .then((generated) => completeReference(generated as Record<string, unknown>, { baseUrl: config.baseUrl, basePath, version })));
  return new Elysia({ name: "reference-route" })
    .get(`${basePath}/reference`, async ({ request }) => {
      const document = await apiReference();
      const wantsJson = new URL(request.url).searchParams.get("format") === "json" || /application\/json/.test(request.headers.get("accept") ?? "");
      if (wantsJson) return Response.json(document);
      return new Response(referencePage(document), { headers: { "content-type": "text/html; charset=utf-8" } });
    })
    .get(`${basePath}/open-api/generate-schema`, async () => Response.json(await apiReference()));
}
