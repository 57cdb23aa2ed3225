//! Test support for process-level tests: start the real `concord` binary on ephemeral ports,
//! stop it gracefully or with SIGKILL, restart it on the same data dir, and draw replayable
//! random seeds.
//!
//! Dev-only: nothing here ships in the binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a node may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a node.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    /// Extra `concord server` flags.
    pub args: Vec<String>,
    /// Extra environment variables (`CONCORD_*`).
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), args: Vec::new(), env: Vec::new() }
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }
}

/// A running `concord server` process.
pub struct TestServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub options: ServerOptions,
    binary: PathBuf,
    log_path: PathBuf,
}

impl TestServer {
    /// Starts the binary on an ephemeral port and waits until it prints its endpoint.
    pub fn start(binary: &Path, options: ServerOptions) -> anyhow::Result<TestServer> {
        std::fs::create_dir_all(&options.data_dir)?;
        let log_path = options.data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut child = Command::new(binary)
            .arg("server")
            .arg("--data-dir")
            .arg(&options.data_dir)
            .args(["--http-addr", "127.0.0.1:0", "--peer-addr", "127.0.0.1:0"])
            .args(&options.args)
            .envs(options.env.iter().cloned())
            .env("CONCORD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        // Keeps draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        let endpoint = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        break rest.split_whitespace().next().unwrap_or_default().to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "server did not start within {START_TIMEOUT:?}; log:\n{}",
                        tail(&log_path)
                    );
                }
            }
        };
        Ok(TestServer { child, endpoint, options, binary: binary.to_path_buf(), log_path })
    }

    /// Kills the process with SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
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

    /// Starts a new process on the same data dir (after `kill9` or `terminate`).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let next = TestServer::start(&self.binary, self.options.clone())?;
        let old = std::mem::replace(self, next);
        drop(old);
        Ok(())
    }

    /// The last lines the server logged, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log_path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The seed of a randomized test: `CONCORD_TEST_SEED` if set (to replay a failure), otherwise
/// fresh. Always printed, so any failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("CONCORD_TEST_SEED") {
        Ok(value) => value.parse().expect("CONCORD_TEST_SEED must be a u64"),
        Err(_) => rand::random(),
    };
    println!("{test}: seed {seed} (replay with CONCORD_TEST_SEED={seed})");
    seed
}
