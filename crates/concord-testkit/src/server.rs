//! [`TestServer`]: one `concord server` process, started from [`ServerOptions`], with its stderr
//! in a log file beside its data dir (`<data dir>.log`, appended across restarts).
//!
//! The process announces itself on stdout with
//! `concord node <ID> listening on http://<HTTP_ADDR> peer <PEER_ADDR> (data dir <DIR>)`; that
//! line is the only thing read from it, and it is how ports picked by the OS (port 0) are
//! learned.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use concord_client::startup::Announcement;

/// How long a node may take to start serving (a joining node waits for the cluster metadata).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a restart keeps retrying while its fixed ports are still held by someone else.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of the log shown in failure messages.
const LOG_TAIL_LINES: usize = 40;

/// How to start a node.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    /// `--node-id`; `None` lets the node draw one.
    pub node_id: Option<String>,
    /// `--http-addr`; default `127.0.0.1:0` (a free port).
    pub http_addr: String,
    /// `--peer-addr`; default `127.0.0.1:0` (a free port).
    pub peer_addr: String,
    /// `--join` peer addresses.
    pub join: Vec<String>,
    /// `--enable-fault-injection`.
    pub fault_injection: bool,
    /// Extra `concord server` flags.
    pub args: Vec<String>,
    /// Extra environment variables (`CONCORD_*`).
    pub env: Vec<(String, String)>,
    /// Run the process inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

impl ServerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            node_id: None,
            http_addr: "127.0.0.1:0".to_owned(),
            peer_addr: "127.0.0.1:0".to_owned(),
            join: Vec::new(),
            fault_injection: false,
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
        }
    }

    /// Runs the node inside network namespace `name` (see [`crate::netns`]).
    pub fn netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_owned());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = Some(id.to_owned());
        self
    }

    /// Fixed listen addresses (`host:port`) for the HTTP API and the peer port.
    pub fn addrs(mut self, http_addr: &str, peer_addr: &str) -> Self {
        self.http_addr = http_addr.to_owned();
        self.peer_addr = peer_addr.to_owned();
        self
    }

    /// Joins the cluster of the member whose peer address is `peer_addr` (repeatable).
    pub fn join(mut self, peer_addr: &str) -> Self {
        self.join.push(peer_addr.to_owned());
        self
    }

    pub fn fault_injection(mut self) -> Self {
        self.fault_injection = true;
        self
    }

    /// `<data dir>.log`: where the process's stderr goes.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    /// The `concord server` command for these options, stderr appended to the log.
    fn command(&self, binary: &Path) -> anyhow::Result<Command> {
        std::fs::create_dir_all(&self.data_dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path())?;
        // `ip netns exec` execs the binary in place: the child's pid is the server's.
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.arg("server").arg("--data-dir").arg(&self.data_dir).args([
            "--http-addr",
            &self.http_addr,
            "--peer-addr",
            &self.peer_addr,
        ]);
        if let Some(id) = &self.node_id {
            command.args(["--node-id", id]);
        }
        for seed in &self.join {
            command.args(["--join", seed]);
        }
        if self.fault_injection {
            command.arg("--enable-fault-injection");
        }
        command
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .env("CONCORD_LOG", "info")
            // Logs are read as files, in failure messages: no terminal colour codes.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        Ok(command)
    }
}

/// What a process that was expected to exit did.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    /// Its whole log (stderr).
    pub log: String,
}

/// A running `concord server` process.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub options: ServerOptions,
    node_id: String,
    /// `127.0.0.1:PORT` of the peer listener.
    peer_addr: String,
    binary: PathBuf,
}

impl TestServer {
    /// Starts the binary and waits until it prints its startup line.
    pub fn start(binary: &Path, options: ServerOptions) -> anyhow::Result<TestServer> {
        let mut child = options
            .command(binary)?
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let lines = drain_stdout(&mut child);
        let log_path = options.log_path();
        let deadline = Instant::now() + START_TIMEOUT;
        let announcement = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(announcement) = Announcement::parse(&line) {
                        break announcement;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait()?;
                    bail!("server exited with {status} before serving; log:\n{}", tail(&log_path));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "server did not start within {START_TIMEOUT:?}; log:\n{}",
                        tail(&log_path)
                    );
                }
            }
        };
        Ok(TestServer {
            child,
            endpoint: announcement.endpoint,
            options,
            node_id: announcement.node_id,
            peer_addr: announcement.peer_addr,
            binary: binary.to_path_buf(),
        })
    }

    /// Runs the binary with `options` expecting it to exit on its own within `timeout` (a
    /// refused start); fails if it starts serving instead.
    pub fn run_to_exit(
        binary: &Path,
        options: &ServerOptions,
        timeout: Duration,
    ) -> anyhow::Result<Exited> {
        let mut child = options.command(binary)?.spawn()?;
        let lines = drain_stdout(&mut child);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(options.log_path()).unwrap_or_default();
                return Ok(Exited { status, log });
            }
            let started = lines.try_iter().any(|line| Announcement::parse(&line).is_some());
            if started || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let what =
                    if started { "started serving instead of exiting" } else { "did not exit" };
                bail!("server {what}; log:\n{}", tail(&options.log_path()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The node id it announced.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// `host:port` of the HTTP API.
    pub fn http_addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// `host:port` of the peer listener, for other nodes' `--join`.
    pub fn peer_addr(&self) -> &str {
        &self.peer_addr
    }

    /// Kills the process with SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal("TERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill9();
                bail!("server did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Freezes the process (SIGSTOP): it holds its sockets but answers nothing.
    pub fn sigstop(&self) -> anyhow::Result<()> {
        self.signal("STOP")
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn sigcont(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    /// Whether the process has not exited (a frozen process is running).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts a new process on the same data dir and the same HTTP and peer ports (after
    /// `kill9` or `terminate`). Retries for a while if a port is still held.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let mut options = self.options.clone();
        options.http_addr = self.http_addr().to_owned();
        options.peer_addr.clone_from(&self.peer_addr);
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let next = loop {
            match TestServer::start(&self.binary, options.clone()) {
                Ok(next) => break next,
                Err(err) if is_port_taken(&err) && Instant::now() < deadline => {
                    println!("restart of {}: a port is still taken, retrying", self.node_id);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(err),
            }
        };
        let old = std::mem::replace(self, next);
        drop(old);
        Ok(())
    }

    /// The last lines the server logged, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.options.log_path())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `SIG<name>` with `kill(1)`, which saves a dependency on libc bindings.
    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([&format!("-{name}"), &pid]).status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Forwards the child's stdout lines to a channel from a thread that keeps draining it, so the
/// server never blocks on a full pipe.
fn drain_stdout(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    lines_rx
}

/// Parses `concord node <ID> listening on http://<HTTP> peer <PEER> (data dir <DIR>)`.
/// Whether a failed start was a listener finding its port taken.
fn is_port_taken(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}");
    text.contains("Address already in use") || text.contains("AddrInUse")
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
