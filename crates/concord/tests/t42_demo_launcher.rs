//! `concord demo` as the launcher scripts use (`scripts/bench-*.sh`, `scripts/bench-cluster.py`):
//! start a cluster detached, read its endpoints as JSON, kill a node and restart it alone on its
//! data dir and ports, and stop every node. The demo computes the nodes' ids, data dirs, ports
//! and flags with `concord-launch`, the code `concord-testkit` starts its clusters with. These
//! run on free ports (`--free-ports`), except the one that checks the default: n1 on the
//! README's 7700, or on free ports with a loud line when 7700 is taken.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use concord_client::Client;
use concord_launch::process::Signal;
use serde_json::Value;

/// Deadline for the restarted node to be seen up by the others.
const UP_TIMEOUT: Duration = Duration::from_secs(30);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_concord"))
}

/// Runs `concord demo ARGS` to its end; returns its stdout, failing with its output otherwise.
fn demo(args: &[&str]) -> String {
    println!("concord demo {}", args.join(" "));
    let out = Command::new(binary()).arg("demo").args(args).output().expect("running concord demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "concord demo {args:?} failed with {}:\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The nodes of the JSON line `--print-endpoints json` printed.
fn endpoints(stdout: &str) -> Vec<Value> {
    let line = stdout.lines().find(|l| l.starts_with('{')).expect("a JSON line");
    let parsed: Value = serde_json::from_str(line).expect("valid JSON");
    parsed["nodes"].as_array().expect("a node list").clone()
}

/// The launcher's own rule: a process that exited but was not reaped yet (a zombie, whose
/// adopter may reap it late or never) does not run.
fn pid_alive(pid: u64) -> bool {
    concord_launch::process::is_alive(u32::try_from(pid).expect("a pid fits u32"))
}

/// Sends `signal` to `pid` as the launcher does (no `kill` program needed).
fn signal(pid: u64, signal: Signal) -> Result<(), concord_launch::Error> {
    concord_launch::process::signal(u32::try_from(pid).expect("a pid fits u32"), signal)
}

/// Stops the detached nodes even if the test fails halfway.
struct StopOnDrop(PathBuf);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let root = self.0.to_str().expect("a UTF-8 path");
        let _ = Command::new(binary()).args(["demo", "--data-root", root, "--stop"]).status();
    }
}

#[tokio::test]
async fn detached_cluster_is_listed_restarted_alone_and_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cluster");
    let root_arg = root.to_str().unwrap();
    let _stop = StopOnDrop(root.clone());

    println!("phase 1: start 3 nodes detached");
    let nodes = endpoints(&demo(&[
        "--nodes",
        "3",
        "--free-ports",
        "--data-root",
        root_arg,
        "--detach",
        "--print-endpoints",
        "json",
    ]));
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["n1", "n2", "n3"]);
    for node in &nodes {
        let id = node["id"].as_str().unwrap();
        assert_eq!(node["data_dir"], root.join(id).to_str().unwrap());
        assert_eq!(node["log"], root.join(format!("{id}.log")).to_str().unwrap());
        assert!(pid_alive(node["pid"].as_u64().unwrap()), "{id} runs after the demo exited");
    }
    let n1 = Client::new(nodes[0]["endpoint"].as_str().unwrap()).unwrap();
    let view = n1.cluster().await.unwrap();
    concord_launch_check(&view, &ids);

    println!("phase 2: kill -9 n3, restart it alone");
    let n3_pid = nodes[2]["pid"].as_u64().unwrap();
    signal(n3_pid, Signal::Kill).unwrap();
    // The signal is delivered asynchronously: until the process is gone it holds its data
    // dir's lock and its ports, and a node started meanwhile exits at once.
    let deadline = std::time::Instant::now() + UP_TIMEOUT;
    while pid_alive(n3_pid) {
        assert!(std::time::Instant::now() < deadline, "n3 (pid {n3_pid}) outlived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let restarted = endpoints(&demo(&[
        "--nodes",
        "3",
        "--free-ports",
        "--data-root",
        root_arg,
        "--detach",
        "--only",
        "3",
        "--print-endpoints",
        "json",
    ]));
    assert_eq!(restarted.len(), 1);
    assert_eq!(restarted[0]["id"], "n3");
    assert_eq!(restarted[0]["endpoint"], nodes[2]["endpoint"], "restarted on its ports");
    assert_ne!(restarted[0]["pid"], nodes[2]["pid"]);
    let deadline = tokio::time::Instant::now() + UP_TIMEOUT;
    loop {
        let view = n1.cluster().await.unwrap();
        if view.node("n3").is_some_and(|n| n.state == "up") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "n1 never saw n3 up again: {view:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    println!("phase 3: stop every node");
    let stopped = demo(&["--data-root", root_arg, "--stop"]);
    for id in ["n1", "n2", "n3"] {
        assert!(stopped.contains(&format!("{id} stopped")), "{stopped}");
    }
    let pids = [&nodes[0]["pid"], &nodes[1]["pid"], &restarted[0]["pid"]];
    for pid in pids {
        assert!(!pid_alive(pid.as_u64().unwrap()), "pid {pid} still runs after --stop");
    }
}

