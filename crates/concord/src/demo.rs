//! `concord demo`: a local cluster of N nodes, run as child processes of this executable
//! (`concord server`), to try Concord out on one machine.
//!
//! Node `n1` founds the cluster and every other node joins through `n1`'s peer address. Data
//! dirs and logs live in one temporary directory, removed at exit. The demo waits until `n1`
//! reports every node `up`, prints how to reach the cluster, and then watches: SIGINT or SIGTERM
//! stops every node with SIGTERM (waiting for each) and exits 0; a node that dies on its own is
//! reported and the demo exits non-zero.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use concord_client::Client;
use concord_client::startup::Announcement;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, sleep, timeout};

/// How long one node may take to print its startup line (a joiner waits for the metadata).
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to show every node `up` once all have started.
const CLUSTER_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to exit after SIGTERM before it is killed.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the children and the cluster view are looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// Lines of a node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// Flags of `concord demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    nodes: u16,
    /// Node i listens on P+2(i-1) (HTTP) and P+2(i-1)+1 (peer) [default: free ports].
    #[arg(long, value_name = "P")]
    base_port: Option<u16>,
}

/// One child `concord server`.
struct DemoNode {
    id: String,
    child: Child,
    /// `http://host:port` of its API.
    endpoint: String,
    peer_addr: String,
    log_path: PathBuf,
}

/// Runs the demo until a signal (exit 0) or a node's death (an error).
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Some(base) = args.base_port {
        let last = u32::from(base) + 2 * u32::from(args.nodes) - 1;
        if base == 0 || last > u32::from(u16::MAX) {
            bail!("--base-port {base}: {} nodes need ports {base}..={last}", args.nodes);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let dir = tempfile::Builder::new().prefix("concord-demo-").tempdir()?;
    let mut nodes = Vec::new();
    // Signals come first: once one arrived, children exiting is expected, not a failure.
    let result = tokio::select! {
        biased;
        signal = shutdown_signal() => signal.map(|name| println!("{name}: stopping the cluster")),
        result = start_and_watch(&exe, &args, dir.path(), &mut nodes) => result,
    };
    stop_all(&mut nodes).await;
    result
}

/// Starts the nodes, waits for them to be up, prints how to use them, then watches them until
/// one exits.
async fn start_and_watch(
    exe: &Path,
    args: &DemoArgs,
    dir: &Path,
    nodes: &mut Vec<DemoNode>,
) -> anyhow::Result<()> {
    println!(
        "starting {} nodes (data dirs and logs in {}, removed at exit)",
        args.nodes,
        dir.display()
    );
    for i in 1..=args.nodes {
        let seed = nodes.first().map(|n1: &DemoNode| n1.peer_addr.clone());
        let node = start_node(exe, dir, i, args.base_port, seed.as_deref()).await?;
        println!(
            "  {}  {}  peer {}  log {}",
            node.id,
            node.endpoint,
            node.peer_addr,
            node.log_path.display()
        );
        nodes.push(node);
    }
    wait_until_up(nodes).await?;
    print_usage(nodes);
    loop {
        check_children(nodes)?;
        sleep(WATCH_INTERVAL).await;
    }
}

/// Starts node `n{i}` and waits for its startup line.
async fn start_node(
    exe: &Path,
    dir: &Path,
    i: u16,
    base_port: Option<u16>,
    seed: Option<&str>,
) -> anyhow::Result<DemoNode> {
    let id = format!("n{i}");
    let (http_addr, peer_addr) = match base_port {
        Some(base) => {
            let http = base + 2 * (i - 1);
            (format!("127.0.0.1:{http}"), format!("127.0.0.1:{}", http + 1))
        }
        None => ("127.0.0.1:0".to_owned(), "127.0.0.1:0".to_owned()),
    };
    let log_path = dir.join(format!("{id}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut command = Command::new(exe);
    command
        .arg("server")
        .args(["--node-id", &id, "--http-addr", &http_addr, "--peer-addr", &peer_addr])
        .arg("--data-dir")
        .arg(dir.join(&id))
        .args(seed.map(|seed| ["--join", seed]).into_iter().flatten())
        // The log is a file: no terminal colour codes in it.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // A node whose start is abandoned (an error, a signal) must not outlive the demo.
        .kill_on_drop(true);
    let mut child = command.spawn().with_context(|| format!("cannot start {id}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let announced = timeout(NODE_START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(announcement) = Announcement::parse(&line) {
                return Ok(Some((announcement.endpoint, announcement.peer_addr)));
            }
        }
        anyhow::Ok(None)
    })
    .await;
    let (endpoint, peer_addr) = match announced {
        Ok(Ok(Some(addrs))) => addrs,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = child.wait().await?;
            bail!(
                "{id} exited with {status} while starting; its log ends with:\n{}",
                tail(&log_path)
            );
        }
        Err(_) => bail!(
            "{id} did not start within {NODE_START_TIMEOUT:?}; its log ends with:\n{}",
            tail(&log_path)
        ),
    };
    tokio::spawn(forward_stdout(id.clone(), lines));
    Ok(DemoNode { id, child, endpoint, peer_addr, log_path })
}

