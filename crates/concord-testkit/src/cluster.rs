//! [`TestCluster`]: a cluster of real `concord server` processes on loopback.
//!
//! Node `i` (0-based) is node `i+1` of the shared launcher's [`Layout`] (the one `concord demo`
//! uses): id `n{i+1}`, data dir and log in one temporary directory, free ports. `n1` founds
//! the cluster; every other node joins through `n1`'s peer address. Nodes can be stopped,
//! killed, frozen and restarted (on the same ports), and [`TestCluster::wait_for`] polls a check
//! until it holds or a deadline passes, failing with the check's last answer and every node's
//! log tail. If the test panics, the logs are printed and the directory is kept.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use concord_client::{Client, ClientConfig, ClusterStatus};
use concord_launch::{Layout, Ports, ready};

use crate::server::{Exited, ServerOptions, TestServer};

/// Time between two checks of [`TestCluster::wait_for`].
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Time a node gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node's process is doing, as far as the test made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Running,
    /// Frozen by SIGSTOP.
    Paused,
    /// Exited: stopped, killed, or never came back.
    Stopped,
}

struct ClusterNode {
    server: TestServer,
    state: ProcessState,
    /// A client with short deadlines, rebuilt at every restart.
    client: Client,
}

/// A cluster of `concord server` processes. Dropping it kills every process.
pub struct TestCluster {
    binary: PathBuf,
    nodes: Vec<ClusterNode>,
    /// Holds the data dirs and logs; `None` once kept for a failed test.
    dir: Option<tempfile::TempDir>,
}

impl TestCluster {
    /// Starts `n` nodes: `n1` first, then each other node with `--join` to `n1`'s peer address.
    /// `options(i, defaults)` may change node `i`'s options (fault injection, environment);
    /// the defaults carry the node id, the data dir and, past `n1`, the join address.
    pub fn start(
        binary: &Path,
        n: usize,
        options: impl Fn(usize, ServerOptions) -> ServerOptions,
    ) -> anyhow::Result<TestCluster> {
        assert!(n >= 1, "a cluster has at least one node");
        let dir = tempfile::Builder::new().prefix("concord-cluster-").tempdir()?;
        let mut cluster =
            TestCluster { binary: binary.to_path_buf(), nodes: Vec::new(), dir: Some(dir) };
        cluster.spawn(options(0, cluster.default_options(0)))?;
        let seed = cluster.node(0).peer_addr().to_owned();
        for i in 1..n {
            let defaults = cluster.default_options(i).join(&seed);
            cluster.spawn(options(i, defaults))?;
        }
        Ok(cluster)
    }

    /// Starts one more node, `n{len+1}`, joining through node `through`'s peer address; returns
    /// its index.
    pub fn add(
        &mut self,
        through: usize,
        options: impl FnOnce(ServerOptions) -> ServerOptions,
    ) -> anyhow::Result<usize> {
        let i = self.nodes.len();
        let defaults = self.default_options(i).join(self.node(through).peer_addr());
        self.spawn(options(defaults))?;
        Ok(i)
    }