/// Issue 20 item 1: by default n1 takes the README's port 7700 when it is free, and when it is
/// not, the demo still starts, on free ports, and says so loudly on stderr. The test holds 7700
/// itself, so the fallback is certain; if another program already holds it and lets it go
/// before the demo looks, the demo takes it, and the test checks the demo said nothing false.
#[test]
fn a_taken_readme_port_moves_n1_to_free_ports_loudly() {
    let held = std::net::TcpListener::bind("127.0.0.1:7700");
    println!("holding 127.0.0.1:7700 for the test: {}", held.is_ok());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cluster");
    let root_arg = root.to_str().unwrap();
    let _stop = StopOnDrop(root.clone());
    let args = ["demo", "--nodes", "1", "--data-root", root_arg, "--detach"];
    let out = Command::new(binary()).args(args).output().expect("running concord demo");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "the demo starts although 7700 is taken");
    let fell_back = stderr.contains("!! n1: 127.0.0.1:7700 is taken by another program");
    let on_7700 = stdout.contains("n1  http://127.0.0.1:7700  peer 127.0.0.1:7701");
    if held.is_ok() {
        assert!(fell_back, "no loud line although the test holds 7700");
    }
    assert!(fell_back != on_7700, "the demo says it fell back exactly when n1 is not on 7700");
    if fell_back {
        assert!(stderr.contains("the README's examples (localhost:7700) would reach"), "{stderr}");
        assert!(stdout.contains("--endpoint http://127.0.0.1:"), "the hints name n1's endpoint");
    } else {
        assert!(stdout.contains("n1 has the README's address"), "{stdout}");
    }
}

/// Every node of `ids` up in `view`.
fn concord_launch_check(view: &concord_client::ClusterStatus, ids: &[&str]) {
    for id in ids {
        let state = view.node(id).map_or("absent", |n| n.state.as_str());
        assert_eq!(state, "up", "n1 sees {id} {state}");
    }
}

/// `--only I --exec` becomes node nI's server itself (`scripts/bench-cluster.py` relies on it to
/// signal and wait for the server as its own child): the process it started serves, on the
/// layout's ports and data dir, under the same pid.
#[test]
fn exec_becomes_the_server_in_place() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cluster");
    let mut child = Command::new(binary())
        .args(["demo", "--exec", "--only", "1", "--data-root", root.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawning concord demo --exec");
    let stdout = child.stdout.take().unwrap();
    // Kept open to the end: the server prints its goodbye there when it stops.
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a line").expect("readable");
    let announced = concord_client::startup::Announcement::parse(&first)
        .unwrap_or_else(|| panic!("not a startup line: {first}"));
    assert_eq!(announced.node_id, "n1");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    let args: Vec<String> =
        cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    assert_eq!(args.get(1).map(String::as_str), Some("server"), "the pid runs {args:?}");
    assert!(args.contains(&root.join("n1").to_str().unwrap().to_owned()), "{args:?}");
    signal(child.id().into(), Signal::Term).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success(), "the server stops cleanly on SIGTERM: {rest:?}");
}
