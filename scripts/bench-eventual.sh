#!/usr/bin/env bash
# Side-by-side benchmark of eventual namespaces (issue 4, "Speed"): a 3-node Concord cluster on
# loopback against a 3-member etcd 3.4, alternating the systems round by round in one run.
#   scripts/bench-eventual.sh [ROUNDS=3] [DURATION=20s]
# Needs: apt-get install -y etcd-server etcd-client wrk   (fio too, for the fsync line: optional)
# and a release build: CARGO_TARGET_DIR=/tmp/rel-target cargo build --release -p concord
# Env: CONCORD (binary; default /tmp/rel-target/release/concord, else target/release/concord),
#      WORK (default /tmp/eventualbench; its concord/ and etcd/ are wiped at start), SHARED (default ../shared/bench),
#      CONNS (64), KEYS (100000), PORT (7710: node i serves HTTP on PORT+2(i-1), peers on +1).
# Nodes are started, restarted and stopped by the launcher every local cluster uses:
#   concord demo --base-port PORT --data-root WORK/concord --detach | --only I | --stop
# (data dir WORK/concord/n<i>, log n<i>.log, stdout n<i>.out, pid n<i>.pid).
#
# Load: 128-byte values, KEYS keys prefilled in both systems, CONNS connections in all.
# Concord: nodes n1..n3, `sync` durability, namespace `bench` with N=3, R=W=2 (quorum), lww.
# Rows of each round; every row prints `LABEL RESULT rps=.. p50_ms=.. p99_ms=.. ...`:
#   etcd-put, etcd-range  ../shared/bench/etcd.lua put / range (linearizable)
#   concord-mix           ../shared/bench/concord.lua mix: 50/50 GET and blind PUT, R=W=2
#   concord-mix-strict    the same with ?strict=true on the PUTs     (scripts/bench/mix-params.lua)
#   concord-mix-r1w1      the same with ?r=1 on GETs and ?w=1 on PUTs (scripts/bench/mix-params.lua)
#   concord-bench         `concord bench`, read ratio 0.5, CONNS connections to n1 only
#   concord-mix-1down     one node (not the metadata leader) SIGKILLed and detected down first;
#                         concord.lua mix over the two live nodes; afterwards the hints each live
#                         node holds, then the node is restarted and the hints drain.
# wrk rows run one single-threaded wrk per node (per etcd member), in parallel, CONNS split
# evenly (21/21/22); a row's rps and counts are the sums over them, each latency percentile is
# the WORST of them, and `per_node_rps` lists the parts. etcd gets the same spread (its followers
# forward puts and ReadIndex to the leader, as with a client balancing over endpoints).
# Rows alternate between the systems, their order is reversed every other round (the kill row
# stays last), so drift on this shared machine hits all alike: compare ratios within the run.
# Note: with 3 nodes and N=3 every node is a replica of every key, so there is no fallback node:
# in the 1down row W=2 is met by the two live replicas and the coordinator keeps the dead one's
# hints itself (replayed after the restart). For the same reason, with all three nodes up there
# is no fallback for strict=true to exclude: that row measures the flag's overhead only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-20s}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
if [ -z "${CONCORD:-}" ]; then
  CONCORD=/tmp/rel-target/release/concord
  [ -x "$CONCORD" ] || CONCORD=$ROOT/target/release/concord
