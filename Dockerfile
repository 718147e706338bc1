# auth-server image: production dependencies only, runs as the image's non-root `bun` user.
#   docker build -t auth-server .
#   docker run -p 3001:3001 --stop-timeout 20 -e DATABASE_URL=... -e BETTER_AUTH_SECRET=... \
#     -e BETTER_AUTH_URL=https://auth.example.com -e CORS_ORIGINS=https://learn.example.com auth-server
# Settings are the environment variables in .env.example; production refuses to start without
# DATABASE_URL, BETTER_AUTH_SECRET, an https BETTER_AUTH_URL, CORS_ORIGINS and METRICS_TOKEN (a token, or off).

FROM oven/bun:1.4.4 AS deps
WORKDIR /app
# The manifest, lockfile and dependency patches alone, so the dependency layer is rebuilt only when they change.
COPY package.json bun.lock ./
COPY patches ./patches
RUN bun install --frozen-lockfile --production

# One bundled CommonJS file (dist/index.js; package.json "build") starts in less time and memory than
# resolving and compiling src/ and node_modules (cold start to first served request under 500 ms, idle
# memory under 60 MB; bench/RESULTS.md). JavaScriptCore bytecode (--bytecode) would start 50-100 ms
# sooner but holds about 5 MB more in every idle instance, so it is not built. nodemailer,
# @simplewebauthn/server and @node-rs/argon2 (a native binding; its prebuilt package for the image's platform
# is installed by bun install) stay out of the bundle and load from node_modules with the first mail, passkey
# or password hash.
FROM deps AS build
COPY src ./src
RUN bun run build

FROM oven/bun:1.4.4-slim
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3001
# Owned by root and read-only to the server: in production nothing is written to the app folder
# (no embedded database, no generated secret).
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY sql ./sql
COPY src ./src
COPY --from=build /app/dist ./dist
USER bun
EXPOSE 3001
# /health answers 503 when Postgres does not answer within a second. The slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD bun -e "fetch('http://127.0.0.1:'+(process.env.PORT||3001)+'/health').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# `bun run start` runs the bundle (package.json). Bun keeps a small parent process (about 9 MB) that
# passes SIGTERM and SIGINT on to the server and exits with its code; --silent keeps the parent's
# command echo out of the JSON log stream.
# SIGTERM drains in-flight requests for up to SHUTDOWN_TIMEOUT (10 s) and then closes the pool: give
# `docker stop` more than that (--stop-timeout; its default is 10 s).
CMD ["bun", "run", "--silent", "start"]
