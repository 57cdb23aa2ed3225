#!/usr/bin/env bash
# Foreground cost of anti-entropy: `concord bench` on a 3-node cluster with exchanges running
# continuously (a short interval, no pause) against the same cluster with anti-entropy off,
# alternating the two settings round by round.
#   scripts/bench-ae.sh [ROUNDS=3] [DURATION=20s]
# Needs a release build: CARGO_TARGET_DIR=/tmp/rel-target cargo build --release -p concord
# Env: CONCORD (binary, default /tmp/rel-target/release/concord), WORK (/tmp/aebench),
#      CONNS (64), KEYS (100000), AE_INTERVAL_MS (200: "continuously").
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-20s}
CONCORD=${CONCORD:-/tmp/rel-target/release/concord}
WORK=${WORK:-/tmp/aebench}
CONNS=${CONNS:-64}
KEYS=${KEYS:-100000}
AE_INTERVAL_MS=${AE_INTERVAL_MS:-200}

cleanup() { # stops the nodes the launcher left running
  [ -d "$WORK" ] && "$CONCORD" demo --data-root "$WORK" --stop >/dev/null || true
}
trap cleanup EXIT

# start_cluster ENABLED: three nodes on 7810/7812/7814 (peers +1) started by the launcher every
# local cluster uses (concord demo: data dirs $WORK/n<i>, logs n<i>.log), namespace bench
# prefilled.
start_cluster() {
  local enabled=$1
  cleanup
  rm -rf "$WORK"; mkdir -p "$WORK"
  CONCORD_ANTI_ENTROPY_ENABLED=$enabled CONCORD_ANTI_ENTROPY_INTERVAL_MS=$AE_INTERVAL_MS \
    CONCORD_ANTI_ENTROPY_PAUSE_MS=0 \
    "$CONCORD" demo --nodes 3 --base-port 7810 --data-root "$WORK" --detach >"$WORK/launcher.out"
  for _ in $(seq 1 300); do
    local up
    up=$(curl -sf 127.0.0.1:7810/v1/cluster | python3 -c \
      'import json,sys; c=json.load(sys.stdin); print(sum(n["state"]=="up" for n in c["nodes"]) if c["moves"]["pending"]==0 else 0)')
    [ "$up" = 3 ] && break
    sleep 0.1
  done
  curl -sf -XPUT 127.0.0.1:7810/v1/namespaces/bench -H 'content-type: application/json' \
    -d '{"replicas":3,"conflicts":"lww"}' >/dev/null
  "$CONCORD" bench --endpoint http://127.0.0.1:7810 --ns bench --keys "$KEYS" --prefill --ops 1 \
    --concurrency "$CONNS" >/dev/null
}

run_row() { # LABEL
  local out
  out=$("$CONCORD" bench --endpoint http://127.0.0.1:7810 --ns bench --keys "$KEYS" \
    --concurrency "$CONNS" --duration "$DURATION" --read-ratio 0.5 --output json)
  local ae
  ae=$(curl -sf 127.0.0.1:7810/v1/cluster | python3 -c \
    'import json,sys; a=json.load(sys.stdin)["anti_entropy"]; print("exchanges=%d repaired=%d" % (a["exchanges"], a["keys_repaired"]))')
  echo "$1 $(echo "$out" | python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; l=t["latency_ms"] or {}; print("RESULT ops_per_s=%.0f p50_ms=%s p99_ms=%s errors=%d" % (t["ops_per_s"], l.get("p50"), l.get("p99"), t["errors"]))') $ae"
}

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $CONCORD, $ROUNDS rounds of $DURATION, $CONNS connections, $KEYS keys"
for round in $(seq 1 "$ROUNDS"); do
  order=(true false); [ $((round % 2)) -eq 0 ] && order=(false true)
  for enabled in "${order[@]}"; do
    start_cluster "$enabled"
    run_row "round$round ae=$enabled"
  done
done
