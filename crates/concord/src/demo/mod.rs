//! `concord demo`: a local cluster of N nodes, run as child processes of this executable
//! (`concord server`), to try Concord out on one machine and to watch its protocols react to
//! failures; also the launcher the benchmark scripts start and stop their clusters with.
//!
//! Where each node lives (ids, data dirs, ports, flags) and how it is started and judged up
//! come from `concord-launch`, which the test kit uses too. Node `n1` founds the cluster and
//! every other node joins through `n1`'s peer address. By default n1 takes the README's ports
//! (HTTP 7700, peer 7701) and node `i` the two after n{i-1}'s, each when free; a node whose
//! ports are taken gets free ones, said loudly (`--free-ports`: free ports for all, as tests
//! want; `--base-port P`: exactly from P, as scripts want). Data dirs and logs live in one
//! temporary directory removed at exit, or in `--data-root`, kept.
//!
//! The demo waits until every node sees all of them `up`, prints how to reach the cluster (or,
//! with `--print-endpoints json`, one JSON line naming each node's addresses, files and pid),
//! and then watches until SIGINT or SIGTERM, which stop every node with SIGTERM (waiting for
//! each) and exit 0. Meanwhile a node that exits is reported and the others keep serving;
//! commands on stdin (`kill n2`, `stop n2`, `restart n2`: [`commands`]) play a game day, and
//! the demo prints the cluster's reactions ([`watch`]).
//!
//! For scripts ([`launcher`]): `--detach` exits once the nodes are up and leaves them running
//! (their stdout in `<root>/n{i}.out`, their pids in `<root>/n{i}.pid`); `--only I` starts node
//! `n{I}` alone (a restart on its data dir and ports, or one more node); `--stop` stops
//! detached nodes; `--only I --exec` becomes node `n{I}` itself (the launcher execs `concord
//! server` with the layout's flags), for a script that wants the server as its own child.

mod commands;
mod launcher;
mod nodes;
mod watch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use concord_launch::process::Signal;
use concord_launch::{Layout, Ports};
use tokio::sync::mpsc;

use self::commands::DemoCommand;
use self::nodes::Nodes;

/// n1's HTTP port when free: the port every README example uses.
pub const README_HTTP_PORT: u16 = 7700;
/// How long a node may take to exit after SIGTERM before it is killed.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the children are looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How often the cluster's view is looked at once it is up.
const VIEW_INTERVAL: Duration = Duration::from_secs(1);

/// Flags of `concord demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    nodes: u16,
    /// Node i listens on exactly P+2(i-1) (HTTP) and P+2(i-1)+1 (peer), or fails to start
    /// [default: 7700 and up when free, else free ports, said loudly].
    #[arg(long, value_name = "P", conflicts_with = "free_ports")]
    base_port: Option<u16>,
    /// Every node on free ports picked by the OS (several demos at once, tests).
    #[arg(long)]
    free_ports: bool,
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

