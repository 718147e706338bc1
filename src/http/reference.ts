// The OpenAPI 3.1 reference of the whole HTTP surface: Better Auth's endpoints as its openAPI plugin
// describes them (moved under /api/auth, since the plugin writes paths relative to that base), plus
// the server's own routes. GET /api/auth/reference serves it as a page, or as JSON on request.

type Json = Record<string, unknown>;

const errorBody = {
  type: "object",
  required: ["code", "message"],
  properties: { code: { type: "string", description: "stable machine code" }, message: { type: "string" } },
};
const jsonError = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
const operations = "Operations";

/** The server's own routes, in the plugin's OpenAPI shape. */
export function appPaths(): Json {
  return {
    "/health": {
      get: {
        tags: [operations],
        operationId: "health",
        summary: "Liveness and database reachability",
        security: [],
        responses: {
          "200": {
            description: "The server answers and Postgres answered within a second",
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["status", "service", "version", "timestamp"],
                  properties: {
                    status: { type: "string", enum: ["ok"] },
                    service: { type: "string" },
                    version: { type: "string" },
                    timestamp: { type: "string", format: "date-time" },
                  },
                },
              },
            },
          },
          "503": { description: "Postgres did not answer: `status` is `degraded` and `reason` says why" },
        },
      },
    },
    "/metrics": {
      get: {
        tags: [operations],
        operationId: "metrics",
        summary: "Prometheus metrics of this instance",
        description: "Prometheus text exposition format 0.0.4. With METRICS_TOKEN set, send `Authorization: Bearer <METRICS_TOKEN>`.",
        security: [{ metricsToken: [] }, {}],
        responses: {
          "200": { description: "The metrics", content: { "text/plain": { schema: { type: "string" } } } },
          "401": jsonError("METRICS_TOKEN is set and the request did not carry it (code UNAUTHORIZED)"),
        },
      },
    },
    "/api/auth/reference": {
      get: {
        tags: [operations],
        operationId: "apiReference",
        summary: "This reference",
        description: "An HTML page; the OpenAPI document itself with `Accept: application/json` or `?format=json`.",
        security: [],
        responses: {
          "200": {
            description: "The reference",
            content: { "text/html": { schema: { type: "string" } }, "application/json": { schema: { type: "object" } } },
          },
        },
      },
    },
  };
}

/** Better Auth's generated document, made absolute and completed with the server's routes. */
export function completeReference(generated: Json, options: { baseUrl: string; basePath: string; version: string }): Json {
  const paths: Json = {};
  for (const [path, item] of Object.entries((generated.paths ?? {}) as Json)) paths[`${options.basePath}${path}`] = item;
  const components = (generated.components ?? {}) as Json;
  return {
    ...generated,
    info: {
      title: "auth-server",
      version: options.version,
      description: `Every authentication endpoint (Better Auth, under ${options.basePath}) and the server's own routes. Errors are JSON with a stable \`code\` and a \`message\`.`,
    },
    servers: [{ url: options.baseUrl }],
    tags: [...((generated.tags as unknown[]) ?? []), { name: operations, description: "Health, metrics and this reference" }],
    components: {
      ...components,
      schemas: { ...((components.schemas as Json) ?? {}), Error: errorBody },
      securitySchemes: {
        ...((components.securitySchemes as Json) ?? {}),
        metricsToken: { type: "http", scheme: "bearer", description: "METRICS_TOKEN" },
      },
    },
    paths: { ...paths, ...appPaths() },
  };
}

/** A page that renders `document` with Scalar's API reference viewer (loaded from its CDN). */
export function referencePage(document: Json): string {
  // "</" cannot end the inline script early; the JSON stays equal once parsed.
  const inline = JSON.stringify(document).replaceAll("</", "<\\/");
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>auth-server API reference</title></head>
<body>
<script id="api-reference" type="application/json">${inline}</script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>`;
}
