#!/usr/bin/env bash
# Fuzzes the HTTP API against its own OpenAPI document: starts a real single-node
# `concord server` (free ports, a temporary data dir), validates the document it serves
# (openapi-spec-validator), then runs schemathesis with every check on every documented
# operation for a bounded time. Exits non-zero on any failure.
#
# Both tools are pinned and installed into a venv under target/ on first use.
# Environment: API_FUZZ_MAX_TIME (seconds of fuzzing, default 90), API_FUZZ_SEED (replays a run;
# a fresh seed is drawn and printed otherwise), CONCORD_BIN (the binary; default: built here).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
ROOT=$(pwd)
TARGET_DIR=$(realpath -m "${CARGO_TARGET_DIR:-target}")
WORK="$TARGET_DIR/api-fuzz"
VENV="$WORK/venv"
MAX_TIME=${API_FUZZ_MAX_TIME:-90}
SEED=${API_FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}

# Python 3.12 or later where there is one: under CPython 3.11.7, hypothesis's ast.parse calls
# inside schemathesis fail now and then with "SystemError: AST constructor recursion depth
# mismatch", which ends a run with an error that is no finding about the API.
pick_python() {
  if [[ -n "${API_FUZZ_PYTHON:-}" ]]; then echo "$API_FUZZ_PYTHON"; return; fi
  local candidate version
  for candidate in python3.13 python3.12 python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[2-9]\.[0-9]+$' | sort -V | tail -1)
    if [[ -n "$version" ]]; then echo "$(pyenv root)/versions/$version/bin/python3"; return; fi
  fi
  echo python3
}

mkdir -p "$WORK"
PYTHON=$(pick_python)
WANTED="schemathesis $SCHEMATHESIS_VERSION, openapi-spec-validator $VALIDATOR_VERSION"
WANTED="$WANTED on $("$PYTHON" --version 2>&1)"
if [[ "$(cat "$VENV/.concord-installed" 2>/dev/null)" != "$WANTED" ]]; then
  echo "== installing $WANTED into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$VALIDATOR_VERSION"
  echo "$WANTED" >"$VENV/.concord-installed"
fi

if [[ -z "${CONCORD_BIN:-}" ]]; then
  cargo build --locked --quiet -p concord --bin concord
  CONCORD_BIN="$TARGET_DIR/debug/concord"
fi

DATA=$(mktemp -d)
LOG="$WORK/server.log"
SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA"
}
trap stop_server EXIT

echo "== starting concord server (data dir $DATA, log $LOG)"
"$CONCORD_BIN" server --data-dir "$DATA/node" --http-addr 127.0.0.1:0 --peer-addr 127.0.0.1:0 \
  >"$WORK/server.out" 2>"$LOG" &
SERVER_PID=$!
ENDPOINT=""
for _ in $(seq 1 300); do
  # The node announces `concord node <ID> listening on http://<ADDR> peer ...` once it serves.
  ENDPOINT=$(grep -o 'listening on http://[^ ]*' "$WORK/server.out" 2>/dev/null | head -1 |
    sed 's/listening on //') || true
  [[ -n "$ENDPOINT" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited early:"; tail -20 "$LOG"; exit 1; }
  sleep 0.1
done
[[ -n "$ENDPOINT" ]] || { echo "server did not announce itself in 30 s"; tail -20 "$LOG"; exit 1; }
echo "== server at $ENDPOINT"

echo "== openapi-spec-validator"
"$VENV/bin/python" -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$ENDPOINT/v1/openapi.json" >"$WORK/openapi.json"
"$VENV/bin/openapi-spec-validator" "$WORK/openapi.json"

echo "== schemathesis: all checks, ${MAX_TIME}s, seed $SEED (replay with API_FUZZ_SEED=$SEED)"
status=0
# Run from the work dir: schemathesis keeps a cache dir in its working directory.
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/api-fuzz.toml" \
  run "$ENDPOINT/v1/openapi.json" \
  --checks all \
  --max-time "$MAX_TIME" \
  --seed "$SEED" \
  --workers 2 \
  --request-timeout 30 \
  --generation-database none \
  --no-color) \
  || status=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "the server died during the run:"; tail -40 "$LOG"; status=1
fi
exit "$status"