impl DemoArgs {
    fn ports(&self) -> Ports {
        match (self.base_port, self.free_ports) {
            (Some(base), _) => Ports::Fixed(base),
            (None, true) => Ports::Free,
            (None, false) => Ports::Preferred(README_HTTP_PORT),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointsFormat {
    Json,
}

/// Runs the demo until a signal (exit 0) or a failed start (an error), or, detached, until
/// the nodes are up.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let last = args.only.unwrap_or(args.nodes).max(args.nodes);
    Layout::new(PathBuf::new(), args.ports()).check(last)?;
    if args.stop {
        let root = args.data_root.as_deref().expect("clap requires --data-root");
        return launcher::stop_detached(root, args.only);
    }
    if let (true, Some(i), Some(root)) = (args.exec, args.only, &args.data_root) {
        return launcher::exec_node(&Layout::new(root, args.ports()), i);
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
    let mut nodes = Nodes::new(exe.clone());
    // Signals come first: once one arrived, children exiting is expected, not a failure.
    let result = tokio::select! {
        biased;
        signal = shutdown_signal() => signal.map(|name| println!("{name}: stopping the cluster")),
        result = start_and_watch(&exe, &args, &root, &mut nodes) => result,
    };
    if args.detach && result.is_ok() {
        return Ok(());
    }
    nodes.stop_all().await;
    result
}

/// Starts the nodes, waits for them to be up, prints how to use them, then (unless detached)
/// watches them and runs stdin's commands until a signal ends the demo.
async fn start_and_watch(
    exe: &Path,
    args: &DemoArgs,
    root: &Path,
    nodes: &mut Nodes,
) -> anyhow::Result<()> {
    let numbers: Vec<u16> = match args.only {
        Some(i) => vec![i],
        None => (1..=args.nodes).collect(),
    };
    let chatty = args.print_endpoints.is_none();
    if chatty {
        let what = if args.data_root.is_some() { "kept" } else { "removed at exit" };
        let count = numbers.len();
        println!("starting {count} nodes (data dirs and logs in {}, {what})", root.display());
    }
    let layout = Layout::new(root, args.ports());
    for i in numbers {
        let planned = launcher::plan(&layout, i, nodes.seed())?;
        nodes.start(planned, launcher::stdout_for(args.detach)).await?;
        if chatty {
            println!("{}", nodes.describe_node(nodes.list.len() - 1));
        }
    }
    if chatty {
        println!("waiting for every node to be up...");
    }
    let seen = nodes.wait_until_up().await?;
    match args.print_endpoints {
        Some(EndpointsFormat::Json) => println!("{}", nodes.endpoints_json()),
        None => {
            println!("cluster is up: {seen}");
            print_usage(nodes, exe, args.detach, root);
        }
    }
    if args.detach {
        return Ok(());
    }
    let commands = commands::spawn_reader();
    if chatty {
        match commands {
            Some(_) => println!("type a command and Enter: {}", commands::HELP),
            None => println!("(stdin is not this terminal's foreground: no commands)"),
        }
    }
    watch_and_serve(nodes, commands).await
}

/// Until the demo is stopped: reports nodes that exit, prints the cluster's reactions, and
/// runs the commands read on stdin (until it ends).
async fn watch_and_serve(
    nodes: &mut Nodes,
    mut commands: Option<mpsc::Receiver<String>>,
) -> anyhow::Result<()> {
    let mut children = tokio::time::interval(WATCH_INTERVAL);
    let mut views = tokio::time::interval(VIEW_INTERVAL);
    let mut seen = None;
    loop {
        tokio::select! {
            line = next_line(&mut commands) => match line {
                Some(line) => run_command(nodes, &line).await,
                None => commands = None,
            },
            _ = children.tick() => nodes.report_exits(),
            _ = views.tick() => seen = look(nodes, seen).await,
        }
    }
}

/// The next line of stdin; pending forever once stdin has ended.
async fn next_line(commands: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match commands {
        Some(lines) => lines.recv().await,
        None => std::future::pending().await,
    }
}

async fn run_command(nodes: &mut Nodes, line: &str) {
    let result = match commands::parse(line) {
        Ok(None) => Ok(()),
        Ok(Some(DemoCommand::Help)) => {
            println!("{}", commands::HELP);
            Ok(())
        }
        Ok(Some(DemoCommand::Kill(id))) => nodes.signal(&id, Signal::Kill),
        Ok(Some(DemoCommand::Stop(id))) => nodes.signal(&id, Signal::Term),
        Ok(Some(DemoCommand::Restart(id))) => nodes.restart(&id).await,
        Err(err) => Err(anyhow::anyhow!(err)),
    };
    if let Err(err) = result {
        println!("{err:#}");
    }
}

/// Looks at the cluster through the running nodes and prints what changed since `before`
/// (the first look only sets the baseline).
async fn look(nodes: &Nodes, before: Option<watch::Snapshot>) -> Option<watch::Snapshot> {
    let running = nodes.running();
    let clients: Vec<(&str, concord_client::Client)> = running
        .iter()
        .filter_map(|(id, endpoint)| Some((id.as_str(), watch::client(endpoint).ok()?)))
        .collect();
    let live: Vec<(&str, &concord_client::Client)> =
        clients.iter().map(|(id, client)| (*id, client)).collect();
    let Some(now) = watch::snapshot(&live).await else { return before };
    if let Some(before) = &before {
        for line in now.changes(before) {
            println!("{line}");
        }
    }
    Some(now)
}

fn print_usage(nodes: &Nodes, exe: &Path, detached: bool, root: &Path) {
    let concord = program_name(exe);
    let first = &nodes.list[0].announcement.endpoint;
    let last = &nodes.list[nodes.list.len() - 1].announcement.endpoint;
    let readme_endpoint = format!("http://127.0.0.1:{README_HTTP_PORT}");
    let to_first = if *first == readme_endpoint {
        println!();
        println!(
            "n1 has the README's address (localhost:{README_HTTP_PORT}): its examples work as written"
        );
        String::new()
    } else {
        format!(" --endpoint {first}")
    };
    println!();
    println!("try:");
    println!("  {concord} kv put default hello world{to_first}");
    println!("  {concord} kv get default hello --endpoint {last}");
    println!("  {concord} cluster status{to_first}");
    println!();
    if detached {
        println!(
            "the nodes keep running; stop them: {concord} demo --stop --data-root {}",
            root.display()
        );
    } else {
        println!("Ctrl-C stops the cluster.");
    }
}

/// How to name this executable in the hints: `concord` when that is what the shell finds on
/// PATH, else its full path (run through `cargo run`, it is `target/release/concord`).
fn program_name(exe: &Path) -> String {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).map(|dir| dir.join("concord")).find(|c| c.is_file())
    });
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    match found {
        Some(on_path) if same(&on_path, exe) => "concord".to_owned(),
        _ => exe.display().to_string(),
    }
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
