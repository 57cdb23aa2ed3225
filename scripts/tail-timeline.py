#!/usr/bin/env python3
"""Where a slow write's time goes (issue 21): one node, puts, and a per-second timeline that
lines the bench's latency up with the node's engine events and with the machine's load.

    scripts/tail-timeline.py [--duration 60] [--env KEY=VALUE ...] [--label NAME] [--runs N]

Each run starts one node (`concord demo --nodes 1 --detach`, logging concord_storage at debug),
prefills KEYS keys, then runs `concord bench --timeline` with puts only while a sampler records,
every second: /proc/loadavg, CPU used by other processes (total busy minus the node's and the
bench's), how long the committer thread waited for a CPU (schedstat), the disk's writes (/proc/diskstats, whole device) and the node's own (/proc/PID/io),
and an fsync probe: a 4 KiB write + fdatasync every 20 ms in this script's work dir, the same
file system, whose slowest sync per second shows what any journal fsync would have met. After
the run the node's log is read for the engine's events (memtable sealed, flush done, compactions)
and slow commits (>= 20 ms, with their phases), and everything is printed second by second.

--env passes CONCORD_* settings to the node (e.g. CONCORD_STORAGE_MEMTABLE_BYTES=8388608);
--variant LABEL:KEY=VALUE,... adds a configuration, and --runs alternates the variants run
after run, so drift on this shared machine hits them alike. A JSON file with every second of
every run is written to WORK/timeline-<label>.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_utc(text: str) -> float:
    text = text.rstrip("Z")
    base, _, frac = text.partition(".")
    ts = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return ts + (float("0." + frac) if frac else 0.0)


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def write_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_queue_wait_ns(pid: int) -> tuple[int, int]:
    """Time the node's threads spent runnable but waiting for a CPU (schedstat's second field):
    the committer thread's, and all threads' together."""
    committer = total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    wait = int(f.read().split()[1])
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except (OSError, IndexError, ValueError):
                continue
            total += wait
            if name == "concord-committ":  # comm is cut to 15 characters
                committer += wait
    except OSError:
        pass
    return committer, total


def machine_busy_ticks() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # all but idle and iowait


def disk(device: str) -> tuple[int, int, int, int]:
    """Writes completed, sectors written, ms doing I/O, weighted ms of I/O in queue."""
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if p[2] == device:
                return int(p[7]), int(p[9]), int(p[12]), int(p[13])
    return 0, 0, 0, 0


def root_device() -> str:
    dev = os.stat("/tmp").st_dev
    name = f"{os.major(dev)}:{os.minor(dev)}"
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if f"{p[0]}:{p[1]}" == name:
                return p[2]
    return "vda"


class Sampler(threading.Thread):
    """Once a second: load, foreign CPU, disk and node writes, the probe's slowest fsync."""

    def __init__(self, node_pid: int, work: str):
        super().__init__(daemon=True)
        self.node_pid, self.bench_pid = node_pid, 0
        self.stop = threading.Event()
        self.samples = []
        self.device = root_device()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.probe_path = os.path.join(work, "fsync-probe")
        self.probe_max = 0.0
        self.probe_lock = threading.Lock()
        threading.Thread(target=self.probe, daemon=True).start()

    def probe(self):
        fd = os.open(self.probe_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        block = b"p" * 4096
        n = 0
        while not self.stop.is_set():
            os.pwrite(fd, block, (n % 256) * 4096)
            t0 = time.monotonic()
            os.fdatasync(fd)
            took = (time.monotonic() - t0) * 1000
            with self.probe_lock:
                self.probe_max = max(self.probe_max, took)
            n += 1
            self.stop.wait(0.02)
        os.close(fd)

    def snapshot(self):
        node = cpu_ticks(self.node_pid) + (cpu_ticks(self.bench_pid) if self.bench_pid else 0)
        return (time.time(), machine_busy_ticks(), node, disk(self.device),
                write_bytes(self.node_pid), run_queue_wait_ns(self.node_pid))

    def run(self):
        prev = self.snapshot()
        while not self.stop.wait(1.0):
            cur = self.snapshot()
            dt = cur[0] - prev[0]
            with self.probe_lock:
                probe, self.probe_max = self.probe_max, 0.0
            d = [c - p for c, p in zip(cur[3], prev[3])]
            self.samples.append({
                "ts": cur[0],
                "load1": os.getloadavg()[0],
                "foreign_cores": round(((cur[1] - prev[1]) - (cur[2] - prev[2])) / self.tick / dt, 2),
                "disk_write_mb_s": round(d[1] * 512 / dt / 1e6, 1),
                "disk_util_pct": round(d[2] / dt / 10, 0),
                "disk_queue_avg": round(d[3] / dt / 1000, 2),
                "node_write_mb_s": round((cur[4] - prev[4]) / dt / 1e6, 1),
                "probe_fsync_max_ms": round(probe, 1),
                # ms per second the committer (all node threads) waited for a CPU
                "committer_cpu_wait_ms": round((cur[5][0] - prev[5][0]) / 1e6 / dt, 1),
                "node_cpu_wait_ms": round((cur[5][1] - prev[5][1]) / 1e6 / dt, 1),
            })
            prev = cur


LOG_LINE = re.compile(r"^(\S+Z)\s+DEBUG (concord_storage::(?:engine|commit)): (.*)$")
FIELD = re.compile(r"(\w+)=(\"[^\"]*\"|\S+)")


def log_events(path: str) -> list[dict]:
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line.strip())
            if not m:
                continue
            message = FIELD.sub("", m.group(3)).strip()
            fields = {k: v.strip('"') for k, v in FIELD.findall(m.group(3))}
            events.append({"ts": parse_utc(m.group(1)), "what": message, **fields})
    return events


