#!/usr/bin/env bash
# Runs schemathesis against a fresh `civic serve` (release of the debug build the tests
# made) with the checks for server errors, status codes, content types and response
# schemas; any finding fails. Needs `st` (pinned in .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p civic-host --bin civic
data=$(mktemp -d)
log="$data/server.log"
port=$((20000 + RANDOM % 20000))
"${CARGO_TARGET_DIR:-target}/debug/civic" serve --data "$data/civic-data" --listen "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
CIVIC_TOKEN=$(cat "$data/civic-data/admin-token")
export CIVIC_TOKEN
# One case, so the case routes have something to act on (c-0000000001).
curl -sf -X POST "http://127.0.0.1:$port/v1/cases" -H "Authorization: Bearer $CIVIC_TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"district":"jiyang","category":"noise","location":{"grid":"jiyang/yuehe/grid-01"}}' >/dev/null
st --config-file .ci/schemathesis.toml run "http://127.0.0.1:$port/v1/openapi.json" \
  --seed 20261201 --no-color
