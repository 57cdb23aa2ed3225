#!/usr/bin/env python3
"""The mechanism of issue 21, alone: how long a small fdatasync (a journal commit) waits while
a 64 MiB table file is written and synced beside it, with the table written back at its end
only (fjall's way) or in 1 MiB steps as it is written (storage.table_writeback_bytes).

    scripts/fsync-behind-table.py [--dir /tmp/fsyncbench] [--rounds 6] [--table-mib 64]

A probe thread appends 1 KiB and fdatasyncs every 5 ms; a writer writes the table in 64 KiB
chunks at --write-mb-s and fsyncs it, in one mode then the other, alternating round by round. Printed per mode:
the probe's fdatasync latencies (median, p99, max) while the table was being written and synced,
and the table's final fsync. The same file system and disk as the node's data dir; other
processes' load hits both modes alike, since they alternate.
"""
import argparse
import os
import threading
import time


def probe(path, stop, samples):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    block = b"j" * 1024
    while not stop.is_set():
        os.write(fd, block)
        t0 = time.monotonic()
        os.fdatasync(fd)
        samples.append((t0, (time.monotonic() - t0) * 1000))
        time.sleep(0.005)
    os.close(fd)


def write_table(path, mib, step, mb_per_s):
    """Writes `mib` MiB at about `mb_per_s` (fjall's pace building a table) and fsyncs; with
    `step`, starts writeback of each step as written."""
    chunk = os.urandom(64 << 10)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = synced_to = 0
    started = time.monotonic()
    for _ in range(mib * 16):
        os.write(fd, chunk)
        written += len(chunk)
        ahead = written / (mb_per_s * 1e6) - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        if step and written - synced_to >= step:
            os.posix_fadvise(fd, synced_to, written - synced_to, os.POSIX_FADV_DONTNEED)
            synced_to = written
    t0 = time.monotonic()
    os.fsync(fd)
    final = (time.monotonic() - t0) * 1000
    os.close(fd)
    os.unlink(path)
    return final


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", default="/tmp/fsyncbench")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--table-mib", type=int, default=64)
    p.add_argument("--step-kib", type=int, default=1024)
    p.add_argument("--write-mb-s", type=float, default=80.0,
                   help="pace of the table's writes (a 64 MiB memtable's flush took 0.3-0.8 s)")
    args = p.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    modes = [("synced at its end", 0), (f"written back every {args.step_kib} KiB", args.step_kib << 10)]
    results = {name: {"probe": [], "final": []} for name, _ in modes}
    for round_ in range(args.rounds):
        for name, step in (modes if round_ % 2 == 0 else modes[::-1]):
            stop, samples = threading.Event(), []
            thread = threading.Thread(target=probe, args=(os.path.join(args.dir, "journal"), stop, samples))
            thread.start()
            time.sleep(0.3)
            t_start = time.monotonic()
            final = write_table(os.path.join(args.dir, "table"), args.table_mib, step,
                                args.write_mb_s)
            t_end = time.monotonic()
            time.sleep(0.1)
            stop.set()
            thread.join()
            during = [ms for t, ms in samples if t_start <= t <= t_end]
            results[name]["probe"] += during
            results[name]["final"].append(final)
            print(f"round {round_ + 1} {name:<28} probe fdatasync max {max(during, default=0):7.1f} ms "
                  f"({len(during)} syncs), table fsync {final:7.1f} ms, load {os.getloadavg()[0]:.1f}")
    for name, r in results.items():
        print(f"== {name:<28} probe fdatasync median {pct(r['probe'], 0.5):6.1f} p99 {pct(r['probe'], 0.99):6.1f} "
              f"max {max(r['probe']):6.1f} ms over {len(r['probe'])} syncs; "
              f"table fsync median {pct(r['final'], 0.5):6.1f} max {max(r['final']):6.1f} ms")


if __name__ == "__main__":
    main()
