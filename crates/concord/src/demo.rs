//! `concord demo`: a local cluster of N nodes, run as child processes of this executable
//! (`concord server`), to try Concord out on one machine; also the launcher the benchmark
//! scripts start and stop their clusters with.
//!
//! Where each node lives (ids, data dirs, ports, flags) and how it is started and judged up
//! come from `concord-launch`, which the test kit uses too. Node `n1` founds the cluster and
//! every other node joins through `n1`'s peer address. Data dirs and logs live in one
//! temporary directory removed at exit, or in `--data-root`, kept. The demo waits until every
//! node it started sees all of them `up`, prints how to reach the cluster (or, with
//! `--print-endpoints json`, one JSON line naming each node's addresses, files and pid), and
//! then watches: SIGINT or SIGTERM stops every node with SIGTERM (waiting for each) and exits
//! 0; a node that dies on its own is reported and the demo exits non-zero.
//!
//! For scripts: `--detach` exits once the nodes are up and leaves them running (their stdout
//! in `<root>/n{i}.out`, their pids in `<root>/n{i}.pid`); `--only I` starts node `n{I}` alone
//! (a restart on its data dir and ports, or one more node); `--stop` stops detached nodes;
//! `--only I --exec` becomes node `n{I}` itself (the launcher execs `concord server` with the
//! layout's flags), for a script that wants the server as its own child process.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use concord_client::Client;
use concord_client::startup::Announcement;
use concord_launch::process::{self, StdoutTo};
use concord_launch::{Layout, ServerOptions, ready};
use tokio::time::{Instant, sleep};

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
    /// Keep node i's data dir in DIR/n{i} and its log in DIR/n{i}.log, and keep them at exit
    /// [default: a temporary directory, removed at exit].
    #[arg(long, value_name = "DIR")]
    data_root: Option<PathBuf>,
    /// Once the nodes are up, print one JSON line with each node's id, endpoint, addresses,
    /// data dir, log and pid, instead of the usage hints.
    #[arg(long, value_name = "FORMAT")]
    print_endpoints: Option<EndpointsFormat>,
    /// Exit once the nodes are up, leaving them running (needs --data-root; their stdout goes
    /// to DIR/n{i}.out, their pids to DIR/n{i}.pid). Stop them with --stop.
    #[arg(long, requires = "data_root")]
    detach: bool,
    /// Start node n{I} only: a restart on its data dir and last ports, or one more node
    /// joining through n1 (needs --data-root).
    #[arg(long, value_name = "I", requires = "data_root",
          value_parser = clap::value_parser!(u16).range(1..))]
    only: Option<u16>,
    /// Stop the detached nodes of --data-root (or only n{I} with --only): SIGTERM, then
    /// SIGKILL after 30 s.
    #[arg(long, requires = "data_root", conflicts_with_all = ["detach", "print_endpoints"])]
    stop: bool,
    /// With --only I: replace this process by node n{I}'s `concord server` (same pid, stdout
    /// inherited, stderr to DIR/n{I}.log), instead of starting it as a child and waiting.
    #[arg(long, requires = "only", conflicts_with_all = ["detach", "print_endpoints", "stop"])]
    exec: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointsFormat {
    Json,
}

/// One node the demo started.
struct DemoNode {
    options: ServerOptions,
    child: Child,
    announcement: Announcement,
}

impl DemoNode {
    fn id(&self) -> &str {
        &self.announcement.node_id
    }
}

