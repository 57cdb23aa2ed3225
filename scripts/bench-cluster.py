#!/usr/bin/env python3
"""Cluster benchmarks for Concord: failure detection, false suspicions, handoff, metadata commits.

Starts real `concord server` processes on loopback (a free block of ports, temporary data dirs)
through the launcher every local cluster uses (`concord demo --only I --exec`: node nI's id, data
dir, log, ports and flags come from it, and the process it execs is the server), drives them
over HTTP and with `concord bench`, and prints a summary plus one JSON line of figures per
subcommand (the last line of its output; `--json-out FILE` appends it to FILE too).

  scripts/bench-cluster.py detect --kills 20      # SIGKILL a non-leader; time until down on all others
  scripts/bench-cluster.py suspicion --minutes 10  # 5 nodes under bench load: any suspect/down at all?
  scripts/bench-cluster.py handoff                 # 300 MB on 3 nodes, a 4th joins under load
  scripts/bench-cluster.py meta --ops 50           # namespace creation via follower and leader; join commit
  scripts/bench-cluster.py all                     # the four above, suspicion last

The binary is `--binary`, else env CONCORD, else /tmp/rel-target/release/concord. Python 3.11
standard library only. Work dirs are removed at the end unless `--keep` is given or a scenario
fails (then the dir is kept and its path printed, with log tails).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

DEFAULT_BINARY = "/tmp/rel-target/release/concord"
LIVENESS_LINE = re.compile(r"node (\S+) is (suspect|down|up|alive)\b")
BAD_LIVENESS = re.compile(r"node \S+ is (suspect|down)\b|declared us down")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------------------------
# Small helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def now() -> float:
    return time.monotonic()


def port_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be bound for both TCP and UDP (SWIM uses the peer port's UDP)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


# Nodes a cluster of this script can have: the launcher gives node i ports base+2(i-1) and +1.
MAX_NODES = 16


def free_base_port() -> int:
    """A base port whose block of 2 * MAX_NODES ports is free now, below the kernel's ephemeral
    range (32768 and up) so that outgoing connections do not take them meanwhile."""
    for _ in range(200):
        base = 20000 + 2 * random.randrange(6000)
        if all(port_free(base + k) for k in range(2 * MAX_NODES)):
            return base
    raise RuntimeError("no free block of ports found")


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, q in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "min": round(min(values), 3),
        "median": round(statistics.median(values), 3),
        "p90": round(pct(values, 90), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def machine() -> dict:
    info = {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        with open("/proc/meminfo") as f:
            info["mem_total_kb"] = int(f.readline().split()[1])
    except OSError:
        pass
    return info


class CpuSampler(threading.Thread):
    """Samples /proc every `period` s: CPU used by this script's process tree (nodes, benches)
    and by every other process on the machine, which the figures cannot control for."""

    def __init__(self, period: float = 2.0):
        super().__init__(daemon=True)
        self.period = period
        self.stop_event = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.ours = 0.0
        self.foreign = 0.0
        self.foreign_max = 0.0
        self.by_comm: dict[str, float] = {}
        self.wall = 0.0

    @staticmethod
    def snapshot() -> dict[int, tuple[int, str, int]]:
        procs = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    raw = f.read().decode(errors="replace")
            except OSError:
                continue
            comm = raw[raw.index("(") + 1: raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2:].split()
            procs[int(entry)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]))
        return procs

    def run(self) -> None:
        me = os.getpid()
        prev, t_prev = self.snapshot(), now()
        while not self.stop_event.wait(self.period):
            cur, t_cur = self.snapshot(), now()
            dt = t_cur - t_prev
            ours = foreign = 0.0
            for pid, (ppid, comm, ticks) in cur.items():
                if pid not in prev or prev[pid][1] != comm:
                    continue
                used = (ticks - prev[pid][2]) / self.tick
                if used <= 0:
                    continue
                ancestor, hops = pid, 0
                while ancestor not in (0, 1, me) and ancestor in cur and hops < 64:
                    ancestor, hops = cur[ancestor][0], hops + 1
                if ancestor == me:
                    ours += used
                else:
                    foreign += used
                    self.by_comm[comm] = self.by_comm.get(comm, 0.0) + used
            self.ours += ours
            self.foreign += foreign
            self.foreign_max = max(self.foreign_max, foreign / dt)
            self.wall += dt
            prev, t_prev = cur, t_cur

    def result(self) -> dict:
        self.stop_event.set()
        self.join()
        wall = max(self.wall, 1e-9)
        top = sorted(self.by_comm.items(), key=lambda kv: -kv[1])[:4]
        return {"ours_cores_avg": round(self.ours / wall, 2),
                "foreign_cores_avg": round(self.foreign / wall, 2),
                "foreign_cores_max_over_2s": round(self.foreign_max, 2),
                "foreign_top": {comm: round(cpu / wall, 2) for comm, cpu in top},
                "sampled_s": round(self.wall, 1)}


class Http:
    """One keep-alive HTTP/1.1 connection to one node; reconnects after any error."""

    def __init__(self, addr: str, timeout: float = 2.0):
        host, port = addr.rsplit(":", 1)
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A keep-alive connection the server closed: retry once on a fresh one.
                self.close()
                if attempt == 1:
                    raise e
            except Exception:
                self.close()
                raise
        raise RuntimeError("unreachable")

    def get_json(self, path: str):
        status, data = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}: {data[:200]!r}")
        return json.loads(data)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


def states_of(view: dict) -> dict[str, str]:
    return {n["id"]: n["state"] for n in view.get("nodes", [])}


# ---------------------------------------------------------------------------------------------
# Nodes and clusters


@dataclass
class Node:
    """Node n<index> of the launcher's layout: data dir <data_root>/n<index>, stderr in
    <data_root>/n<index>.log, stdout in <data_root>/n<index>.out, HTTP on base_port + 2(index-1)."""
    binary: str
    node_id: str
    data_root: str
    base_port: int
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    exit_codes: list = field(default_factory=list)
    # Start with `concord server` flags instead of the launcher: binaries older than the
    # launcher (the `throughput` scenario's --old) take only these.
    direct: bool = False

    @property
    def index(self) -> int:
        return int(self.node_id[1:])

    @property
    def http_port(self) -> int:
        return self.base_port + 2 * (self.index - 1)

    @property
    def peer_port(self) -> int:
        return self.http_port + 1

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def peer_addr(self) -> str:
        return f"127.0.0.1:{self.peer_port}"

    @property
    def data_dir(self) -> str:
        return os.path.join(self.data_root, self.node_id)

    @property
    def stdout_path(self) -> str:
        return os.path.join(self.data_root, f"{self.node_id}.out")

    @property
    def stderr_path(self) -> str:
        return os.path.join(self.data_root, f"{self.node_id}.log")

    def argv(self) -> list[str]:
        """The launcher, which execs the server in place: the process is the node itself."""
        if self.direct:
            argv = [self.binary, "server", "--node-id", self.node_id, "--data-dir", self.data_dir,
                    "--http-addr", self.http_addr, "--peer-addr", self.peer_addr]
            if self.index > 1:
                argv += ["--join", f"127.0.0.1:{self.base_port + 1}"]
            return argv
        return [self.binary, "demo", "--exec", "--only", str(self.index),
                "--base-port", str(self.base_port), "--data-root", self.data_root]

    def spawn(self) -> int:
        """Starts the process (appending to its log files); returns the stdout offset to wait from."""
        offset = os.path.getsize(self.stdout_path) if os.path.exists(self.stdout_path) else 0
        os.makedirs(self.data_root, exist_ok=True)
        out = open(self.stdout_path, "ab")
        self.started_at = now()
        # The server's stderr goes to its log (appended) by the launcher; anything the launcher
        # itself reports before the exec goes there too.
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        out.close()
        err.close()
        return offset

    def wait_listening(self, offset: int, timeout: float = 60.0) -> float:
        """Waits for the 'listening' line after `offset`; returns seconds since spawn."""
        marker = f"concord node {self.node_id} listening".encode()
        deadline = now() + timeout
        while now() < deadline:
            with open(self.stdout_path, "rb") as f:
                f.seek(offset)
                if marker in f.read():
                    return now() - self.started_at
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node_id} exited with {self.proc.returncode} during startup\n"
                                   + self.tail())
            time.sleep(0.01)
        raise RuntimeError(f"{self.node_id} not listening after {timeout} s\n" + self.tail())

    def start(self, timeout: float = 60.0) -> float:
        return self.wait_listening(self.spawn(), timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> float:
        os.kill(self.proc.pid, signal.SIGKILL)
        t = now()
        self.exit_codes.append(self.proc.wait())
        return t

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait; SIGKILL after `timeout`. Returns the exit code (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
            self.exit_codes.append(code)
            return code
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_codes.append("killed-after-sigterm-timeout")
            return None

    def tail(self, lines: int = 25) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                text = ANSI.sub("", f.read().decode(errors="replace")).splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {self.node_id}| {line}" for line in text[-lines:])

    def liveness_lines(self) -> list[str]:
        try:
            with open(self.stderr_path, "rb") as f:
                text = ANSI.sub("", f.read().decode(errors="replace")).splitlines()
        except OSError:
            return []
        return [line for line in text if LIVENESS_LINE.search(line) or "declared us down" in line]


class Cluster:
    def __init__(self, binary: str, workdir: str, direct: bool = False):
        self.binary = binary
        self.workdir = workdir
        self.direct = direct
        self.nodes: list[Node] = []
        self.clients: dict[str, Http] = {}
        # Every node's ports come from this base (the launcher's layout).
        self.base_port = free_base_port()
        # Data dirs made outside the work dir (`data_root`), removed with it.
        self.outside_dirs: list[str] = []

    def new_node(self, node_id: str, join: bool = True, data_root: str | None = None) -> Node:
        """A node (not started yet) that joins through n1 unless it is n1; its files are in the
        work dir, or in a new dir in `data_root`."""
        assert join, "every node but n1 joins through n1 (the launcher's layout)"
        assert 1 <= int(node_id[1:]) <= MAX_NODES, f"{node_id}: the port block holds n1..n{MAX_NODES}"
        os.makedirs(self.workdir, exist_ok=True)
        root = self.workdir
        if data_root:
            root = tempfile.mkdtemp(prefix=f"concord-{node_id}-", dir=data_root)
            self.outside_dirs.append(root)
        node = Node(self.binary, node_id, root, self.base_port, direct=self.direct)
        self.nodes.append(node)
        self.clients[node_id] = Http(node.http_addr)
        return node

    def start(self, count: int, timeout: float = 60.0) -> dict:
        """Founds the cluster with n1 and joins n2..nN through n1, one after another."""
        times = {}
        for i in range(1, count + 1):
            node = self.new_node(f"n{i}")
            times[node.node_id] = round(node.start(timeout), 3)
        settle = self.wait_settled(timeout)
        return {"listening_s": times, "settled_s": round(settle, 3)}

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    def view(self, node_id: str) -> dict:
        return self.clients[node_id].get_json("/v1/cluster")

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def wait_settled(self, timeout: float = 60.0) -> float:
        """Until every live node sees every live node `up`, a leader, and no pending moves."""
        t0 = now()
        deadline = t0 + timeout
        last = None
        while now() < deadline:
            ok = True
            ids = {n.node_id for n in self.live()}
            for n in self.live():
                try:
                    v = self.view(n.node_id)
                except Exception as e:  # noqa: BLE001
                    ok, last = False, f"{n.node_id}: {e}"
                    break
                st = states_of(v)
                if not v.get("leader") or any(st.get(i) != "up" for i in ids) \
                        or v["moves"]["pending"] != 0:
                    ok, last = False, f"{n.node_id} sees leader={v.get('leader')!r} {st} pending={v['moves']['pending']}"
                    break
            if ok:
                return now() - t0
            time.sleep(0.05)
        raise RuntimeError(f"cluster not settled after {timeout} s: {last}\n" + self.tails())

    def leader(self) -> str:
        for n in self.live():
            try:
                leader = self.view(n.node_id).get("leader")
                if leader:
                    return leader
            except Exception:  # noqa: BLE001
                pass
        raise RuntimeError("no node knows a metadata leader")

    def tails(self, lines: int = 15) -> str:
        return "\n".join(n.tail(lines) for n in self.nodes)

    def stop(self) -> dict:
        codes = {}
        for n in self.nodes:
            if n.alive():
                codes[n.node_id] = n.stop()
        for c in self.clients.values():
            c.close()
        return codes

    def kill_all(self) -> None:
        for n in self.nodes:
            if n.alive():
                n.proc.kill()
                n.proc.wait()


# ---------------------------------------------------------------------------------------------
# concord bench


def bench_argv(binary: str, endpoint: str, **opts) -> list[str]:
    argv = [binary, "bench", "--endpoint", f"http://{endpoint}", "--output", "json"]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


def start_bench(binary: str, endpoint: str, workdir: str, name: str, **opts):
    argv = bench_argv(binary, endpoint, **opts)
    out = open(os.path.join(workdir, f"bench-{name}.json"), "wb")
    err = open(os.path.join(workdir, f"bench-{name}.stderr"), "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    out.close()
    err.close()
    return proc, argv


def finish_bench(proc, workdir: str, name: str, timeout: float | None = None) -> dict:
    code = proc.wait(timeout)
    with open(os.path.join(workdir, f"bench-{name}.json"), "rb") as f:
        out = f.read().decode(errors="replace")
    with open(os.path.join(workdir, f"bench-{name}.stderr"), "rb") as f:
        err = f.read().decode(errors="replace")
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"bench {name} exited {code} without a JSON report:\n{out[-2000:]}\n"
                           f"{err[-2000:]}")
    report["_exit_code"] = code
    # The progress bar uses carriage returns; keep only the last, non-progress lines.
    notes = [l for l in err.replace("\r", "\n").splitlines()
             if l.strip() and not re.search(r"\d+%|ops/s|\[[#=>. -]+\]", l)]
    report["_stderr_notes"] = notes[-10:]
    return report


def run_bench(binary: str, endpoint: str, workdir: str, name: str, **opts) -> dict:
    proc, argv = start_bench(binary, endpoint, workdir, name, **opts)
    log("  $ " + " ".join(argv))
    report = finish_bench(proc, workdir, name)
    report["_argv"] = argv
    return report


def bench_figures(report: dict) -> dict:
    def phase(p):
        if not p:
            return None
        lat = p.get("latency_ms") or {}
        return {"ops": p["ops"], "ops_per_s": p["ops_per_s"], "errors": p["errors"],
                "errors_by_kind": p["errors_by_kind"], "elapsed_s": p["elapsed_s"],
                "interrupted": p.get("interrupted"),
                "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"), "p99_ms": lat.get("p99"),
                "p999_ms": lat.get("p999"), "max_ms": lat.get("max")}

    return {"total": phase(report.get("total")), "get": phase(report.get("get")),
            "put": phase(report.get("put")), "prefill": phase(report.get("prefill")),
            "exit_code": report.get("_exit_code"), "notes": report.get("_stderr_notes")}


def bench_line(label: str, fig: dict) -> str:
    t = fig["total"]
    g, p = fig["get"], fig["put"]
    return (f"{label}: {t['ops_per_s']:.0f} ops/s over {t['elapsed_s']:.1f} s, errors {t['errors']}, "
            f"all p50/p99/max {t['p50_ms']}/{t['p99_ms']}/{t['max_ms']} ms; "
            f"get p99 {g['p99_ms']} ms, put p99 {p['p99_ms']} ms")


# ---------------------------------------------------------------------------------------------
# Scenarios


def scenario_detect(args, cluster: Cluster) -> dict:
    started = cluster.start(5)
    log(f"5 nodes up: {started}")
    kills = []
    rotation = 0
    for k in range(args.kills):
        leader = cluster.leader()
        ids = [n.node_id for n in cluster.nodes]
        for j in range(len(ids)):
            candidate = ids[(rotation + j) % len(ids)]
            if candidate != leader:
                break
        rotation = ids.index(candidate) + 1
        victim = cluster.node(candidate)
        observers = [n for n in cluster.nodes if n is not victim]

        go = threading.Event()
        t_kill = [0.0]
        results: dict[str, dict] = {}

        def observe(obs: Node):
            client = Http(obs.http_addr, timeout=1.0)
            rec = {"suspect_s": None, "down_s": None, "polls": 0, "poll_errors": 0}
            try:
                client.get_json("/v1/cluster")  # warm the connection
            except Exception:  # noqa: BLE001
                pass
            go.wait()
            deadline = t_kill[0] + args.detect_deadline
            while now() < deadline:
                t_send = now()
                try:
                    state = states_of(client.get_json("/v1/cluster")).get(victim.node_id)
                except Exception:  # noqa: BLE001
                    rec["poll_errors"] += 1
                    state = None
                t_recv = now()
                rec["polls"] += 1
                if state == "suspect" and rec["suspect_s"] is None:
                    rec["suspect_s"] = t_recv - t_kill[0]
                if state == "down":
                    rec["down_s"] = t_recv - t_kill[0]
                    if rec["suspect_s"] is None:
                        rec["suspect_s"] = rec["down_s"]
                    break
                time.sleep(max(0.0, args.poll_ms / 1000 - (now() - t_send)))
            client.close()
            results[obs.node_id] = rec

        threads = [threading.Thread(target=observe, args=(o,), daemon=True) for o in observers]
        for t in threads:
            t.start()
        time.sleep(0.2)
        t_kill[0] = victim.kill9()
        go.set()
        for t in threads:
            t.join()
        downs = [r["down_s"] for r in results.values()]
        figure = max(downs) if all(d is not None for d in downs) else None

        # Restart with the same flags, ports and data dir; wait until everyone sees it up.
        victim.restarts += 1
        t_restart = now()
        try:
            listening = victim.start(timeout=args.recover_deadline)
        except RuntimeError as e:
            log(f"kill {k + 1}: restart of {victim.node_id} failed: {e}")
            raise
        up_s = None
        deadline = t_restart + args.recover_deadline
        while now() < deadline:
            try:
                if all(states_of(cluster.view(o.node_id)).get(victim.node_id) == "up"
                       for o in cluster.nodes):
                    up_s = now() - t_restart
                    break
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.05)
        rec = {
            "kill": k + 1, "victim": victim.node_id, "leader": leader,
            "down_on_all_s": round(figure, 3) if figure is not None else None,
            "per_observer": {o: {kk: (round(v, 3) if isinstance(v, float) else v)
                                 for kk, v in r.items()} for o, r in sorted(results.items())},
            "restart_listening_s": round(listening, 3),
            "up_everywhere_after_restart_s": round(up_s, 3) if up_s is not None else None,
        }
        kills.append(rec)
        first_suspect = min((r["suspect_s"] for r in results.values() if r["suspect_s"] is not None),
                            default=None)
        per_node = ", ".join(f"{o}={r['down_s'] and round(r['down_s'], 3)}" for o, r in sorted(results.items()))
        log(f"kill {k + 1:2d}/{args.kills}: {victim.node_id} (leader {leader}) down on all 4 after "
            f"{rec['down_on_all_s']} s (first suspect {round(first_suspect, 3) if first_suspect else None} s; "
            f"per node {per_node}); "
            f"restarted, listening {rec['restart_listening_s']} s, up everywhere {rec['up_everywhere_after_restart_s']} s")
        if up_s is None:
            raise RuntimeError(f"{victim.node_id} not up everywhere {args.recover_deadline} s after restart\n"
                               + cluster.tails())
        cluster.wait_settled(args.recover_deadline)
        time.sleep(args.settle)

    figures = [r["down_on_all_s"] for r in kills if r["down_on_all_s"] is not None]
    missed = [r["kill"] for r in kills if r["down_on_all_s"] is None]
    ups = [r["up_everywhere_after_restart_s"] for r in kills]
    result = {
        "scenario": "detect", "kills": args.kills, "poll_ms": args.poll_ms,
        "down_on_all": summary(figures), "missed_within_deadline": missed,
        "up_after_restart": summary(ups),
        "target": {"median_le_s": 2.0, "max_le_s": 4.0,
                   "met": bool(figures) and not missed and statistics.median(figures) <= 2.0
                   and max(figures) <= 4.0},
        "per_kill": kills, "cluster_start": started,
    }
    print()
    print(f"DETECT: {len(figures)}/{args.kills} kills detected; time until down on all 4 others: "
          f"median {result['down_on_all'].get('median')} s, p90 {result['down_on_all'].get('p90')} s, "
          f"max {result['down_on_all'].get('max')} s (target median <= 2 s, max <= 4 s: "
          f"{'met' if result['target']['met'] else 'NOT met'}); restart to up everywhere: "
          f"median {result['up_after_restart'].get('median')} s, max {result['up_after_restart'].get('max')} s")
    print("  per kill (s): " + ", ".join(f"{r['victim']}:{r['down_on_all_s']}" for r in kills))
    return result


def scenario_suspicion(args, cluster: Cluster) -> dict:
    started = cluster.start(5)
    log(f"5 nodes up: {started}")
    n1 = cluster.nodes[0]
    stop = threading.Event()
    obs = {"rounds": 0, "polls": 0, "poll_errors": 0, "not_up": 0, "not_up_samples": [],
           "poll_error_samples": [], "slow_polls_over_1s": 0, "max_poll_ms": 0.0}
    t_start = now()

    def poller():
        clients = {n.node_id: Http(n.http_addr, timeout=2.0) for n in cluster.nodes}
        ids = [n.node_id for n in cluster.nodes]
        while not stop.is_set():
            t_round = now()
            obs["rounds"] += 1
            for oid, client in clients.items():
                t0 = now()
                try:
                    st = states_of(client.get_json("/v1/cluster"))
                except Exception as e:  # noqa: BLE001
                    obs["poll_errors"] += 1
                    if len(obs["poll_error_samples"]) < 20:
                        obs["poll_error_samples"].append(
                            {"t_s": round(now() - t_start, 2), "observer": oid, "error": str(e)[:200]})
                    continue
                dt = (now() - t0) * 1000
                obs["max_poll_ms"] = max(obs["max_poll_ms"], dt)
                if dt > 1000:
                    obs["slow_polls_over_1s"] += 1
                obs["polls"] += 1
                for sid in ids:
                    if st.get(sid) != "up":
                        obs["not_up"] += 1
                        if len(obs["not_up_samples"]) < 50:
                            obs["not_up_samples"].append({"t_s": round(now() - t_start, 2),
                                                          "observer": oid, "node": sid,
                                                          "state": st.get(sid)})
            stop.wait(max(0.0, 0.2 - (now() - t_round)))
        for c in clients.values():
            c.close()

    lines_at_load_start = {n.node_id: len([l for l in n.liveness_lines() if BAD_LIVENESS.search(l)])
                           for n in cluster.nodes}
    th = threading.Thread(target=poller, daemon=True)
    th.start()
    prefill = None
    if args.prefill:
        log("prefill (not part of the measured period, but polled too)")
        prefill = run_bench(args.binary, n1.http_addr, cluster.workdir, "suspicion-prefill",
                            concurrency=32, keys=args.keys, value_size=128, read_ratio=0,
                            prefill=True, ops=1)
    t_measure = now()
    obs_before = {"polls": obs["polls"], "not_up": obs["not_up"], "poll_errors": obs["poll_errors"]}
    log(f"bench against n1 for {args.minutes} min")
    report = run_bench(args.binary, n1.http_addr, cluster.workdir, "suspicion",
                       concurrency=32, duration=f"{int(args.minutes * 60)}s", keys=args.keys,
                       value_size=128, read_ratio=0.5)
    measured_s = now() - t_measure
    stop.set()
    th.join()
    lines = {n.node_id: n.liveness_lines() for n in cluster.nodes}
    bad_lines = {nid: [l for l in ls if BAD_LIVENESS.search(l)] for nid, ls in lines.items()}
    fig = bench_figures(report)
    result = {
        "scenario": "suspicion", "minutes": args.minutes, "measured_wall_s": round(measured_s, 1),
        "poll_interval_ms": 200,
        "observations": {k: (round(v, 1) if isinstance(v, float) else v) for k, v in obs.items()},
        "observations_before_measured_bench": obs_before,
        "log_suspect_or_down_lines": {nid: len(ls) for nid, ls in bad_lines.items()},
        "log_suspect_or_down_total": sum(len(ls) for ls in bad_lines.values()),
        "log_suspect_or_down_before_load": lines_at_load_start,
        "log_samples": [l for ls in bad_lines.values() for l in ls][:30],
        "bench": fig, "bench_argv": report["_argv"],
        "prefill": bench_figures(prefill) if prefill else None,
        "target": {"not_up_observations": 0, "log_lines": 0,
                   "met": obs["not_up"] == 0 and sum(len(ls) for ls in bad_lines.values()) == 0},
        "cluster_start": started,
    }
    print()
    print(f"SUSPICION: {obs['polls']} polls of /v1/cluster ({obs['rounds']} rounds x 5 nodes, "
          f"{obs['poll_errors']} poll errors, slowest {obs['max_poll_ms']:.0f} ms): "
          f"{obs['not_up']} observations of a node not up; "
          f"{result['log_suspect_or_down_total']} suspect/down log lines "
          f"({result['log_suspect_or_down_lines']}; before the load: {lines_at_load_start}) (target 0 and 0: "
          f"{'met' if result['target']['met'] else 'NOT met'})")
    print("  " + bench_line("bench on n1 (c32, r0.5, 128 B)", fig))
    for s in result["log_samples"][:10]:
        print("  log: " + s)
    for s in obs["not_up_samples"][:10]:
        print(f"  seen: {s}")
    return result


def watch_join(cluster: Cluster, new: Node, limit_s: float, poll_s: float = 0.1) -> dict:
    """Starts `new` (joining through n1) and follows its handoff until no move is pending
    cluster-wide, no target ring is left and `new` owns partitions. Times are from the spawn."""
    n1 = cluster.nodes[0]
    offset = new.spawn()
    t_join = new.started_at
    new_client = Http(new.http_addr, timeout=2.0)
    n1_client = Http(n1.http_addr, timeout=2.0)
    series = []
    listening_s = t_in_view = t_first_byte = t_done = None
    max_pending = max_active = 0
    last_new = None
    poll_errors = 0
    while now() - t_join < limit_s:
        t = now() - t_join
        if listening_s is None:
            with open(new.stdout_path, "rb") as f:
                f.seek(offset)
                if b"listening" in f.read():
                    listening_s = now() - t_join
        if new.proc.poll() is not None:
            raise RuntimeError(f"{new.node_id} exited with {new.proc.returncode}\n" + new.tail(40))
        try:
            v1 = n1_client.get_json("/v1/cluster")
        except Exception:  # noqa: BLE001
            poll_errors += 1
            time.sleep(poll_s)
            continue
        if t_in_view is None and new.node_id in states_of(v1):
            t_in_view = now() - t_join
        vnew = None
        try:
            vnew = new_client.get_json("/v1/cluster")
            last_new = vnew
        except Exception:  # noqa: BLE001
            if listening_s is not None:
                poll_errors += 1
        pending = max(v1["moves"]["pending"], vnew["moves"]["pending"] if vnew else 0)
        max_pending = max(max_pending, pending)
        if vnew:
            mv = vnew["moves"]
            max_active = max(max_active, mv["active"])
            if t_first_byte is None and mv["bytes_moved"] > 0:
                t_first_byte = now() - t_join
            series.append({"t_s": round(t, 2), "pending": pending, "active": mv["active"],
                           "bytes_moved": mv["bytes_moved"], "bytes_total": mv["bytes_total"],
                           "rate": mv["rate_bytes_per_sec"]})
        if t_in_view is not None and vnew and pending == 0 \
                and (max_pending > 0 or vnew["moves"]["bytes_moved"] > 0):
            ring = n1_client.get_json("/v1/cluster/ring")
            owns = any(new.node_id in p["replicas"] for p in ring["partitions"])
            if ring.get("target") is None and owns:
                t_done = now() - t_join
                break
        time.sleep(poll_s)
    try:
        last_new = new_client.get_json("/v1/cluster")
    except Exception:  # noqa: BLE001
        pass
    new_client.close()
    n1_client.close()
    bytes_moved = last_new["moves"]["bytes_moved"] if last_new else 0
    r3 = lambda x: round(x, 3) if x is not None else None  # noqa: E731
    return {
        "node": new.node_id, "listening_s": r3(listening_s), "in_n1_view_s": r3(t_in_view),
        "first_byte_s": r3(t_first_byte), "handoff_duration_s": r3(t_done),
        "bytes_moved": bytes_moved,
        "bytes_total": last_new["moves"]["bytes_total"] if last_new else None,
        "mb_per_s": round(bytes_moved / 1e6 / t_done, 2) if t_done else None,
        "mb_per_s_from_first_byte": (round(bytes_moved / 1e6 / (t_done - t_first_byte), 2)
                                     if t_done and t_first_byte else None),
        "max_pending": max_pending, "max_active_streams": max_active, "poll_errors": poll_errors,
        "series": series, "last_view": last_new,
    }


COMMIT_METRIC = "concord_storage_commit_duration_seconds"
# Writes a node coordinated: its own durable copy, then the wait for the other replicas.
WRITE_PHASE_METRICS = {"local copy": "concord_replica_write_local_seconds",
                       "quorum wait": "concord_replica_write_quorum_seconds"}


def histogram_buckets(node: Node, *metrics: str) -> dict[str, dict[float, float]]:
    """Per metric, the cumulative bucket counts of that Prometheus histogram of a node, from one
    scrape ({} for each if the node is unreachable)."""
    out: dict[str, dict[float, float]] = {metric: {} for metric in metrics}
    conn = Http(node.http_addr, timeout=5)
    try:
        status, body = conn.request("GET", "/metrics")
    except (OSError, http.client.HTTPException):
        return out
    finally:
        conn.close()
    if status != 200:
        return out
    for line in body.decode().splitlines():
        metric, bucket, _ = line.partition("_bucket{")
        if bucket and metric in out:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[metric][float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def quantiles_text(label: str, c: dict) -> str:
    return f"{label} {c['count']} p50<={c['p50_le_ms']} p90<={c['p90_le_ms']} p99<={c['p99_le_ms']} ms"


def bucket_quantiles(before: dict, after: dict) -> dict:
    """Count and p50/p90/p99 (as bucket upper bounds, ms) of the observations between two scrapes."""
    delta = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    out = {"count": int(total)}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        bound = next((le for le, n in delta if total and n >= q * total), None)
        out[f"{name}_le_ms"] = None if bound is None else (round(bound * 1e3, 3) if bound != float("inf") else "inf")
    return out


def scenario_handoff(args, cluster: Cluster) -> dict:
    started = cluster.start(3)
    log(f"3 nodes up: {started}")
    n1 = cluster.nodes[0]
    log(f"loading {args.keys} keys x {args.value_size} B into namespace bench")
    t0 = now()
    load = run_bench(args.binary, n1.http_addr, cluster.workdir, "handoff-load",
                     concurrency=32, keys=args.keys, value_size=args.value_size, read_ratio=0,
                     prefill=True, ops=1)
    load_s = now() - t0
    load_fig = bench_figures(load)
    log(f"  loaded in {load_s:.1f} s: {load_fig['prefill']}")
    cluster.wait_settled(120)
    holdings = {}
    for n in cluster.nodes:
        rows = Http(n.http_addr, timeout=120).get_json("/v1/admin/holdings")
        holdings[n.node_id] = sum(r["keys"] for r in rows if r["namespace"] == "bench")
    disk = {n.node_id: dir_bytes(n.data_dir) for n in cluster.nodes}
    log(f"  bench keys held per node: {holdings}; data dir bytes: {disk}")

    bench_opts = dict(concurrency=32, keys=args.keys, value_size=args.value_size, read_ratio=0.5)
    log(f"baseline: {args.bench_seconds} s bench, no handoff")
    base = run_bench(args.binary, n1.http_addr, cluster.workdir, "handoff-baseline",
                     duration=f"{args.bench_seconds}s", **bench_opts)
    base_fig = bench_figures(base)
    log("  " + bench_line("baseline", base_fig))
    cluster.wait_settled(60)

    # The same bench again, long enough to be stopped by SIGINT once the handoff is over.
    proc, argv = start_bench(args.binary, n1.http_addr, cluster.workdir, "handoff-during",
                             duration=f"{args.max_seconds}s", **bench_opts)
    t_bench = now()
    log("  $ " + " ".join(argv) + "   (stopped by SIGINT when the handoff is over)")
    time.sleep(args.join_after)
    # Every node's commits, and n1's write phases, each node from one scrape.
    scraped = (COMMIT_METRIC, *WRITE_PHASE_METRICS.values())
    before = {n.node_id: histogram_buckets(n, *scraped) for n in cluster.live()}
    new = cluster.new_node("n4", data_root=args.joiner_data_root)
    log(f"starting n4 {now() - t_bench:.2f} s into the bench")
    watch = watch_join(cluster, new, args.max_seconds - args.join_after - 5)
    # Group-commit times during the handoff: on the receiver they are what a client write
    # that must reach the new owner waits for.
    after = {n.node_id: histogram_buckets(n, *scraped) for n in cluster.live()}
    commits = {node: bucket_quantiles(before.get(node, {}).get(COMMIT_METRIC, {}), metrics[COMMIT_METRIC])
               for node, metrics in after.items()}
    log("  group commits during the handoff (bucket bounds): " + "; ".join(
        quantiles_text(node, c) for node, c in sorted(commits.items())))
    # n1 coordinates every bench write it is a replica for: its own copy waits for its disk, the
    # rest for the other replicas.
    phases = {phase: bucket_quantiles(before[n1.node_id][metric], after[n1.node_id][metric])
              for phase, metric in WRITE_PHASE_METRICS.items()}
    log("  writes n1 coordinated during the handoff (bucket bounds): " + "; ".join(
        quantiles_text(phase, c) for phase, c in phases.items()))
    t_join = new.started_at
    t_done = watch["handoff_duration_s"]
    t_first_byte = watch["first_byte_s"]
    last_new = watch["last_view"]
    during_least = args.bench_seconds if args.during_seconds is None else args.during_seconds
    t_stop_at = max(t_bench + during_least, now() + args.tail_seconds)
    time.sleep(max(0.0, t_stop_at - now()))
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    during = finish_bench(proc, cluster.workdir, "handoff-during", timeout=120)
    during["_argv"] = argv
    during_fig = bench_figures(during)
    log("  " + bench_line("during handoff", during_fig))
    bytes_moved = watch["bytes_moved"]
    mbps = watch["mb_per_s"]
    holdings_after = {}
    for n in cluster.nodes:
        try:
            rows = Http(n.http_addr, timeout=120).get_json("/v1/admin/holdings")
            holdings_after[n.node_id] = sum(r["keys"] for r in rows if r["namespace"] == "bench")
        except Exception as e:  # noqa: BLE001
            holdings_after[n.node_id] = f"error: {e}"
    new_disk = dir_bytes(new.data_dir)

    idle = None
    if args.idle_join and t_done is not None:
        # For comparison: a 5th node joins with no client load at all.
        cluster.wait_settled(120)
        time.sleep(2)
        log("n5 joins with no client load (comparison)")
        idle = watch_join(cluster, cluster.new_node("n5", data_root=args.joiner_data_root), 600)
        idle.pop("last_view")
        idle["series"] = idle["series"][:: max(1, len(idle["series"]) // 30)]
        log(f"  n5 moved {idle['bytes_moved'] / 1e6:.1f} MB in {idle['handoff_duration_s']} s = {idle['mb_per_s']} MB/s")

    p99_base = base_fig["total"]["p99_ms"]
    p99_during = during_fig["total"]["p99_ms"]
    ratio = p99_during / p99_base if (p99_base and p99_during) else None
    series = watch.pop("series")
    watch.pop("last_view")
    result = {
        "scenario": "handoff",
        "load": {"keys": args.keys, "value_size": args.value_size,
                 "logical_bytes": args.keys * args.value_size, "elapsed_s": round(load_s, 1),
                 "prefill": load_fig["prefill"], "bench_keys_held_per_node": holdings,
                 "data_dir_bytes_per_node": disk, "argv": load["_argv"]},
        "baseline": base_fig, "baseline_argv": base["_argv"],
        "during": during_fig, "during_argv": argv,
        "join_after_s": round(t_join - t_bench, 2),
        "n4": watch,
        "commits_during_handoff": commits,
        "n1_write_phases_during_handoff": phases,
        "handoff_duration_s": t_done,
        "bytes_moved_by_n4": bytes_moved,
        "n4_data_dir_bytes": new_disk,
        "bench_keys_held_after": holdings_after,
        "handoff_mb_per_s": mbps,
        "p99_ratio_during_vs_baseline": round(ratio, 2) if ratio else None,
        "target": {"mb_per_s_ge": 50, "p99_ratio_le": 2,
                   "met": bool(mbps and mbps >= 50 and ratio and ratio <= 2)},
        "series": series[:: max(1, len(series) // 60)],
        "idle_join_n5": idle,
        "cluster_start": started,
    }
    print()
    if t_done is None:
        print(f"HANDOFF: NOT finished within {args.max_seconds} s; last n4 view moves: "
              f"{last_new['moves'] if last_new else None}")
    print(f"HANDOFF: loaded {args.keys} keys x {args.value_size} B ({args.keys * args.value_size / 1e6:.0f} MB "
          f"logical, prefill errors {load_fig['prefill']['errors'] if load_fig['prefill'] else '?'}); "
          f"n4 moved {bytes_moved / 1e6:.1f} MB in {t_done} s from process start "
          f"= {mbps} MB/s ({watch['mb_per_s_from_first_byte']} MB/s from first byte "
          f"at {t_first_byte} s; at most {watch['max_active_streams']} stream(s) at once) (target >= 50 MB/s)")
    print(f"  bench p99 during handoff {p99_during} ms vs baseline {p99_base} ms: ratio {result['p99_ratio_during_vs_baseline']} "
          f"(target <= 2); throughput {during_fig['total']['ops_per_s']:.0f} vs {base_fig['total']['ops_per_s']:.0f} ops/s; "
          f"targets {'met' if result['target']['met'] else 'NOT met'}")
    print("  " + bench_line("baseline", base_fig))
    print("  " + bench_line("during  ", during_fig))
    if idle:
        print(f"  unloaded join of n5 (comparison): {idle['bytes_moved'] / 1e6:.1f} MB in "
              f"{idle['handoff_duration_s']} s = {idle['mb_per_s']} MB/s")
    return result


def scenario_meta(args, cluster: Cluster) -> dict:
    started = cluster.start(3)
    log(f"3 nodes up: {started}")
    leader = cluster.leader()
    follower = next(n.node_id for n in cluster.nodes if n.node_id != leader)
    out = {}
    errors = []
    statuses: dict[str, dict] = {}
    # Alternate the two targets op by op, so drift in machine load hits both alike.
    targets = (("via_follower", follower, "f"), ("via_leader", leader, "l"))
    clients = {label: Http(cluster.node(target).http_addr, timeout=30) for label, target, _ in targets}
    times: dict[str, list[float]] = {label: [] for label, _, _ in targets}
    for client in clients.values():
        client.get_json("/v1/cluster")  # warm the connections
    for i in range(args.ops):
        for label, target, prefix in (targets if i % 2 == 0 else targets[::-1]):
            t0 = now()
            status, body = clients[label].request("PUT", f"/v1/namespaces/m{prefix}{i}", b"{}")
            times[label].append((now() - t0) * 1000)
            statuses.setdefault(label, {}).setdefault(str(status), 0)
            statuses[label][str(status)] += 1
            if status != 201:
                errors.append(f"{label} m{prefix}{i}: HTTP {status} {body[:200]!r}")
    for label, target, _ in targets:
        clients[label].close()
        out[label] = {"node": target, "ms": summary(times[label]), "statuses": statuses[label]}
        log(f"  {label} ({target}): median {out[label]['ms']['median']} ms, p90 {out[label]['ms']['p90']} ms, "
            f"max {out[label]['ms']['max']} ms, statuses {statuses[label]}")
    leader_after = cluster.leader()

    joins = []
    n1 = cluster.nodes[0]
    n1_client = Http(n1.http_addr, timeout=2)
    for j in range(args.joins):
        node = cluster.new_node(f"n{4 + j}")
        offset = node.spawn()
        t0 = node.started_at
        appear = None
        while now() - t0 < 60:
            try:
                if node.node_id in states_of(n1_client.get_json("/v1/cluster")):
                    appear = now() - t0
                    break
            except Exception:  # noqa: BLE001
                pass
            if node.proc.poll() is not None:
                raise RuntimeError(f"{node.node_id} exited\n" + node.tail(40))
            time.sleep(0.005)
        listening = node.wait_listening(offset)
        settle = cluster.wait_settled(120)
        rec = {"node": node.node_id, "in_n1_view_s": round(appear, 3) if appear else None,
               "listening_s": round(listening, 3), "settled_s": round(settle, 3)}
        if j < args.joins - 1 or args.leave_last:
            t_leave = now()
            status, body = n1_client.request("POST", f"/v1/cluster/nodes/{node.node_id}/leave", b"")
            rec["leave_status"] = status
            gone = None
            while now() - t_leave < 120:
                try:
                    if node.node_id not in states_of(n1_client.get_json("/v1/cluster")):
                        gone = now() - t_leave
                        break
                except Exception:  # noqa: BLE001
                    pass
                time.sleep(0.02)
            rec["leave_until_gone_s"] = round(gone, 3) if gone else None
            code = node.stop()
            rec["exit_code_after_leave"] = code
            cluster.nodes.remove(node)
            cluster.clients.pop(node.node_id).close()
            shutil.rmtree(node.data_dir, ignore_errors=True)
            if gone is None:
                raise RuntimeError(f"{node.node_id} still in the view 120 s after leave (HTTP {status} "
                                   f"{body[:200]!r})\n" + cluster.tails())
            cluster.wait_settled(60)
        joins.append(rec)
        log(f"  join {j + 1}: {rec}")
    appears = [r["in_n1_view_s"] for r in joins if r["in_n1_view_s"] is not None]
    result = {
        "scenario": "meta", "ops": args.ops, "leader": leader, "leader_after": leader_after,
        "follower": follower, **out, "errors": errors,
        "join_in_n1_view": summary(appears), "joins": joins, "cluster_start": started,
    }
    print()
    print(f"META: namespace create via follower {follower}: median {out['via_follower']['ms']['median']} ms, "
          f"p90 {out['via_follower']['ms']['p90']} ms; via leader {leader}: median "
          f"{out['via_leader']['ms']['median']} ms, p90 {out['via_leader']['ms']['p90']} ms; errors {len(errors)}")
    print(f"  join commit (process start -> in n1's /v1/cluster), {len(appears)} joins: median "
          f"{result['join_in_n1_view'].get('median')} s, max {result['join_in_n1_view'].get('max')} s; "
          f"per join {appears}")
    return result


def scenario_throughput(args, cluster: Cluster) -> dict:
    """The old and the new binary alternated in one run (old, new, then new, old: ABBA rounds),
    on 1 and 3 nodes: puts, then a 50/50 mix, from the new binary's `concord bench` on every
    node at once (one total concurrency split among them). Nodes start with `concord server`
    flags, which both binaries take."""
    sides = [("old", args.old), ("new", cluster.binary)]
    runs = []
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for nodes in args.nodes:
            for label, binary in order:
                workdir = os.path.join(cluster.workdir, f"r{r}-{nodes}n-{label}")
                c = Cluster(binary, workdir, direct=True)
                try:
                    c.start(nodes)
                    status, body = c.clients["n1"].request(
                        "PUT", "/v1/namespaces/bench", json.dumps({"conflicts": "lww"}).encode())
                    if status not in (200, 201):
                        raise RuntimeError(f"creating namespace bench: {status} {body[:300]!r}")
                    for n in c.nodes:
                        deadline = now() + 30
                        while c.clients[n.node_id].request("GET", "/v1/namespaces/bench")[0] != 200:
                            if now() > deadline:
                                raise RuntimeError(f"{n.node_id} never saw namespace bench")
                            time.sleep(0.05)
                    shares = [args.concurrency // nodes + (1 if i < args.concurrency % nodes else 0)
                              for i in range(nodes)]
                    for workload, ratio in (("put", 0.0), ("mix", 0.5)):
                        procs = [start_bench(cluster.binary, n.http_addr, workdir,
                                             f"{workload}-{n.node_id}", ns="bench",
                                             concurrency=share, duration=f"{args.seconds}s",
                                             keys=args.keys, value_size=128, read_ratio=ratio)
                                 for n, share in zip(c.nodes, shares)]
                        reports = [finish_bench(p, workdir, f"{workload}-{n.node_id}")
                                   for (p, _), n in zip(procs, c.nodes)]
                        figs = [bench_figures(rep)["total"] for rep in reports]
                        run = {"round": r, "nodes": nodes, "workload": workload, "side": label,
                               "ops_per_s": round(sum(f["ops_per_s"] for f in figs)),
                               "errors": sum(f["errors"] for f in figs),
                               "p50_ms": max(f["p50_ms"] or 0 for f in figs),
                               "p99_ms": max(f["p99_ms"] or 0 for f in figs)}
                        log(f"  round {r} {nodes} node(s) {workload} {label}: {run['ops_per_s']} ops/s, "
                            f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, errors {run['errors']}")
                        runs.append(run)
                finally:
                    c.stop()
                    if not args.keep:
                        shutil.rmtree(workdir, ignore_errors=True)
    summary = []
    for nodes in args.nodes:
        for workload in ("put", "mix"):
            med = {}
            for label, _ in sides:
                rates = [x["ops_per_s"] for x in runs
                         if x["nodes"] == nodes and x["workload"] == workload and x["side"] == label]
                med[label] = statistics.median(rates)
            row = {"nodes": nodes, "workload": workload, "old_median": med["old"],
                   "new_median": med["new"], "new_over_old": round(med["new"] / med["old"], 3)}
            log(f"{nodes} node(s) {workload}: old {med['old']:.0f}, new {med['new']:.0f} ops/s "
                f"(medians of {args.rounds}), new/old {row['new_over_old']}")
            summary.append(row)
    return {"scenario": "throughput", "old": args.old, "runs": runs, "summary": summary}


SCENARIOS = {"detect": scenario_detect, "suspicion": scenario_suspicion,
             "handoff": scenario_handoff, "meta": scenario_meta,
             "throughput": scenario_throughput}


def run_scenario(name: str, args) -> dict:
    workdir = tempfile.mkdtemp(prefix=f"concord-bench-{name}-", dir=args.tmp)
    cluster = Cluster(args.binary, workdir)
    log(f"== {name}: work dir {workdir}")
    ok = False
    t0 = now()
    sampler = CpuSampler()
    sampler.start()
    try:
        result = SCENARIOS[name](args, cluster)
        ok = True
    except BaseException as e:
        print(f"\n{name} FAILED: {e}", flush=True)
        print("log tails:\n" + cluster.tails(30), flush=True)
        result = {"scenario": name, "error": str(e)[:4000]}
        if isinstance(e, KeyboardInterrupt):
            cluster.kill_all()
            raise
    finally:
        codes = cluster.stop()
        bad_exit = {k: v for k, v in codes.items() if v != 0}
        if bad_exit:
            print(f"note: nodes that did not exit 0 on SIGTERM: {bad_exit}")
            result["unclean_exits"] = bad_exit
        result["wall_s"] = round(now() - t0, 1)
        result["cpu"] = sampler.result()
        result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        print(f"cpu during {name}: {result['cpu']}; loadavg at end {result['loadavg_at_end']}")
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            for outside in cluster.outside_dirs:
                shutil.rmtree(outside, ignore_errors=True)
        else:
            print(f"work dir kept: {workdir}" + "".join(f", {d}" for d in cluster.outside_dirs))
    result["machine"] = machine_info
    result["binary"] = args.binary
    result["argv"] = sys.argv
    line = json.dumps(result, separators=(",", ":"))
    print(line, flush=True)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    return result


machine_info: dict = {}


def main() -> int:
    global machine_info
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.environ.get("CONCORD", DEFAULT_BINARY))
    parser.add_argument("--keep", action="store_true", help="keep work dirs and logs")
    parser.add_argument("--tmp", default=None, help="parent of the work dirs (default: system temp)")
    parser.add_argument("--json-out", default=None, help="append each JSON line to this file")
    sub = parser.add_subparsers(dest="cmd", required=True)

    def add_detect(p):
        p.add_argument("--kills", type=int, default=20)
        p.add_argument("--poll-ms", type=float, default=25)
        p.add_argument("--detect-deadline", type=float, default=15, help="s to wait for down")
        p.add_argument("--recover-deadline", type=float, default=30, help="s to wait for up")
        p.add_argument("--settle", type=float, default=1.0, help="s of quiet between kills")

    def add_suspicion(p):
        p.add_argument("--minutes", type=float, default=10)
        p.add_argument("--keys", type=int, default=100_000)
        p.add_argument("--no-prefill", dest="prefill", action="store_false")

    def add_handoff(p, prefix=""):
        p.add_argument(f"--{prefix}keys", dest="keys" if not prefix else "handoff_keys", type=int,
                       default=300_000)
        p.add_argument("--value-size", type=int, default=1024)
        p.add_argument("--bench-seconds", type=float, default=30, help="baseline length, and least length of the bench under handoff")
        p.add_argument("--during-seconds", type=float, default=None,
                       help="least length of the bench under handoff (default: --bench-seconds); "
                            "0 with --tail-seconds 0 times just the handoff window")
        p.add_argument("--join-after", type=float, default=5, help="s into the bench to start n4")
        p.add_argument("--max-seconds", type=float, default=900, help="longest bench under handoff")
        p.add_argument("--tail-seconds", type=float, default=1, help="bench keeps going this long after the handoff")
        p.add_argument("--no-idle-join", dest="idle_join", action="store_false",
                       help="skip the comparison join of n5 without client load")
        p.add_argument("--joiner-data-root", default=None,
                       help="make the joining nodes' data dirs here (e.g. another disk) instead of "
                            "in the work dir, to tell their disk writes' effect on the others apart")

    def add_meta(p):
        p.add_argument("--ops", type=int, default=50)
        p.add_argument("--joins", type=int, default=5)
        p.add_argument("--leave-last", action="store_true")

    add_detect(sub.add_parser("detect", help="failure detection time after SIGKILL"))
    add_suspicion(sub.add_parser("suspicion", help="false suspicions under load"))
    add_handoff(sub.add_parser("handoff", help="handoff throughput and latency under a join"))
    add_meta(sub.add_parser("meta", help="metadata commit latency"))
    p_tp = sub.add_parser("throughput", help="old vs new binary, alternated, 1 and 3 nodes")
    p_tp.add_argument("--old", required=True, help="the binary to compare against")
    p_tp.add_argument("--rounds", type=int, default=4, help="rounds (each alternates the sides)")
    p_tp.add_argument("--seconds", type=int, default=15, help="length of each bench")
    p_tp.add_argument("--nodes", type=int, nargs="+", default=[1, 3])
    p_tp.add_argument("--concurrency", type=int, default=64, help="total, split among the nodes")
    p_tp.add_argument("--keys", type=int, default=100_000)
    p_all = sub.add_parser("all", help="detect, handoff, meta, then suspicion")
    add_detect(p_all)
    add_suspicion(p_all)
    add_handoff(p_all, prefix="handoff-")
    p_all.add_argument("--ops", type=int, default=50)
    p_all.add_argument("--joins", type=int, default=5)
    p_all.add_argument("--leave-last", action="store_true")
    args = parser.parse_args()

    if not os.access(args.binary, os.X_OK):
        print(f"no executable concord at {args.binary} (use --binary or CONCORD)", file=sys.stderr)
        return 2
    machine_info = machine()
    print(f"machine: {machine_info}; binary {args.binary}")
    if args.cmd == "all":
        results = []
        for name in ("detect", "handoff", "meta", "suspicion"):
            if name == "handoff":
                sub_args = argparse.Namespace(**{**vars(args), "keys": args.handoff_keys})
            else:
                sub_args = args
            results.append(run_scenario(name, sub_args))
        return 0 if all("error" not in r for r in results) else 1
    result = run_scenario(args.cmd, args)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