/// Echoes what a node prints after its startup line (its goodbye, mostly), tagged with its id.
async fn forward_stdout(id: String, mut lines: tokio::io::Lines<BufReader<ChildStdout>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        println!("[{id}] {line}");
    }
}

/// Waits until `n1` lists every node `up`, watching that no node dies meanwhile.
async fn wait_until_up(nodes: &mut [DemoNode]) -> anyhow::Result<()> {
    println!("waiting for every node to be up...");
    let client = Client::new(&nodes[0].endpoint)?;
    let deadline = Instant::now() + CLUSTER_UP_TIMEOUT;
    loop {
        check_children(nodes)?;
        let last = match client.cluster().await {
            Ok(status) => {
                let up = status.nodes.iter().filter(|node| node.state == "up").count();
                if up == nodes.len() {
                    let leader = status.leader.as_deref().unwrap_or("(none)");
                    println!("cluster is up: epoch {}, metadata leader {leader}", status.epoch);
                    return Ok(());
                }
                format!("{up} of {} nodes up", nodes.len())
            }
            Err(err) => format!("n1 did not answer: {err:#}"),
        };
        if Instant::now() > deadline {
            bail!("the cluster was not up within {CLUSTER_UP_TIMEOUT:?}: {last}");
        }
        sleep(WATCH_INTERVAL).await;
    }
}

fn print_usage(nodes: &[DemoNode]) {
    let first = &nodes[0].endpoint;
    let last = &nodes[nodes.len() - 1].endpoint;
    println!();
    println!("try:");
    println!("  concord kv put default hello world --endpoint {first}");
    println!("  concord kv get default hello --endpoint {last}");
    println!("  concord cluster status --endpoint {first}");
    println!();
    println!("Ctrl-C stops the cluster.");
}

/// An error naming the first node that has exited, with its log tail.
fn check_children(nodes: &mut [DemoNode]) -> anyhow::Result<()> {
    for node in nodes {
        if let Some(status) = node.child.try_wait()? {
            bail!(
                "{} exited unexpectedly with {status}; its log ends with:\n{}",
                node.id,
                tail(&node.log_path)
            );
        }
    }
    Ok(())
}

/// Sends SIGTERM to every node still running, then waits for each; one that does not exit in
/// time is killed.
async fn stop_all(nodes: &mut [DemoNode]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id() {
            // `kill(1)` rather than libc bindings; a node that is already gone is no error.
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
    for node in nodes.iter_mut() {
        // A node that died on its own has been reported already.
        let running = node.child.id().is_some();
        match timeout(NODE_STOP_TIMEOUT, node.child.wait()).await {
            Ok(Ok(status)) if running => println!("{} stopped ({})", node.id, describe(status)),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => println!("{}: cannot wait for it: {err}", node.id),
            Err(_) => {
                println!("{} did not stop within {NODE_STOP_TIMEOUT:?}; killing it", node.id);
                let _ = node.child.kill().await;
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    if status.success() { "clean exit".to_owned() } else { status.to_string() }
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT").context("waiting for SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