/// Runs the demo until a signal (exit 0), a node's death (an error), or, detached, until the
/// nodes are up.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let last = args.only.unwrap_or(args.nodes).max(args.nodes);
    Layout::new(PathBuf::new(), args.base_port).check(last)?;
    if args.stop {
        let root = args.data_root.as_deref().expect("clap requires --data-root");
        return stop_detached(root, args.only);
    }
    if let (true, Some(i), Some(root)) = (args.exec, args.only, &args.data_root) {
        return exec_node(&Layout::new(root, args.base_port), i);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let (root, _temporary) = match &args.data_root {
        Some(root) => (root.clone(), None),
        None => {
            let dir = tempfile::Builder::new().prefix("concord-demo-").tempdir()?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let mut nodes = Vec::new();
    // Signals come first: once one arrived, children exiting is expected, not a failure.
    let result = tokio::select! {
        biased;
        signal = shutdown_signal() => signal.map(|name| println!("{name}: stopping the cluster")),
        result = start_and_watch(&exe, &args, &root, &mut nodes) => result,
    };
    if args.detach && result.is_ok() {
        return Ok(());
    }
    stop_all(&mut nodes).await;
    result
}

/// Starts the nodes, waits for them to be up, prints how to use them, then (unless detached)
/// watches them until one exits.
async fn start_and_watch(
    exe: &Path,
    args: &DemoArgs,
    root: &Path,
    nodes: &mut Vec<DemoNode>,
) -> anyhow::Result<()> {
    let numbers: Vec<u16> = match args.only {
        Some(i) => vec![i],
        None => (1..=args.nodes).collect(),
    };
    let what = if args.data_root.is_some() { "kept" } else { "removed at exit" };
    if args.print_endpoints.is_none() {
        println!(
            "starting {} nodes (data dirs and logs in {}, {what})",
            numbers.len(),
            root.display()
        );
    }
    let layout = Layout::new(root, args.base_port);
    let stdout = if args.detach { StdoutTo::File } else { StdoutTo::Pipe };
    for i in numbers {
        let options = node_options(&layout, i, nodes)?;
        let node = start_node(exe, options, stdout).await?;
        if args.print_endpoints.is_none() {
            println!(
                "  {}  {}  peer {}  log {}",
                node.id(),
                node.announcement.endpoint,
                node.announcement.peer_addr,
                node.options.log_path().display()
            );
        }
        nodes.push(node);
    }
    wait_until_up(nodes, args.print_endpoints.is_none()).await?;
    match args.print_endpoints {
        Some(EndpointsFormat::Json) => println!("{}", endpoints_json(nodes)),
        None => print_usage(nodes, args.detach, root),
    }
    if args.detach {
        return Ok(());
    }
    loop {
        check_children(nodes)?;
        sleep(WATCH_INTERVAL).await;
    }
}

/// Node `i`'s options: its layout, on the ports it last announced if it ran before (a restart
/// keeps its free ports), joining through n1 unless it is n1.
fn node_options(layout: &Layout, i: u16, started: &[DemoNode]) -> anyhow::Result<ServerOptions> {
    let seed = if i == 1 {
        None
    } else if let Some(n1) = started.first() {
        Some(n1.announcement.peer_addr.clone())
    } else {
        let n1 = layout.node(1, None);
        match (layout.base_port, process::last_announcement_after(&n1.stdout_path(), 0)) {
            (Some(_), _) => Some(n1.peer_addr),
            (None, Some(announced)) => Some(announced.peer_addr),
            (None, None) => bail!(
                "--only {i} without --base-port needs n1's address: no startup line in {}",
                n1.stdout_path().display()
            ),
        }
    };
    let mut options = layout.node(i, seed.as_deref());
    if layout.base_port.is_none()
        && let Some(before) = process::last_announcement_after(&options.stdout_path(), 0)
    {
        let http = before.endpoint.trim_start_matches("http://").to_owned();
        options = options.addrs(&http, &before.peer_addr);
    }
    Ok(options)
}

/// Replaces this process by node `i`'s server; returns only if that fails.
fn exec_node(layout: &Layout, i: u16) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let options = node_options(layout, i, &[])?;
    let mut command = options.command(&exe)?;
    command.stdout(std::process::Stdio::inherit());
    let err = command.exec();
    Err(err).with_context(|| format!("cannot exec {} for n{i}", exe.display()))
}

/// Starts one node and waits for its startup line; an attached node's later stdout (its
/// goodbye, mostly) is echoed tagged with its id.
async fn start_node(
    exe: &Path,
    options: ServerOptions,
    stdout: StdoutTo,
) -> anyhow::Result<DemoNode> {
    let exe = exe.to_path_buf();
    let launch = options.clone();
    let started = tokio::task::spawn_blocking(move || {
        process::start(&exe, &launch, stdout, NODE_START_TIMEOUT)
    })
    .await??;
    if let Some(lines) = started.lines {
        let id = started.announcement.node_id.clone();
        std::thread::spawn(move || {
            for line in lines {
                println!("[{id}] {line}");
            }
        });
    }
    Ok(DemoNode { options, child: started.child, announcement: started.announcement })
}

/// Waits until every started node sees every started node `up`, watching that no node dies
/// meanwhile.
async fn wait_until_up(nodes: &mut [DemoNode], chatty: bool) -> anyhow::Result<()> {
    if chatty {
        println!("waiting for every node to be up...");
    }
    let ids: Vec<String> = nodes.iter().map(|n| n.id().to_owned()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let clients = nodes
        .iter()
        .map(|n| Client::new(&n.announcement.endpoint))
        .collect::<Result<Vec<_>, _>>()?;
    let deadline = Instant::now() + CLUSTER_UP_TIMEOUT;
    loop {
        check_children(nodes)?;
        let mut last = Ok(None);
        for (node, client) in nodes.iter().zip(&clients) {
            last = match client.cluster().await {
                Ok(view) => ready::sees_up(&view, &ids)
                    .map(|()| Some(view))
                    .map_err(|e| format!("{} sees {e}", node.id())),
                Err(err) => Err(format!("{} did not answer: {err:#}", node.id())),
            };
            if last.is_err() {
                break;
            }
        }
        match last {
            Ok(view) => {
                if let Some(view) = view.filter(|_| chatty) {
                    let leader = view.leader.as_deref().unwrap_or("(none)");
                    println!("cluster is up: epoch {}, metadata leader {leader}", view.epoch);
                }
                return Ok(());
            }
            Err(seen) if Instant::now() > deadline => {
                bail!("the cluster was not up within {CLUSTER_UP_TIMEOUT:?}: {seen}")
            }
            Err(_) => sleep(WATCH_INTERVAL).await,
        }
    }
}

/// `{"nodes": [{"id", "endpoint", "http_addr", "peer_addr", "data_dir", "log", "pid"}]}`.
fn endpoints_json(nodes: &[DemoNode]) -> serde_json::Value {
    let nodes: Vec<serde_json::Value> = nodes
        .iter()
        .map(|node| {
            serde_json::json!({
                "id": node.id(),
                "endpoint": node.announcement.endpoint,
                "http_addr": node.announcement.endpoint.trim_start_matches("http://"),
                "peer_addr": node.announcement.peer_addr,
                "data_dir": node.options.data_dir,
                "log": node.options.log_path(),
                "pid": node.child.id(),
            })
        })
        .collect();
    serde_json::json!({ "nodes": nodes })
}

fn print_usage(nodes: &[DemoNode], detached: bool, root: &Path) {
    let first = &nodes[0].announcement.endpoint;
    let last = &nodes[nodes.len() - 1].announcement.endpoint;
    println!();
    println!("try:");
    println!("  concord kv put default hello world --endpoint {first}");
    println!("  concord kv get default hello --endpoint {last}");
    println!("  concord cluster status --endpoint {first}");
    println!();
    if detached {
        println!(
            "the nodes keep running; stop them: concord demo --stop --data-root {}",
            root.display()
        );
    } else {
        println!("Ctrl-C stops the cluster.");
    }
}

/// An error naming the first node that has exited, with its log tail.
fn check_children(nodes: &mut [DemoNode]) -> anyhow::Result<()> {
    for node in nodes {
        if let Some(status) = node.child.try_wait()? {
            bail!(
                "{} exited unexpectedly with {status}; its log ends with:\n{}",
                node.id(),
                process::tail(&node.options.log_path(), LOG_TAIL_LINES)
            );
        }
    }
    Ok(())
}

/// Sends SIGTERM to every node still running, then waits for each; one that does not exit in
/// time is killed.
async fn stop_all(nodes: &mut [DemoNode]) {
    let running: Vec<bool> =
        nodes.iter_mut().map(|node| matches!(node.child.try_wait(), Ok(None))).collect();
    for (node, &running) in nodes.iter().zip(&running) {
        if running {
            // A node that is already gone is no error.
            let _ = process::signal(node.child.id(), process::Signal::Term);
        }
    }
    let deadline = Instant::now() + NODE_STOP_TIMEOUT;
    for (node, running) in nodes.iter_mut().zip(running) {
        // A node that died on its own has been reported already.
        if !running {
            continue;
        }
        loop {
            match node.child.try_wait() {
                Ok(Some(status)) => {
                    println!("{} stopped ({})", node.id(), describe(status));
                    break;
                }
                Ok(None) if Instant::now() < deadline => sleep(WATCH_INTERVAL / 5).await,
                Ok(None) => {
                    println!("{} did not stop within {NODE_STOP_TIMEOUT:?}; killing it", node.id());
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Err(err) => {
                    println!("{}: cannot wait for it: {err}", node.id());
                    break;
                }
            }
        }
    }
}

/// Stops the detached nodes whose pid files are in `root`, or only `n{only}`.
fn stop_detached(root: &Path, only: Option<u16>) -> anyhow::Result<()> {
    let layout = Layout::new(root, None);
    let mut numbers: Vec<u16> = match only {
        Some(i) => vec![i],
        None => std::fs::read_dir(root)
            .with_context(|| format!("reading {}", root.display()))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_prefix('n')?.strip_suffix(".pid")?.parse().ok()
            })
            .collect(),
    };
    numbers.sort_unstable();
    for i in numbers {
        let options = layout.node(i, None);
        let Some(pid) = process::read_pid(&options.pid_path()) else { continue };
        let id = Layout::id(i);
        if !process::is_node(pid, &options.data_dir) {
            println!("{id} (pid {pid}) is not running");
        } else if process::stop_pid(pid, NODE_STOP_TIMEOUT) {
            println!("{id} stopped (pid {pid})");
        } else {
            println!("{id} did not stop within {NODE_STOP_TIMEOUT:?}; killed it (pid {pid})");
        }
        std::fs::remove_file(options.pid_path()).ok();
    }
    Ok(())
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
