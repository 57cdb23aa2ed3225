#!/usr/bin/env python3
"""Runs the README's quick-start commands exactly as written against a fresh `concord demo`, and
checks that each one does what its README line says.

The commands are the shell lines of the ```sh blocks between the README's `quickstart:begin`
and `quickstart:end` markers, in order, in one shell session (so `TOKEN=$(...)` carries over),
from the repository root, with the debug build's `concord` first on PATH (as `cargo install
--path crates/concord` would put it there). Every README command needs a check below and every
check needs its README command, so the README and this script cannot drift apart.

The demo must get the README's ports (n1 on 7700): if 7700 is taken, this fails at once saying
so. Waits are on conditions with deadlines: the demo's own readiness (it returns once every node
sees every node up), and `cluster verify` until replicas agree.

The binary is the `target/debug/concord` that `cargo test` built, when it is newer than every
source, so CI does not rebuild; else it is built first.

Needs python3 (standard library only), curl 7.84+ and cargo. Usage: scripts/readme-quickstart.py
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
README_PORTS = range(7700, 7706)
COMMAND_TIMEOUT_S = 180
VERIFY_DEADLINE_S = 60


def stdout_is(text):
    return (f"stdout is exactly {text!r}", lambda r: r.stdout == text)


def stdout_empty():
    # A write that succeeded answers 204 without a body; a refused one answers a JSON error.
    # (stderr holds curl's progress meter when stdout is not a terminal.)
    return ("no output (204, no error body)", lambda r: r.stdout == "")


def matches(pattern, stream="stdout"):
    regex = re.compile(pattern, re.MULTILINE)
    return (f"{stream} matches {pattern!r}", lambda r: regex.search(getattr(r, stream)) is not None)


def var_set(name):
    return (f"${name} is set", lambda r: bool(r.variables.get(name)))


def json_of(description, predicate):
    def check(result):
        try:
            return predicate(json.loads(result.stdout))
        except (ValueError, KeyError, TypeError):
            return False

    return (description, check)


def all_up(view):
    return len(view["nodes"]) == 3 and all(n["state"] == "up" for n in view["nodes"])


# Each README command, continuation lines joined, its trailing comment included, and what must
# hold after it ran (besides exit status 0). `retry` commands are re-run until their checks
# hold or the deadline passes (they only read).
CHECKS = {
    "curl -XPUT localhost:7700/v1/kv/default/greeting -H 'content-type: text/plain' -d 'hello'":
        [stdout_empty()],
    "curl -i localhost:7700/v1/kv/default/greeting          # 200, the value, and a Concord-Context header":
        [matches(r"\AHTTP/1.1 200 OK"), matches(r"^concord-context: \S+"), matches(r"\nhello\Z")],
    "TOKEN=$(curl -s -o /dev/null -w '%header{concord-context}' localhost:7700/v1/kv/default/greeting)":
        [var_set("TOKEN")],
    "curl -XPUT localhost:7700/v1/kv/default/greeting -H \"concord-context: $TOKEN\" -H 'content-type: text/plain' -d 'hello again'":
        [stdout_empty()],
    "curl localhost:7700/v1/kv/default/greeting             # hello again: one value, not two siblings":
        [stdout_is("hello again")],
    "curl -XPUT localhost:7700/v1/kv/default/cart -H 'content-type: text/plain' -d 'apples'":
        [stdout_empty()],
    "curl -XPUT localhost:7700/v1/kv/default/cart -H 'content-type: text/plain' -d 'pears'":
        [stdout_empty()],
    "curl -i localhost:7700/v1/kv/default/cart              # 300 {\"siblings\": [...], \"context\": \"...\"}":
        [matches(r"\AHTTP/1.1 300"), matches(r'"siblings":\[.*"apples".*"pears"'),
         matches(r'"context":"[^"]+"')],
    "curl 'localhost:7700/v1/kv/default?prefix=gr&limit=10' # {\"keys\":[{\"key\":\"greeting\"}],\"next\":null}":
        [stdout_is('{"keys":[{"key":"greeting"}],"next":null}')],
    "curl -XDELETE localhost:7700/v1/kv/default/greeting -H \"concord-context: $TOKEN\"":
        [stdout_empty()],
    "curl -i localhost:7700/v1/kv/default/greeting          # 404: deleted":
        [matches(r"\AHTTP/1.1 404"), matches(r'"code":"not_found"')],
    "curl -XPUT localhost:7700/v1/namespaces/sessions -H 'content-type: application/json' -d '{\"conflicts\": \"lww\", \"replicas\": 3}'          # {\"name\":\"sessions\",...}: its settings":
        [json_of("the settings of sessions, lww, 3 replicas",
                 lambda ns: (ns["name"], ns["conflicts"], ns["replicas"]) == ("sessions", "lww", 3))],
    "curl localhost:7700/v1/cluster                         # members, their state, hints, moves":
        [json_of("three members, all up", all_up)],
    "curl localhost:7700/metrics                            # Prometheus metrics":
        [matches(r"^concord_http_requests_total\{")],
    "curl localhost:7700/v1/openapi.json                    # the API, as OpenAPI 3":
        [json_of("an OpenAPI 3 document", lambda doc: doc["openapi"].startswith("3."))],
    "concord kv put default greeting hello      # typed text is stored as text/plain":
        [matches(r"^context\s+\S+"), matches(r"^replicas\s+[23]/2$")],
    "concord kv put default readme --file README.md --content-type text/markdown":
        [matches(r"^replicas\s+[23]/2$")],
    "echo -n 'from stdin' | concord kv put default note":
        [matches(r"^replicas\s+[23]/2$")],
    "concord kv get default greeting            # value on stdout, context on stderr":
        [stdout_is("hello"), matches(r"^content-type: text/plain; charset=utf-8$", "stderr"),
         matches(r"^context: \S+$", "stderr")],
    "concord kv get default cart                # shows every sibling when there are several":
        [matches(r"\A2 siblings:\n"), matches(r"^apples$"), matches(r"^pears$"),
         matches(r"^warning: 2 concurrent siblings", "stderr")],
    "TOKEN=$(concord kv get default greeting --print-context)":
        [var_set("TOKEN")],
    "concord kv delete default greeting --context \"$TOKEN\"":
        [matches(r"^deleted\s+greeting$")],
    "concord kv put default greeting hi --w all --strict --timeout 2s    # ?w=all&strict=true&timeout_ms=2000":
        [matches(r"^replicas\s+3/3$")],
    "concord kv get default greeting --r all    # hi":
        [stdout_is("hi")],
    "concord kv list default --prefix gr --all":
        [stdout_is("greeting\n")],
    "concord ns create sessions --conflicts lww --replicas 3":
        [matches(r"^name\s+sessions$"), matches(r"^conflicts\s+lww$")],
    "concord ns list":
        [matches(r"^default\s+eventual"), matches(r"^sessions\s+eventual\s+3\s+3\s.*lww")],
    "concord ns show sessions":
        [matches(r"^name\s+sessions$"), matches(r"^replicas\s+3 \(effective 3\)$")],
    "concord cluster status":
        [matches(r"^leader\s+n\d$")] + [matches(rf"^n{i}\s+up\s") for i in (1, 2, 3)],
    "concord cluster verify                     # do every partition's replicas hold the same data?":
        [matches(r"^verified \d+ partitions in \d+ namespaces: \d+ agree, 0 disagree$", "stderr")],
    "concord bench --ns bench --keys 10000 --prefill --concurrency 16 --duration 10s --read-ratio 0.5":
        [matches(r"^prefill\s+10000 ops .* 0 errors$"), matches(r"^get\s+\d+\s+[\d.]+\s+0\s+0\s+0\s"),
         matches(r"^errors: none$")],
}
RETRY = {"concord cluster verify                     # do every partition's replicas hold the same data?"}


class Result:
    def __init__(self, returncode, stdout, stderr, variables):
        self.returncode, self.stdout, self.stderr, self.variables = returncode, stdout, stderr, variables


def fail(message):
    print(f"readme-quickstart: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def readme_commands():
    """The shell commands of the ```sh blocks between the markers, continuations joined."""
    text = open(README, encoding="utf-8").read()
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        fail(f"README.md needs exactly one {BEGIN} and one {END}")
    section = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```$", section, re.MULTILINE | re.DOTALL):
        joined = re.sub(r"\s*\\\n\s*", " ", block)
        commands += [line.strip() for line in joined.splitlines()
                     if line.strip() and not line.strip().startswith("#")]
    return commands


