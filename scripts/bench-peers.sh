#!/usr/bin/env bash
# Side-by-side benchmark of one Concord node against single-member etcd 3.4 and Redis
# (appendfsync always), driven by wrk with the shared scripts, alternating systems in one run.
#   scripts/bench-peers.sh [ROUNDS=3] [DURATION=20s]
# Needs: apt-get install -y etcd-server etcd-client redis-server redis-tools wrk fio
# and a release build (cargo build --release -p concord).
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-20s}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
CONCORD=${CONCORD:-$ROOT/target/release/concord}
WORK=${WORK:-/tmp/peerbench}
PORT=7700
mkdir -p "$WORK"

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"
echo "== fsync latency"; "$SHARED/fsync.sh" "$WORK/fio"
echo "== loopback"; python3 "$SHARED/tcp_pingpong.py" 20000 64 || true

# One node (HTTP on PORT, peers on PORT+1) from the launcher every local cluster uses
# (concord demo: data dir $WORK/concord/n1, log n1.log, pid n1.pid); it returns once the node is up.
start_concord() {
  rm -rf "$WORK/concord"; mkdir -p "$WORK/concord"
  "$CONCORD" demo --nodes 1 --base-port $PORT --data-root "$WORK/concord" --detach \
    >"$WORK/concord/launcher.out"
  curl -sf -XPUT localhost:$PORT/v1/namespaces/bench -H 'content-type: application/json' \
    -d '{"conflicts":"lww"}' >/dev/null
  wrk -t2 -c64 -d15s -s "$ROOT/scripts/bench/prefill.lua" http://127.0.0.1:$PORT -- bench 100000 128 >/dev/null
}
stop_concord() {
  local pid; pid=$(cat "$WORK/concord/n1.pid")
  echo "concord RSS after run: $(ps -o rss= -p "$pid" | awk '{printf "%.1f MiB", $1/1024}')"
  "$CONCORD" demo --data-root "$WORK/concord" --stop >/dev/null
}
run_wrk() { # label url script args...
  local label=$1 url=$2 script=$3; shift 3
  local out; out=$(wrk -t2 -c64 -d"$DURATION" --timeout 5s --latency -s "$script" "$url" -- "$@" | grep '^RESULT')
  echo "$label $out"
}

"$SHARED/etcd-cluster.sh" start "$WORK/etcd" 1 >/dev/null
python3 "$SHARED/etcd_prefill.py" http://127.0.0.1:23791 >/dev/null
start_concord
trap '"$SHARED/etcd-cluster.sh" stop "$WORK/etcd" >/dev/null; "$CONCORD" demo --data-root "$WORK/concord" --stop >/dev/null || true' EXIT

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round"
  run_wrk "etcd-put    " http://127.0.0.1:23791 "$SHARED/etcd.lua" put
  run_wrk "concord-put " http://127.0.0.1:$PORT "$SHARED/concord.lua" put bench
  run_wrk "etcd-get    " http://127.0.0.1:23791 "$SHARED/etcd.lua" range
  run_wrk "concord-get " http://127.0.0.1:$PORT "$SHARED/concord.lua" get bench
done

echo "== concord bench (built-in load generator), same shapes"
"$CONCORD" bench --endpoint http://127.0.0.1:$PORT --ns bench --concurrency 64 --duration "$DURATION" \
  --keys 100000 --value-size 128 --read-ratio 0 || echo "concord bench failed"
"$CONCORD" bench --endpoint http://127.0.0.1:$PORT --ns bench --concurrency 64 --duration "$DURATION" \
  --keys 100000 --value-size 128 --read-ratio 1 || echo "concord bench failed"
curl -s localhost:$PORT/metrics | grep -E '^concord_storage_commit_(duration_seconds|batch_updates)_(sum|count)'
stop_concord
"$SHARED/etcd-cluster.sh" stop "$WORK/etcd" >/dev/null

echo "== redis appendfsync always"
"$SHARED/redis.sh" start always "$WORK/redis" >/dev/null
redis-benchmark -h 127.0.0.1 -p 26379 -t set,get -n 300000 -c 50 -d 128 -r 100000 -q --csv
"$SHARED/redis.sh" stop "$WORK/redis" >/dev/null
trap - EXIT