fi
WORK=${WORK:-/tmp/eventualbench}
CONNS=${CONNS:-64}
KEYS=${KEYS:-100000}
PORT=${PORT:-7710}
VALUE=128
NS=bench
NS_CONFIG='{"replicas":3,"read_quorum":"quorum","write_quorum":"quorum","conflicts":"lww"}'
MIX_PARAMS=$ROOT/scripts/bench/mix-params.lua
ETCD_URLS=(http://127.0.0.1:23791 http://127.0.0.1:23792 http://127.0.0.1:23793)

missing=""
for tool in wrk etcd etcdctl curl python3; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  echo "missing:$missing; install with: apt-get install -y etcd-server etcd-client wrk" >&2; exit 2
fi
if [ ! -x "$CONCORD" ]; then
  echo "no concord binary at $CONCORD; build: CARGO_TARGET_DIR=/tmp/rel-target cargo build --release -p concord" >&2
  exit 2
fi

# --- processes and cleanup --------------------------------------------------------------------
WRK_PIDS=()
ETCD_STARTED=0
http_port() { echo $((PORT + 2 * ($1 - 1))); }   # node index -> HTTP port (the launcher's layout)
url() { echo "http://127.0.0.1:$(http_port "$1")"; }
launch() { # ARGS...: the launcher on this run's cluster; nodes use `sync` durability
  CONCORD_STORAGE_DURABILITY=sync "$CONCORD" demo --nodes 3 --base-port "$PORT" \
    --data-root "$WORK/concord" "$@" >>"$WORK/concord/launcher.out"
}
start_node() { launch --detach --only "$1"; } # INDEX: (re)starts n<INDEX>, waits until it is up
cleanup() {
  set +e
  for pid in "${WRK_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  [ -d "$WORK/concord" ] && "$CONCORD" demo --data-root "$WORK/concord" --stop >/dev/null
  [ "$ETCD_STARTED" = 1 ] && "$SHARED/etcd-cluster.sh" stop "$WORK/etcd" >/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS WHAT CMD...: retries CMD every 0.2 s; prints the time taken, fails on timeout.
wait_for() {
  local secs=$1 what=$2; shift 2
  local t0=$SECONDS err=""
  while [ $((SECONDS - t0)) -lt "$secs" ]; do
    if err=$("$@" 2>&1); then echo "   $what after $((SECONDS - t0)) s"; return 0; fi
    sleep 0.2
  done
  echo "!! $what: not reached after $secs s: $err" >&2; return 1
}
ready() { curl -sf "$(url "$1")/ready" >/dev/null; }
# settled INDEX...: every listed node sees every listed node up, a leader, and no pending moves.
settled() {
  python3 - "$@" <<PY
import json, sys, urllib.request
addrs = {"127.0.0.1:%d" % ($PORT + 2 * (int(i) - 1)): i for i in sys.argv[1:]}
for addr in addrs:
    v = json.load(urllib.request.urlopen(f"http://{addr}/v1/cluster", timeout=2))
    states = {n["http_addr"]: n["state"] for n in v["nodes"]}
    if not v.get("leader") or any(states.get(a) != "up" for a in addrs) or v["moves"]["pending"]:
        sys.exit(f"{addr}: leader={v.get('leader')!r} states={states} pending={v['moves']['pending']}")
PY
}
# cluster_field INDEX EXPR: evaluates EXPR on n<INDEX>'s /v1/cluster view (bound as v).
cluster_field() {
  curl -sf "$(url "$1")/v1/cluster" | python3 -c "import json,sys; v=json.load(sys.stdin); print($2)"
}
seen_down() { # VICTIM INDEX...: every listed node sees n<VICTIM> down
  local victim=$1 i; shift
  for i in "$@"; do
    [ "$(cluster_field "$i" "{n['id']: n['state'] for n in v['nodes']}.get('n$victim')")" = down ] || return 1
  done
}
# Each node's view shows the hints that node holds, per target.
hints() { cluster_field "$1" "' '.join(f\"{n['id']}={n['hints_pending']}\" for n in v['nodes'])"; }
no_hints() { # INDEX...: none of the listed nodes holds a hint
  local i
  for i in "$@"; do [ "$(cluster_field "$i" "sum(n['hints_pending'] for n in v['nodes'])")" = 0 ] || return 1; done
}
ns_visible() { curl -sf "$(url "$1")/v1/namespaces/$NS" >/dev/null; }

# --- rows -------------------------------------------------------------------------------------
# spread LABEL SCRIPT "ARGS" URL...: one `wrk -t1` per URL in parallel, CONNS split evenly; one
# combined RESULT line (sums; latencies are the worst part's).
spread() {
  local label=$1 script=$2 args=$3; shift 3
  local n=$# k=0 conns outs=() u argv
  eval "argv=($args)" # ARGS is split like a command line, so '' stays an (empty) argument
  WRK_PIDS=()
  for u in "$@"; do
    conns=$((CONNS / n + (k >= n - CONNS % n ? 1 : 0)))
    wrk -t1 -c"$conns" -d"$DURATION" --timeout 5s --latency -s "$script" "$u" -- "${argv[@]}" \
      >"$WORK/wrk.$k.out" 2>&1 &
    WRK_PIDS+=($!); outs+=("$WORK/wrk.$k.out"); k=$((k + 1))
  done
  for pid in "${WRK_PIDS[@]}"; do wait "$pid" || true; done
  WRK_PIDS=()
  if [ "$(cat "${outs[@]}" | grep -c '^RESULT')" -ne "$n" ]; then
    printf '%-20s FAILED: %s\n' "$label" "$(tail -q -n 3 "${outs[@]}" | tr '\n' ' ')"; return 0
  fi
  grep -h '^RESULT' "${outs[@]}" | awk -v label="$label" -v conns="$CONNS" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); k = kv[1]; x = kv[2] + 0
        if (k ~ /_ms$/) { if (!(k in v) || x > v[k]) v[k] = x } else v[k] += x
        if (NR == 1) order[i] = k }
      parts = parts (NR > 1 ? "/" : "") kv_rps($0) }
    function kv_rps(line) { match(line, /rps=[0-9]+/); return substr(line, RSTART + 4, RLENGTH - 4) }
    END { out = sprintf("%-20s RESULT", label)
          for (i = 2; i in order; i++) {
            k = order[i]; out = out " " k "=" (k ~ /_ms$/ ? sprintf("%.3f", v[k]) : sprintf("%d", v[k])) }
          print out " conns=" conns " per_node_rps=" parts }'
}
concord_bench() { # LABEL: concord bench against n1, same shape
  local label=$1 rc=0
  "$CONCORD" bench --endpoint "$(url 1)" --ns "$NS" --concurrency "$CONNS" --duration "$DURATION" \
    --keys "$KEYS" --value-size "$VALUE" --read-ratio 0.5 --output json \
    >"$WORK/cbench.json" 2>"$WORK/cbench.stderr" || rc=$?
  python3 - "$WORK/cbench.json" "$label" "$rc" <<'PY' || printf '%-20s FAILED (exit %s): %s\n' "$label" "$rc" "$(tail -n 3 "$WORK/cbench.stderr" | tr '\n' ' ')"
import json, sys
r = json.load(open(sys.argv[1]))
t, g, p = r["total"], r["get"], r["put"]
l = t["latency_ms"] or {}
ms = lambda op, q: (op["latency_ms"] or {}).get(q)
kinds = ",".join(f"{k}:{v}" for k, v in sorted(t["errors_by_kind"].items())) or "-"
print(f"{sys.argv[2]:<20} RESULT rps={t['ops_per_s']:.0f} p50_ms={l.get('p50')} p90_ms={l.get('p90')} "
      f"p99_ms={l.get('p99')} p999_ms={l.get('p999')} max_ms={l.get('max')} requests={t['ops']} "
      f"errors={t['errors']} get_p99_ms={ms(g, 'p99')} put_p99_ms={ms(p, 'p99')} "
      f"not_found={g['not_found']} siblings={g['siblings']} error_kinds={kinds} exit={sys.argv[3]}")
PY
}
row() { # NAME: one row of a round
  case $1 in
    etcd-put)           spread etcd-put "$SHARED/etcd.lua" "put $KEYS $VALUE" "${ETCD_URLS[@]}" ;;
    etcd-range)         spread etcd-range "$SHARED/etcd.lua" "range $KEYS $VALUE" "${ETCD_URLS[@]}" ;;
    concord-mix)        spread concord-mix "$SHARED/concord.lua" "mix $NS $KEYS $VALUE" "$(url 1)" "$(url 2)" "$(url 3)" ;;
    concord-mix-strict) spread concord-mix-strict "$MIX_PARAMS" "$NS $KEYS $VALUE '' '?strict=true'" "$(url 1)" "$(url 2)" "$(url 3)" ;;
    concord-mix-r1w1)   spread concord-mix-r1w1 "$MIX_PARAMS" "$NS $KEYS $VALUE '?r=1' '?w=1'" "$(url 1)" "$(url 2)" "$(url 3)" ;;
    concord-bench)      concord_bench concord-bench ;;
  esac
}
kill_row() { # SIGKILL a non-leader node, measure over the two live nodes, restart it, settle
  local leader victim live=() i pid
  leader=$(cluster_field 1 "v['leader']")
  victim=3; [ "$leader" = n3 ] && victim=2
  for i in 1 2 3; do [ "$i" != "$victim" ] && live+=("$i"); done
  pid=$(cat "$WORK/concord/n$victim.pid")
  kill -9 "$pid"  # not this shell's child (the launcher started it): wait for its ports, bounded
  for _ in $(seq 1 100); do
    case $(ps -o stat= -p "$pid" | tr -d ' ') in '' | Z*) break ;; esac  # gone, or exited unreaped
    sleep 0.05
  done
  echo "   SIGKILLed n$victim (metadata leader $leader)"
  wait_for 60 "n$victim seen down by n${live[0]} and n${live[1]}" seen_down "$victim" "${live[@]}" || true
  spread concord-mix-1down "$SHARED/concord.lua" "mix $NS $KEYS $VALUE" "$(url "${live[0]}")" "$(url "${live[1]}")"
  for i in "${live[@]}"; do echo "   hints n$i holds, per target: $(hints "$i")"; done
  start_node "$victim"
  wait_for 60 "n$victim ready again" ready "$victim"
  wait_for 120 "cluster settled" settled 1 2 3 || true
  wait_for 120 "hints drained" no_hints 1 2 3 || for i in "${live[@]}"; do echo "   n$i still holds: $(hints "$i")"; done
}

