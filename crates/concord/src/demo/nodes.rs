//! [`Nodes`]: the `concord server` processes a demo started, and what it does to them: start
//! (taking preferred ports when free, saying loudly when not), wait until the cluster sees them
//! up, report one that exits, signal, restart, stop all.
//!
//! Before the cluster is up, a node that exits is a failed start and ends the demo. After, it
//! is part of the game: reported once, the others keep serving, and `restart` brings it back
//! on its data dir and ports.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::time::Duration;

use anyhow::{Context as _, bail};
use concord_client::Client;
use concord_client::startup::Announcement;
use concord_launch::process::{self, Signal, StdoutTo};
use concord_launch::{ServerOptions, ports, ready};
use tokio::time::{Instant, sleep};

use super::launcher::Planned;
use super::{NODE_STOP_TIMEOUT, WATCH_INTERVAL};

/// How long one node may take to print its startup line (a joiner waits for the metadata).
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take to show every node `up` once all have started.
const CLUSTER_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a restart retries while the node's ports are still held (by its old process's
/// sockets, or by another program).
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's log shown when it fails on its own.
const LOG_TAIL_LINES: usize = 20;

/// One node the demo started.
pub struct DemoNode {
    options: ServerOptions,
    child: Child,
    pub announcement: Announcement,
    /// How it exited, once the demo has seen it exit (and said so).
    exited: Option<ExitStatus>,
}

impl DemoNode {
    pub fn id(&self) -> &str {
        &self.announcement.node_id
    }

    pub fn is_running(&self) -> bool {
        self.exited.is_none()
    }
}

/// The nodes of one demo, in start order (n1 first).
pub struct Nodes {
    exe: PathBuf,
    pub list: Vec<DemoNode>,
}

impl Nodes {
    pub fn new(exe: PathBuf) -> Self {
        Nodes { exe, list: Vec::new() }
    }

    /// n1's peer address, once n1 runs: where the others join.
    pub fn seed(&self) -> Option<&str> {
        self.list.first().map(|n1| n1.announcement.peer_addr.as_str())
    }

    /// Starts one node and waits for its startup line. Preferred ports that are taken (before
    /// the start, or found taken by the server itself) move it to free ports, with a loud line
    /// on stderr; an attached node's later stdout (its goodbye, mostly) is echoed tagged.
    pub async fn start(&mut self, planned: Planned, stdout: StdoutTo) -> anyhow::Result<()> {
        let Planned { options, may_fall_back } = planned;
        let (options, mut taken) =
            if may_fall_back { ports::keep_if_free(options) } else { (options, None) };
        let node = match self.spawn(options.clone(), stdout).await {
            Err(err) if may_fall_back && taken.is_none() && err.is_port_taken() => {
                taken = Some(options.http_addr.clone());
                self.spawn(ports::on_free_ports(options), stdout).await?
            }
            result => result?,
        };
        if let Some(taken) = taken {
            warn_taken(&node.announcement, &taken, self.list.is_empty());
        }
        self.list.push(node);
        Ok(())
    }

    async fn spawn(
        &self,
        options: ServerOptions,
        stdout: StdoutTo,
    ) -> Result<DemoNode, concord_launch::Error> {
        let exe = self.exe.clone();
        let launch = options.clone();
        let started = tokio::task::spawn_blocking(move || {
            process::start(&exe, &launch, stdout, NODE_START_TIMEOUT)
        })
        .await
        .expect("the start task does not panic")?;
        if let Some(lines) = started.lines {
            let id = started.announcement.node_id.clone();
            std::thread::spawn(move || {
                for line in lines {
                    println!("[{id}] {line}");
                }
            });
        }
        let announcement = started.announcement;
        Ok(DemoNode { options, child: started.child, announcement, exited: None })
    }

    /// Waits until every node sees every node `up`; a node that exits meanwhile is an error.
    pub async fn wait_until_up(&mut self) -> anyhow::Result<String> {
        let ids: Vec<String> = self.list.iter().map(|n| n.id().to_owned()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let clients = self
            .list
            .iter()
            .map(|n| Client::new(&n.announcement.endpoint))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + CLUSTER_UP_TIMEOUT;
        loop {
            self.fail_on_exit()?;
            let mut last = Ok(None);
            for (node, client) in self.list.iter().zip(&clients) {
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
                    let (epoch, leader) = view.map_or((0, None), |v| (v.epoch, v.leader));
                    let leader = leader.as_deref().unwrap_or("(none)").to_owned();
                    return Ok(format!("epoch {epoch}, metadata leader {leader}"));
                }
                Err(seen) if Instant::now() > deadline => {
                    bail!("the cluster was not up within {CLUSTER_UP_TIMEOUT:?}: {seen}")
                }
                Err(_) => sleep(WATCH_INTERVAL).await,
            }
        }
    }