def one_run(args, label: str, env: dict) -> dict:
    work = os.path.join(args.work, label)
    subprocess.run(["rm", "-rf", work], check=True)
    os.makedirs(work)
    node_env = dict(os.environ, CONCORD_LOG="info,concord_storage=debug", **env)
    subprocess.run([args.concord, "demo", "--nodes", "1", "--base-port", str(args.port),
                    "--data-root", work, "--detach"], env=node_env, check=True,
                   stdout=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{args.port}"
    try:
        with open(os.path.join(work, "n1.pid")) as f:
            node_pid = int(f.read().strip())
        bench = [args.concord, "bench", "--endpoint", endpoint, "--concurrency", str(args.conns),
                 "--keys", str(args.keys), "--value-size", str(args.value_size), "--read-ratio", "0",
                 "--output", "json"]
        subprocess.run(bench + ["--ops", str(args.keys), "--prefill"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sampler = Sampler(node_pid, work)
        sampler.start()
        proc = subprocess.Popen(bench + ["--duration", f"{args.duration}s", "--timeline"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        sampler.bench_pid = proc.pid
        out, _ = proc.communicate()
        sampler.stop.set()
        sampler.join()
        report = json.loads(out)
        metrics = urllib.request.urlopen(endpoint + "/metrics", timeout=10).read().decode()
    finally:
        subprocess.run([args.concord, "demo", "--data-root", work, "--stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"label": label, "env": env, "report": report, "samples": sampler.samples,
            "events": log_events(os.path.join(work, "n1.log")),
            "metrics": [l for l in metrics.splitlines()
                        if l.startswith("concord_storage") and "_bucket" not in l]}


def seconds(run: dict) -> list[dict]:
    """Each bench second with the samples and log events that fall in it."""
    rows, prev = [], None
    for s in run["report"]["timeline"]:
        end = parse_utc(s["at"])
        start = prev if prev is not None else end - 1.0
        inside = lambda ts: start < ts <= end
        sample = next((x for x in run["samples"] if inside(x["ts"])), {})
        events = [e for e in run["events"] if inside(e["ts"])]
        slow = [e for e in events if e["what"] == "slow commit"]
        engine = [e for e in events if e["what"] != "slow commit"]
        rows.append({**s, **{k: v for k, v in sample.items() if k != "ts"},
                     "slow_commits": len(slow),
                     "slow_engine_ms_max": max((float(e["engine_ms"]) for e in slow), default=0.0),
                     "slow_queue_ms_max": max((float(e["queue_wait_ms"]) for e in slow), default=0.0),
                     "engine_events": [short(e) for e in engine]})
        prev = end
    return rows


def short(e: dict) -> str:
    if e["what"].startswith("memtable sealed"):
        return f"seal({e.get('space')})"
    if e["what"] == "flush done":
        return f"flushed({e.get('space')},{e.get('pending_ms')}ms)"
    if e["what"].startswith("compaction started"):
        return "compact>"
    if e["what"].startswith("compactions done"):
        return f"compacted({e.get('took_ms')}ms)"
    return e["what"].replace(" ", "_")


def print_run(run: dict):
    put = run["report"]["put"]
    lat = put["latency_ms"] or {}
    print(f"== {run['label']} {run['env']}: {put['ops_per_s']:.0f} puts/s p50 {lat.get('p50')} "
          f"p99 {lat.get('p99')} p99.9 {lat.get('p999')} max {lat.get('max')} ms, "
          f"{put['errors']} errors")
    print(f"{'at':<13}{'ops/s':>7}{'p50':>7}{'p99':>8}{'max':>8} {'slow':>4}{'eng_max':>8}"
          f"{'q_max':>7} {'load':>5}{'fgn_cpu':>8}{'disk_MB':>8}{'node_MB':>8}{'util%':>6}"
          f"{'probe':>7}{'c_wait':>7}  engine")
    for r in seconds(run):
        f = lambda v: "-" if v is None else f"{v:.1f}"
        print(f"{r['at'][11:23]:<13}{r['ops_per_s']:>7.0f}{f(r['p50_ms']):>7}{f(r['p99_ms']):>8}"
              f"{f(r['max_ms']):>8} {r['slow_commits']:>4}{r['slow_engine_ms_max']:>8.1f}"
              f"{r['slow_queue_ms_max']:>7.1f} {r.get('load1', 0):>5.1f}"
              f"{r.get('foreign_cores', 0):>8.2f}{r.get('disk_write_mb_s', 0):>8.1f}"
              f"{r.get('node_write_mb_s', 0):>8.1f}{r.get('disk_util_pct', 0):>6.0f}"
              f"{r.get('probe_fsync_max_ms', 0):>7.1f}{r.get('committer_cpu_wait_ms', 0):>7.1f}"
              f"  {' '.join(r['engine_events'])}")
    for line in run["metrics"]:
        if "phase_seconds" in line or "engine_flushes" in line or "compactions_total" in line:
            print("  " + line)


def print_summary(run: dict, rows: list[dict]):
    """The run's seconds split by whether the node's engine was busy (from a memtable's seal to
    its flush done, or a compaction ending) or quiet, with the stall seconds (max > 100 ms) of
    each, the fsync probe and the other processes' disk writes: stalls in quiet seconds have a
    cause outside the engine's background work."""
    rows = rows[:-1]  # the last, partial second
    busy, flushing = [], False
    for r in rows:
        events = r["engine_events"]
        flushing |= any(e.startswith("seal(data") for e in events)
        busy.append(flushing or any(e.startswith("compacted") for e in events))
        if any(e.startswith("flushed(data") for e in events):
            flushing = False
    put = run["report"]["put"]
    lat = put["latency_ms"] or {}
    print(f"summary {run['label']} round {run.get('round')}: {put['ops_per_s']:.0f} puts/s "
          f"p99 {lat.get('p99')} p99.9 {lat.get('p999')} max {lat.get('max')} ms")
    for name, want in (("engine busy ", True), ("engine quiet", False)):
        sel = [r for r, b in zip(rows, busy) if b == want]
        if not sel:
            print(f"  {name}: no second")
            continue
        med = lambda xs: sorted(xs)[len(xs) // 2]
        mx = [r["max_ms"] or 0.0 for r in sel]
        probe = [r.get("probe_fsync_max_ms", 0.0) for r in sel]
        foreign = [max(0.0, r.get("disk_write_mb_s", 0.0) - r.get("node_write_mb_s", 0.0))
                   for r in sel]
        wait = [r.get("committer_cpu_wait_ms", 0.0) for r in sel]
        print(f"  {name}: {len(sel):3d} s, max median {med(mx):6.1f} ms, worst {max(mx):6.1f} ms, "
              f"stall seconds (max > 100 ms) {sum(m > 100 for m in mx):3d}; "
              f"probe fsync median {med(probe):5.1f} worst {max(probe):6.1f} ms; "
              f"others' disk writes {sum(foreign) / len(foreign):5.1f} MB/s; "
              f"load {sum(r.get('load1', 0.0) for r in sel) / len(sel):4.1f}; "
              f"committer waited for a CPU {sum(wait) / len(wait):5.1f} ms/s")
    slow = [e for e in run["events"] if e["what"] == "slow commit"]
    for name, flushing in (("during a flush", True), ("otherwise", False)):
        engine = sorted(float(e["engine_ms"]) for e in slow
                        if (int(e.get("sealed_memtables", 0)) > 0) == flushing)
        if engine:
            print(f"  slow commits {name}: {len(engine)}, engine phase median "
                  f"{engine[len(engine) // 2]:.1f} ms, worst {engine[-1]:.1f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    default_bin = os.path.join(ROOT, "target/release/concord")
    p.add_argument("--concord", default=os.environ.get("CONCORD", default_bin))
    p.add_argument("--work", default="/tmp/tailbench")
    p.add_argument("--port", type=int, default=7800)
    p.add_argument("--duration", type=int, default=60)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=128,
                   help="bytes per value; larger values fill memtables, so flushes, sooner")
    p.add_argument("--analyze", metavar="JSON", help="only summarize a timeline.json written before")
    p.add_argument("--variant", action="append", default=[],
                   help="LABEL:KEY=VALUE,KEY=VALUE (CONCORD_* settings); default one 'default'")
    p.add_argument("--runs", type=int, default=1, help="rounds; each round runs every variant")
    args = p.parse_args()
    if args.analyze:
        with open(args.analyze) as f:
            for run in json.load(f):
                print_summary(run, run["seconds"])
        return
    variants = []
    for v in args.variant or ["default:"]:
        label, _, pairs = v.partition(":")
        env = dict(kv.split("=", 1) for kv in pairs.split(",") if kv)
        variants.append((label, env))
    runs = []
    for round_ in range(args.runs):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for label, env in order:
            run = one_run(args, label, env)
            run["round"] = round_ + 1
            print_run(run)
            print_summary(run, seconds(run))
            sys.stdout.flush()
            runs.append(run)
    out = os.path.join(args.work, "timeline.json")
    with open(out, "w") as f:
        json.dump([{**r, "seconds": seconds(r)} for r in runs], f, indent=1)
    print(f"(every second of every run: {out})")


if __name__ == "__main__":
    main()