# --- machine facts ----------------------------------------------------------------------------
rm -rf "$WORK/concord" "$WORK/etcd"; mkdir -p "$WORK/concord"
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $("$CONCORD" --version 2>&1 | head -1) ($CONCORD, built $(date -r "$CONCORD" '+%F %T'))"
if [ -n "$(find "$ROOT/crates" -name '*.rs' -newer "$CONCORD" -print -quit)" ]; then
  echo "!! the concord binary is older than some sources under crates/ (rebuild for current figures)"
fi
echo "== $(etcd --version | head -1); $(wrk -v 2>&1 | head -1)"
echo "== rows: ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS KEYS=$KEYS VALUE=${VALUE}B"
if command -v fio >/dev/null; then echo "== fsync latency"; "$SHARED/fsync.sh" "$WORK/fio"
else echo "== fsync latency: fio not installed, skipped"; fi
echo "== loopback"; python3 "$SHARED/tcp_pingpong.py" 20000 64 || true

# --- start and prefill both systems -----------------------------------------------------------
echo "== etcd: 3 members"
ETCD_STARTED=1
"$SHARED/etcd-cluster.sh" start "$WORK/etcd" 3
python3 "$SHARED/etcd_prefill.py" "${ETCD_URLS[0]}" "$KEYS" "$VALUE"