    /// An error naming the first node that has exited, with its log tail.
    fn fail_on_exit(&mut self) -> anyhow::Result<()> {
        for node in &mut self.list {
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

    /// Says, once per exit, which nodes have exited since the last call.
    pub fn report_exits(&mut self) {
        let ids: Vec<String> = self.list.iter().map(|n| n.id().to_owned()).collect();
        for node in &mut self.list {
            if node.exited.is_some() {
                continue;
            }
            let Ok(Some(status)) = node.child.try_wait() else { continue };
            node.exited = Some(status);
            let others: Vec<&str> =
                ids.iter().map(String::as_str).filter(|id| *id != node.id()).collect();
            let id = node.id();
            println!("{id} exited ({}); {} keep serving", describe(status), others.join(", "));
            if exited_on_its_own(status) {
                let log = node.options.log_path();
                println!("its log ({}) ends with:", log.display());
                println!("{}", process::tail(&log, LOG_TAIL_LINES));
            }
            println!("type `restart {id}` to start it again on its data dir and ports");
        }
    }

    /// Sends `signal` to node `id`, which must be running.
    pub fn signal(&mut self, id: &str, signal: Signal) -> anyhow::Result<()> {
        self.report_exits();
        let node = self.find(id)?;
        if !node.is_running() {
            bail!("{id} is not running; `restart {id}` starts it");
        }
        process::signal(node.child.id(), signal)?;
        println!("sent {} to {id} (pid {})", signal.name(), node.child.id());
        Ok(())
    }

    /// Starts exited node `id` again on its data dir and the ports it had, retrying while they
    /// are still held.
    pub async fn restart(&mut self, id: &str) -> anyhow::Result<()> {
        self.report_exits();
        let node = self.find(id)?;
        if node.is_running() {
            bail!("{id} is running (pid {}); `kill {id}` or `stop {id}` first", node.child.id());
        }
        let http = node.announcement.endpoint.trim_start_matches("http://").to_owned();
        let options = node.options.clone().addrs(&http, &node.announcement.peer_addr);
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let restarted = loop {
            match self.spawn(options.clone(), StdoutTo::Pipe).await {
                Err(err) if err.is_port_taken() && Instant::now() < deadline => {
                    sleep(WATCH_INTERVAL).await;
                }
                result => break result.with_context(|| format!("restarting {id}"))?,
            }
        };
        println!(
            "{id} restarted (pid {}) on {}; hints and anti-entropy bring it up to date",
            restarted.child.id(),
            restarted.announcement.endpoint
        );
        let index = self.list.iter().position(|n| n.id() == id).expect("found above");
        self.list[index] = restarted;
        Ok(())
    }

    fn find(&self, id: &str) -> anyhow::Result<&DemoNode> {
        match self.list.iter().find(|n| n.id() == id) {
            Some(node) => Ok(node),
            None => {
                let ids: Vec<&str> = self.list.iter().map(DemoNode::id).collect();
                bail!("no node {id} in this demo (it has {})", ids.join(", "))
            }
        }
    }

    /// Sends SIGTERM to every node still running, then waits for each; one that does not exit
    /// in time is killed.
    pub async fn stop_all(&mut self) {
        self.report_exits();
        for node in self.list.iter().filter(|n| n.is_running()) {
            // A node that is already gone is no error.
            let _ = process::signal(node.child.id(), Signal::Term);
        }
        let deadline = Instant::now() + NODE_STOP_TIMEOUT;
        for node in self.list.iter_mut().filter(|n| n.exited.is_none()) {
            loop {
                match node.child.try_wait() {
                    Ok(Some(status)) => {
                        println!("{} stopped ({})", node.id(), describe(status));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => sleep(WATCH_INTERVAL / 5).await,
                    Ok(None) => {
                        println!(
                            "{} did not stop within {NODE_STOP_TIMEOUT:?}; killing it",
                            node.id()
                        );
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

    /// `{"nodes": [{"id", "endpoint", "http_addr", "peer_addr", "data_dir", "log", "pid"}]}`.
    pub fn endpoints_json(&self) -> serde_json::Value {
        let nodes: Vec<serde_json::Value> = self
            .list
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

    /// `  n1  http://...  peer ...  pid ...  log ...`
    pub fn describe_node(&self, index: usize) -> String {
        let node = &self.list[index];
        format!(
            "  {}  {}  peer {}  pid {}  log {}",
            node.id(),
            node.announcement.endpoint,
            node.announcement.peer_addr,
            node.child.id(),
            node.options.log_path().display()
        )
    }

    /// The running nodes' ids and endpoints.
    pub fn running(&self) -> Vec<(String, String)> {
        self.list
            .iter()
            .filter(|n| n.is_running())
            .map(|n| (n.id().to_owned(), n.announcement.endpoint.clone()))
            .collect()
    }
}

/// The loud line of a node that did not get its preferred ports. For n1 it says what that
/// means: the README's `localhost:7700` reaches another program, not this demo.
fn warn_taken(announcement: &Announcement, taken: &str, first: bool) {
    let (id, endpoint) = (&announcement.node_id, &announcement.endpoint);
    eprintln!("!! {id}: {taken} is taken by another program; {id} listens on {endpoint} instead");
    if first {
        eprintln!(
            "!! the README's examples (localhost:7700) would reach that other program, not this \
             demo: add --endpoint {endpoint} to concord commands, or export \
             CONCORD_ENDPOINT={endpoint}, and use it instead of localhost:7700 with curl"
        );
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(0), _) => "clean exit".to_owned(),
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(9)) => "killed by SIGKILL".to_owned(),
        (None, Some(15)) => "killed by SIGTERM".to_owned(),
        (None, Some(6)) => "aborted: a panic, see its log".to_owned(),
        _ => status.to_string(),
    }
}

/// Whether an exit is the node's own doing (an error, a panic) rather than a signal sent to it
/// or a clean stop: then its log says why.
fn exited_on_its_own(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => code != 0,
        (None, Some(signal)) => !matches!(signal, 9 | 15),
        (None, None) => true,
    }
}
