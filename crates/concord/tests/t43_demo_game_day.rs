//! Issue 20 item 5: the README's game day against an attached `concord demo`. A node killed
//! from outside (SIGKILL, as `kill -9 PID` from another terminal) is reported and does not stop
//! the demo; the others keep serving, the demo shows the cluster seeing it down, writes at W=2
//! succeed and leave hints for it, `restart n2` typed on the demo's stdin brings it back on its
//! ports, the hints drain, and SIGTERM (handled as Ctrl-C is) still stops everything cleanly.
//!
//! The demo runs on free ports (`--free-ports`), so the test never competes for 7700.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use concord_client::{Client, GetOptions, GetResult, Quorum, WriteOptions};
use concord_launch::process::{self, Signal};
use serde_json::Value;
use tokio::time::Instant;

/// Deadline for any one thing the test waits for (a line, a state, hints draining).
const DEADLINE: Duration = Duration::from_secs(60);
/// Keys written while n2 is down.
const KEYS: usize = 20;

/// The demo process, its stdin, and its stdout lines as they come.
struct Demo {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Every line received so far: the demo's own reports and its view of the cluster come
    /// from two timers, so their order is not the test's to assume.
    seen: Vec<String>,
}

impl Demo {
    fn start() -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(["demo", "--nodes", "3", "--free-ports", "--print-endpoints", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning concord demo");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("demo| {line}");
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo { child, stdin, lines, seen: Vec::new() }
    }

    /// The first stdout line containing `text`, among those seen or, waiting, the next ones.
    fn expect_line(&mut self, text: &str) -> String {
        if let Some(line) = self.seen.iter().find(|line| line.contains(text)) {
            return line.clone();
        }
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(err) => panic!("no line containing {text:?} from the demo: {err}"),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        println!("typing: {line}");
        writeln!(self.stdin, "{line}").expect("the demo reads its stdin");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed test must not leave nodes behind: SIGTERM stops them; kill the demo after.
        let _ = process::signal(self.child.id(), Signal::Term);
        let deadline = std::time::Instant::now() + DEADLINE;
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it returns `Some`, failing after the deadline with its last answer.
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not within {DEADLINE:?}: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The hints `client`'s node holds for `target`.
async fn hints_for(client: &Client, target: &str) -> Result<u64, String> {
    let view = client.cluster().await.map_err(|e| format!("{e:#}"))?;
    Ok(view.node(target).map_or(0, |n| n.hints_pending))
}

#[tokio::test]
async fn a_killed_node_is_reported_written_around_restarted_and_its_hints_drain() {
    let mut demo = Demo::start();
    let json = demo.expect_line("{\"nodes\"");
    let nodes: Value = serde_json::from_str(&json).unwrap();
    let nodes = nodes["nodes"].as_array().unwrap().clone();
    let endpoint = |i: usize| nodes[i]["endpoint"].as_str().unwrap().to_owned();
    let (n1, n3) = (Client::new(&endpoint(0)).unwrap(), Client::new(&endpoint(2)).unwrap());
    let n2_pid = u32::try_from(nodes[1]["pid"].as_u64().unwrap()).unwrap();

    println!("phase 1: kill -9 n2 from outside the demo");
    process::signal(n2_pid, Signal::Kill).unwrap();
    demo.expect_line("n2 exited (killed by SIGKILL); n1, n3 keep serving");
    demo.expect_line("type `restart n2`");
    assert!(demo.child.try_wait().unwrap().is_none(), "the demo keeps running");

    println!("phase 2: watch n1 see n2 go down");
    demo.expect_line("cluster: n2 up -> ");
    wait_for("n1 sees n2 down", async || {
        let view = n1.cluster().await.map_err(|e| format!("{e:#}"))?;
        match view.node("n2").map(|n| n.state.as_str()) {
            Some("down") => Ok(()),
            state => Err(format!("n2 is {state:?}")),
        }
    })
    .await;

    println!("phase 3: write {KEYS} keys at W=2 through n1");
    let w2 = WriteOptions { w: Some(Quorum::Count(2)), ..WriteOptions::default() };
    for k in 0..KEYS {
        let key = format!("game-day-{k}");
        n1.put("default", key.as_bytes(), format!("v{k}"), Some("text/plain"), None, w2)
            .await
            .unwrap_or_else(|e| panic!("W=2 write of {key} with n2 down: {e:#}"));
    }
    // A write's hints may be stored just after its answer.
    wait_for("n1 and n3 hold hints for n2, which missed the writes", async || {
        let held = hints_for(&n1, "n2").await? + hints_for(&n3, "n2").await?;
        if held > 0 { Ok(()) } else { Err("no hints".to_owned()) }
    })
    .await;
    demo.expect_line("held for n2");

    println!("phase 4: `restart n2` on the demo's stdin");
    demo.type_line("restart n1");
    demo.expect_line("n1 is running");
    demo.type_line("restart n2");
    demo.expect_line("n2 restarted (pid ");
    let n2 = Client::new(&endpoint(1)).unwrap();
    wait_for("n2 serves again on its old endpoint", async || {
        n2.cluster().await.map(|_| ()).map_err(|e| format!("{e:#}"))
    })
    .await;

    println!("phase 5: watch the hints for n2 drain");
    wait_for("every hint for n2 delivered", async || {
        let held = hints_for(&n1, "n2").await? + hints_for(&n3, "n2").await?;
        if held == 0 { Ok(()) } else { Err(format!("{held} hints left")) }
    })
    .await;
    demo.expect_line("hints: every hint for n2 delivered");
    for k in 0..KEYS {
        let key = format!("game-day-{k}");
        let all = GetOptions { r: Some(Quorum::All), ..GetOptions::default() };
        match n2.get("default", key.as_bytes(), all).await.unwrap() {
            GetResult::Value { value, .. } => assert_eq!(value, format!("v{k}").as_bytes()),
            other => panic!("{key} at R=all after the drain: {other:?}"),
        }
    }

    println!("phase 6: SIGTERM (the demo's Ctrl-C path) stops the demo and every node cleanly");
    process::signal(demo.child.id(), Signal::Term).unwrap();
    for id in ["n1", "n2", "n3"] {
        demo.expect_line(&format!("{id} stopped (clean exit)"));
    }
    let status = demo.child.wait().unwrap();
    assert!(status.success(), "the demo exits 0 after a signal: {status}");
}