    /// Options for a node outside the cluster's numbering (`name` is its id and dir name), to
    /// start with [`TestServer::start`] or [`TestServer::run_to_exit`]; its files live and die
    /// with the cluster's.
    pub fn outsider_options(&self, name: &str) -> ServerOptions {
        ServerOptions::new(self.dir().join(name)).node_id(name)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The id of node `i`: `n{i+1}`.
    pub fn id(&self, i: usize) -> &str {
        self.node(i).node_id()
    }

    /// The index of the node with this id.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.server.node_id() == id)
    }

    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i].server
    }

    pub fn state(&self, i: usize) -> ProcessState {
        self.nodes[i].state
    }

    /// Indices of the nodes whose process runs (not frozen, not stopped).
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].state == ProcessState::Running).collect()
    }

    /// A client of node `i` with short deadlines (2 s to connect, 5 s per request).
    pub fn client(&self, i: usize) -> Client {
        self.nodes[i].client.clone()
    }

    /// The directory holding every node's data dir and log.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the cluster directory is held until drop").path()
    }

    /// Stops node `i` with SIGTERM and waits for it to exit.
    pub fn stop(&mut self, i: usize) -> anyhow::Result<ExitStatus> {
        println!("stop {} (SIGTERM, pid {})", self.id(i), self.node(i).pid());
        let node = &mut self.nodes[i];
        node.state = ProcessState::Stopped;
        node.server.terminate(STOP_TIMEOUT)
    }

    /// Waits until node `i` exits on its own (it left the cluster, or was removed), up to
    /// `timeout`.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> anyhow::Result<Exited> {
        println!("wait for {} to exit on its own", self.id(i));
        let node = &mut self.nodes[i];
        let exited = node.server.wait_exit(timeout)?;
        node.state = ProcessState::Stopped;
        Ok(exited)
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill9(&mut self, i: usize) {
        println!("kill -9 {} (pid {})", self.id(i), self.node(i).pid());
        let node = &mut self.nodes[i];
        node.state = ProcessState::Stopped;
        node.server.kill9();
    }

    /// Freezes node `i` with SIGSTOP.
    pub fn sigstop(&mut self, i: usize) -> anyhow::Result<()> {
        println!("kill -STOP {} (pid {})", self.id(i), self.node(i).pid());
        self.nodes[i].server.sigstop()?;
        self.nodes[i].state = ProcessState::Paused;
        Ok(())
    }

    /// Resumes node `i` with SIGCONT.
    pub fn sigcont(&mut self, i: usize) -> anyhow::Result<()> {
        println!("kill -CONT {} (pid {})", self.id(i), self.node(i).pid());
        self.nodes[i].server.sigcont()?;
        self.nodes[i].state = ProcessState::Running;
        Ok(())
    }

    /// Restarts node `i` (after `stop` or `kill9`) on its data dir and its HTTP and peer ports.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        assert_eq!(node.state, ProcessState::Stopped, "restart of a node that was not stopped");
        node.server.restart().with_context(|| format!("restarting n{}", i + 1))?;
        node.client = short_client(&node.server.endpoint)?;
        node.state = ProcessState::Running;
        println!(
            "restarted {} at {} (pid {})",
            self.id(i),
            self.node(i).endpoint,
            self.node(i).pid()
        );
        Ok(())
    }

    /// `GET /v1/cluster` from every running node, as `(index, status)`; `Err` names the first
    /// node that did not answer.
    pub async fn statuses(&self) -> Result<Vec<(usize, ClusterStatus)>, String> {
        let mut statuses = Vec::new();
        for i in self.running() {
            let status = self.client(i).cluster().await;
            let status = status.map_err(|e| format!("{} did not answer: {e:#}", self.id(i)))?;
            statuses.push((i, status));
        }
        Ok(statuses)
    }

    /// `Ok` when every running node sees each of `nodes` up and can connect to it (a restarted
    /// node is "up" before its peers' connect back-off from its downtime has ended); otherwise
    /// the first that does not.
    pub async fn check_up(&self, nodes: &[usize]) -> Result<(), String> {
        let ids: Vec<&str> = nodes.iter().map(|&j| self.id(j)).collect();
        for (i, status) in self.statuses().await? {
            ready::sees_up(&status, &ids).map_err(|seen| format!("{} sees {seen}", self.id(i)))?;
        }
        Ok(())
    }

    /// The partitions of namespace `ns` whose replicas' anti-entropy roots differ, or that a
    /// replica did not answer for, as node `n1` reports them (`GET /v1/cluster/partitions/{p}`).
    pub async fn disagreeing(&self, ns: &str) -> anyhow::Result<Vec<u32>> {
        let client = self.client(0);
        let partitions = client.ring().await?.partitions.len() as u32;
        let mut out = Vec::new();
        for p in 0..partitions {
            if !client.partition(p, ns).await?.fully_agree() {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Waits until every running node knows namespace `ns`: a namespace is created through one
    /// node, and the others learn of it when they apply the metadata entry.
    pub async fn wait_for_namespace(&self, ns: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_for(&format!("namespace {ns} on every node"), timeout, async || {
            for i in self.running() {
                if let Err(e) = self.client(i).namespace(ns).await {
                    return Err(format!("{}: {e:#}", self.id(i)));
                }
            }
            Ok(())
        })
        .await
    }

    /// `Ok` when every running node lists node `id` in `state`; otherwise what they say.
    pub async fn check_state_everywhere(&self, id: &str, state: &str) -> Result<(), String> {
        let mut wrong = Vec::new();
        for (i, status) in self.statuses().await? {
            let seen = status.node(id).map_or("absent", |node| node.state.as_str());
            if seen != state {
                wrong.push(format!("{} sees {id} {seen}", self.id(i)));
            }
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join(", ")) }
    }

    /// Polls `check` every 100 ms until it returns `Ok` or `timeout` passes. `check` answers
    /// `Err(what it saw)` while the condition does not hold; on timeout the error carries `what`,
    /// the last answer and every node's log tail.
    pub async fn wait_for<F>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> anyhow::Result<()>
    where
        F: AsyncFnMut() -> Result<(), String>,
    {
        println!("waiting up to {timeout:?} for {what}");
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = "no answer yet".to_owned();
        loop {
            match tokio::time::timeout_at(deadline, check()).await {
                Ok(Ok(())) => {
                    println!("  {what}: after {:.1?}", started.elapsed());
                    return Ok(());
                }
                Ok(Err(seen)) => last = seen,
                Err(_) => break,
            }
            if tokio::time::Instant::now() + POLL_INTERVAL > deadline {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        bail!(
            "timed out after {timeout:?} waiting for {what}; last seen: {last}\n{}",
            self.log_tails()
        )
    }

    /// Every node's log tail, under a header naming the node.
    pub fn log_tails(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let id = node.server.node_id();
            text.push_str(&format!("--- log of {id} ({:?}) ---\n", node.state));
            text.push_str(&node.server.log_tail());
            text.push('\n');
        }
        text
    }

    /// Node `i`'s options from the launcher's layout, without `--join` (the callers add it).
    fn default_options(&self, i: usize) -> ServerOptions {
        let number = u16::try_from(i + 1).expect("fewer than 65535 nodes");
        Layout::new(self.dir(), Ports::Free).node(number, None)
    }

    fn spawn(&mut self, options: ServerOptions) -> anyhow::Result<()> {
        let server = TestServer::start(&self.binary, options)?;
        println!(
            "started {} at {} peer {} (pid {})",
            server.node_id(),
            server.endpoint,
            server.peer_addr(),
            server.pid()
        );
        let client = short_client(&server.endpoint)?;
        self.nodes.push(ClusterNode { server, state: ProcessState::Running, client });
        Ok(())
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            println!("{}", self.log_tails());
            if let Some(dir) = self.dir.take() {
                println!("cluster files kept in {}", dir.keep().display());
            }
        }
    }
}

/// A client that gives up quickly, so a check against a dead or frozen node fails fast.
fn short_client(endpoint: &str) -> anyhow::Result<Client> {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    Ok(Client::with_config(endpoint, config)?)
}
