#!/usr/bin/env bash
# Load benchmark: starts this server in production mode against a fresh database and runs the shared
# anchors (Express + Better Auth + pg baseline, hello-world limits, pgbench, hash throughput) in the
# same pass, so the ratios compare like with like on a shared machine; then the native hash ceiling
# (bench/hash-ceiling.ts) and sign-in and sign-up against it (bench/against-ceiling.ts).
#   bun run bench            env: BENCH_ANCHORS (folder holding run-all.sh; default ../shared/bench
#                            beside the checkout), CONNS=64 DURATION=10s N=1000
# Results: bench/results/anchors/results/<timestamp>/summary.md (git-ignored); the table goes into
# bench/RESULTS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ANCHORS="${BENCH_ANCHORS:-$ROOT/../shared/bench}"
[[ -x "$ANCHORS/run-all.sh" || -f "$ANCHORS/run-all.sh" ]] || { echo "no run-all.sh in $ANCHORS (set BENCH_ANCHORS)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "need wrk: apt-get install -y wrk" >&2; exit 1; }

# Production mode needs an https base URL, a long secret and the load's Origin in CORS_ORIGINS;
# rate limiting is off because the whole load comes from one IP.
secret="bench-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# The server runs as the image runs it: `bun run start`, the production bundle (bun run build), as a child
# of `bun run` (which run-all.sh finds with `pgrep -P` to sample, and which passes SIGTERM on).
# TARGET_ENV adds settings, e.g. TARGET_ENV="SESSION_COOKIE_CACHE=off".
(cd "$ROOT" && bun run build >/dev/null)
export TARGET_CMD="cd '$ROOT' || exit 1; export NODE_ENV=production BETTER_AUTH_SECRET=$secret BETTER_AUTH_URL=https://auth.bench.test CORS_ORIGINS=http://127.0.0.1:4220 EMAIL_FLOWS=none METRICS_TOKEN=off RATE_LIMIT=off HOST=127.0.0.1 LOG_LEVEL=warn ${TARGET_ENV:-}; exec bun run --silent start"
export TARGET_LABEL="${TARGET_LABEL:-auth-server}"
export TARGET_ORIGIN="http://127.0.0.1:4220"
export TARGET_SIGNUP_EXTRA='{"experienceLevel":"beginner","professionalRole":"student"}'
# Run a private copy so results and the baseline's node_modules stay out of the anchors folder.
WORK="$ROOT/bench/results/anchors"
mkdir -p "$WORK"
(cd "$ANCHORS" && tar --exclude=./results --exclude=node_modules -cf - .) | (cd "$WORK" && tar -xf -)
# The native hash ceiling of the same run: the library and parameters the server hashes with, 1, 2 and 4 in
# flight, measured before and after the anchors (a shared machine's load drifts; the two are averaged); the
# summary is written again with it, and sign-in and sign-up are set against it.
ceiling="$(mktemp)"
(cd "$ROOT" && WHEN=before bun bench/hash-ceiling.ts) | tee "$ceiling"
bash "$WORK/run-all.sh"
latest=$(ls -1d "$WORK"/results/*/ | tail -1)
mv "$ceiling" "${latest}hash-native.jsonl"
(cd "$ROOT" && WHEN=after bun bench/hash-ceiling.ts) | tee -a "${latest}hash-native.jsonl"
(cd "$WORK" && node harness/summary.mjs "$latest") > "${latest}summary.md"
(cd "$ROOT" && bun bench/against-ceiling.ts "$latest" "$TARGET_LABEL") | tee -a "${latest}summary.md"
echo "summary: ${latest}summary.md"
