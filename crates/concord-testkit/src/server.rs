//! [`TestServer`]: one `concord server` process, started from [`ServerOptions`] by the shared
//! launcher (`concord-launch`, which `concord demo` uses too), with its stderr in a log file
//! beside its data dir (`<data dir>.log`, appended across restarts).
//!
//! The process announces itself on stdout with
//! `concord node <ID> listening on http://<HTTP_ADDR> peer <PEER_ADDR> (data dir <DIR>)`; that
//! line is the only thing read from it, and it is how ports picked by the OS (port 0) are
//! learned.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use concord_client::startup::Announcement;
use concord_launch::process::{self, LOG_TAIL_LINES, Signal, StdoutTo};

pub use concord_launch::ServerOptions;

/// How long a node may take to start serving (a joining node waits for the cluster metadata).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a restart keeps retrying while its fixed ports are still held by someone else.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Tests read logs as files, at info level whatever the environment says.
fn test_options(options: &ServerOptions) -> ServerOptions {
    options.clone().env("CONCORD_LOG", "info")
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
        let started =
            process::start(binary, &test_options(&options), StdoutTo::Pipe, START_TIMEOUT)
                .with_context(|| format!("starting {}", binary.display()))?;
        let (child, announcement) = (started.child, started.announcement);
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
        let mut command = test_options(options).command(binary)?;
        let mut child: Child = command.stdout(Stdio::piped()).spawn()?;
        let lines = process::drain_stdout(&mut child);
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
        self.signal(Signal::Term)?;
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

    /// Waits for the process to exit on its own (a node that left the cluster), up to
    /// `timeout`; fails if it is still running then.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<Exited> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.options.log_path()).unwrap_or_default();
                return Ok(Exited { status, log });
            }
            if Instant::now() > deadline {
                bail!("server still runs after {timeout:?}; log:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes the process (SIGSTOP): it holds its sockets but answers nothing.
    pub fn sigstop(&self) -> anyhow::Result<()> {
        self.signal(Signal::Stop)
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn sigcont(&self) -> anyhow::Result<()> {
        self.signal(Signal::Cont)
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

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        Ok(process::signal(self.child.id(), signal)?)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Whether a failed start was a listener finding its port taken.
fn is_port_taken(err: &anyhow::Error) -> bool {
    let text = format!("{err:#}");
    text.contains("Address already in use") || text.contains("AddrInUse")
}

fn tail(path: &Path) -> String {
    process::tail(path, LOG_TAIL_LINES)
}