def check_coverage(commands):
    unchecked = [c for c in commands if c not in CHECKS]
    unused = [c for c in CHECKS if c not in commands]
    if unchecked or unused:
        lines = [f"  README command without a check: {c}" for c in unchecked]
        lines += [f"  check whose command is not in the README: {c}" for c in unused]
        fail("the README and this script disagree:\n" + "\n".join(lines))


def ports_taken():
    taken = []
    for port in README_PORTS:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


def concord_binary():
    """The directory of a debug `concord` built from the current sources. The one `cargo test`
    built (for the process tests) is used when it is newer than every source: `cargo build -p
    concord` would resolve features without the tests' dev-dependencies and recompile much of
    the dependency tree. Otherwise, build it."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    debug = os.path.join(os.path.abspath(target), "debug")
    binary = os.path.join(debug, "concord")
    if os.path.isfile(binary) and os.path.getmtime(binary) > newest_source_mtime():
        print(f"using {binary}: newer than every source", flush=True)
        return debug
    print("building concord (no debug binary newer than the sources)", flush=True)
    subprocess.run(["cargo", "build", "-q", "--locked", "-p", "concord"], cwd=ROOT, check=True)
    return debug


def newest_source_mtime():
    """When a source the binary may be built from last changed: the workspace manifest and lock
    file, and every Rust file and manifest under crates/ (the test crates too: a false "stale"
    only costs a build)."""
    manifests = [os.path.join(ROOT, name) for name in ("Cargo.toml", "Cargo.lock")]
    newest = max(os.path.getmtime(path) for path in manifests)
    for folder, subfolders, files in os.walk(os.path.join(ROOT, "crates")):
        subfolders[:] = [name for name in subfolders if name != "target"]
        for name in files:
            if name.endswith((".rs", ".toml")):
                newest = max(newest, os.path.getmtime(os.path.join(folder, name)))
    return newest


class Shell:
    """One shell session, run a command at a time: variables the README assigns carry over."""

    def __init__(self, env, names, state_path):
        self.env, self.names, self.state = env, names, state_path
        open(self.state, "w").close()

    def run(self, command):
        names = " ".join(self.names)
        script = ('. "$STATE"; eval "$1"; rc=$?; '
                  f'declare -p {names} >"$STATE" 2>/dev/null; exit $rc') if names else 'eval "$1"'
        env = dict(self.env, STATE=self.state)
        done = subprocess.run(["bash", "-c", script, "readme", command], cwd=ROOT, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S)
        return Result(done.returncode, done.stdout, done.stderr, self.variables())

    def variables(self):
        found = {}
        for line in open(self.state, encoding="utf-8"):
            match = re.match(r'declare -\S* (\w+)="(.*)"$', line.strip())
            if match:
                found[match.group(1)] = match.group(2)
        return found


def run_checked(shell, command):
    deadline = time.monotonic() + (VERIFY_DEADLINE_S if command in RETRY else 0)
    while True:
        result = shell.run(command)
        failed = [what for what, ok in CHECKS[command] if not ok(result)]
        if result.returncode != 0:
            failed.insert(0, f"exit status 0 (got {result.returncode})")
        if not failed or time.monotonic() >= deadline:
            return result, failed
        time.sleep(1)


def main():
    commands = readme_commands()
    check_coverage(commands)
    taken = ports_taken()
    if taken:
        fail(f"port(s) {taken} taken: the README's commands need `concord demo` on 7700-7705 "
             f"(see what listens: ss -ltnp 'sport = :7700')")
    bin_dir = concord_binary()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="concord-quickstart-") as work:
        root = os.path.join(work, "demo")
        concord = os.path.join(bin_dir, "concord")
        print(f"== concord demo --data-root {root} --detach", flush=True)
        try:
            demo = subprocess.run([concord, "demo", "--data-root", root, "--detach",
                                   "--print-endpoints", "json"], env=env, capture_output=True,
                                  text=True, timeout=COMMAND_TIMEOUT_S)
            if demo.returncode != 0:
                fail(f"concord demo did not start:\n{demo.stdout}{demo.stderr}")
            n1 = json.loads(demo.stdout.strip().splitlines()[-1])["nodes"][0]
            if "!!" in demo.stderr or n1["endpoint"] != "http://127.0.0.1:7700":
                fail(f"the demo's n1 is not on 7700 (is it taken?):\n{demo.stderr}")
            names = sorted({m for c in commands for m in re.findall(r"^(\w+)=", c)})
            shell = Shell(env, names, os.path.join(work, "variables"))
            failures = 0
            for command in commands:
                print(f"$ {command}", flush=True)
                result, failed = run_checked(shell, command)
                for what in failed:
                    failures += 1
                    print(f"   NOT AS DOCUMENTED: {what}")
                if failed:
                    print(f"   stdout: {result.stdout[-2000:]!r}\n   stderr: {result.stderr[-2000:]!r}")
            if failures:
                fail(f"{failures} check(s) of the README's commands failed (above)")
            print(f"readme-quickstart: all {len(commands)} README commands behaved as documented")
        finally:
            subprocess.run([concord, "demo", "--data-root", root, "--stop"], env=env,
                           timeout=COMMAND_TIMEOUT_S)


if __name__ == "__main__":
    main()