echo "== concord: 3 nodes"
launch --detach --print-endpoints json
wait_for 120 "cluster settled (3 up, no pending moves)" settled 1 2 3
curl -sf -XPUT "$(url 1)/v1/namespaces/$NS" -H 'content-type: application/json' -d "$NS_CONFIG" >/dev/null
for i in 1 2 3; do wait_for 30 "namespace $NS visible on n$i" ns_visible "$i"; done
echo "   $(curl -sf "$(url 1)/v1/namespaces/$NS")"
"$CONCORD" bench --endpoint "$(url 1)" --ns "$NS" --concurrency "$CONNS" --keys "$KEYS" \
  --value-size "$VALUE" --prefill --ops 1 --read-ratio 1 --output json >"$WORK/prefill.json" 2>"$WORK/prefill.stderr"
python3 - "$WORK/prefill.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["prefill"]
print(f"   prefilled {p['ops']} keys in {p['elapsed_s']} s ({p['ops_per_s']:.0f}/s), errors {p['errors']}")
sys.exit(1 if p["errors"] else 0)
PY
# The per-request parameters the strict and R=W=1 rows use must be accepted (not a 400).
probe() { # METHOD QUERY
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "$1" ${2:+--data-binary} ${2:+probe} "$(url 2)/v1/kv/$NS/probe$3")
  [ "${code:0:1}" = 2 ] || echo "!! $1 $3 answered HTTP $code (the row using it will show err_status)"
}
probe PUT body '?strict=true'; probe PUT body '?w=1'; probe GET '' '?r=1'

# --- rounds -----------------------------------------------------------------------------------
ROWS=(etcd-put concord-mix etcd-range concord-mix-strict concord-bench concord-mix-r1w1)
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round (load $(cut -d' ' -f1-3 /proc/loadavg))"
  order=("${ROWS[@]}")
  if [ $((round % 2)) = 0 ]; then order=(); for r in "${ROWS[@]}"; do order=("$r" "${order[@]}"); done; fi
  for r in "${order[@]}"; do row "$r"; done
  kill_row
done

# --- after ------------------------------------------------------------------------------------
echo "== after the run"
for i in 1 2 3; do
  pid=$(cat "$WORK/concord/n$i.pid")
  echo "   n$i RSS $(ps -o rss= -p "$pid" | awk '{printf "%.1f MiB", $1/1024}'), data $(du -sh "$WORK/concord/n$i" | cut -f1)"
done
for i in 1 2 3; do
  curl -s "$(url "$i")/metrics" | sed "s/^/   n$i /" \
    | grep -E '^ +n. concord_([a-z_]*(hint|repair)|storage_commit_(duration_seconds|batch_updates)_(sum|count))' || true
done
cleanup
trap - EXIT
