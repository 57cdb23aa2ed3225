//! [`ServerOptions`]: how to start one `concord server`, and the one place its command line is
//! built; [`Layout`]: which options node `i` of a local cluster gets, on which [`Ports`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Error;

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
    /// Extra environment variables (`CONCORD_*`), set after the launcher's own.
    pub env: Vec<(String, String)>,
    /// Run the process inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

impl ServerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            node_id: None,
            http_addr: FREE_PORT.to_owned(),
            peer_addr: FREE_PORT.to_owned(),
            join: Vec::new(),
            fault_injection: false,
            args: Vec::new(),
            env: Vec::new(),
            netns: None,
        }
    }

    /// Runs the node inside network namespace `name`.
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

    /// `<data dir>.out`: where the process's stdout goes when it outlives its launcher.
    pub fn stdout_path(&self) -> PathBuf {
        self.data_dir.with_extension("out")
    }

    /// `<data dir>.pid`: the process id of a node that outlives its launcher.
    pub fn pid_path(&self) -> PathBuf {
        self.data_dir.with_extension("pid")
    }

    /// The name used in messages: the node id, else the data dir.
    pub fn name(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| self.data_dir.display().to_string())
    }

    /// The `concord server` command for these options, stderr appended to the log; stdout is
    /// left to the caller.
    pub fn command(&self, binary: &Path) -> Result<Command, Error> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(Error::io(format!("creating {}", self.data_dir.display())))?;
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io(format!("opening {}", log_path.display())))?;
        // `ip netns exec` execs the binary in place: the child's pid is the server's.
        let mut command = match &self.netns {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(self.server_args());
        command
            // Logs are files: no terminal colour codes in them.
            .env("NO_COLOR", "1")
            .envs(self.env.iter().cloned())
            .stdin(Stdio::null())
            .stderr(log);
        Ok(command)
    }

    /// The arguments after the binary: `server --data-dir ... --http-addr ... ...`.
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "server".to_owned(),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
            "--http-addr".to_owned(),
            self.http_addr.clone(),
            "--peer-addr".to_owned(),
            self.peer_addr.clone(),
        ];
        if let Some(id) = &self.node_id {
            args.extend(["--node-id".to_owned(), id.clone()]);
        }
        for seed in &self.join {
            args.extend(["--join".to_owned(), seed.clone()]);
        }
        if self.fault_injection {
            args.push("--enable-fault-injection".to_owned());
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

/// Which ports the nodes of a local cluster listen on. With a base port `P`, node `i` takes
/// HTTP `P + 2(i-1)` and peer the port after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Ports the OS picks: clusters that must not collide (tests, `concord demo --free-ports`).
    Free,
    /// Exactly the numbered ports, or the node fails to start: scripts that compute addresses
    /// (`concord demo --base-port P`).
    Fixed(u16),
    /// The numbered ports when they are free, else ports the OS picks, which the launcher says
    /// loudly (`concord demo`: `P` = 7700, so the README's examples reach `n1`). See
    /// [`crate::ports`].
    Preferred(u16),
}

impl Ports {
    /// The base port, if the nodes are numbered from one.
    pub fn base(self) -> Option<u16> {
        match self {
            Ports::Free => None,
            Ports::Fixed(base) | Ports::Preferred(base) => Some(base),
        }
    }
}

/// Where the nodes of a local cluster live: node `i` (1-based) is `n{i}` with data dir
/// `<root>/n{i}`, on the ports [`Ports`] gives it.
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_root: PathBuf,
    pub ports: Ports,
}

impl Layout {
    pub fn new(data_root: impl Into<PathBuf>, ports: Ports) -> Self {
        Self { data_root: data_root.into(), ports }
    }

    /// Refuses a base port whose range for `nodes` nodes does not fit.
    pub fn check(&self, nodes: u16) -> Result<(), Error> {
        if let Some(base) = self.ports.base() {
            let last = u32::from(base) + 2 * u32::from(nodes) - 1;
            if base == 0 || last > u32::from(u16::MAX) {
                return Err(Error::Layout(format!(
                    "base port {base}: {nodes} nodes need ports {base}..={last}"
                )));
            }
        }
        Ok(())
    }

    /// `n{i}`.
    pub fn id(i: u16) -> String {
        format!("n{i}")
    }

    /// `(http, peer)` listen addresses of node `i` as laid out (a preferred port that is taken
    /// is the launcher's business: [`crate::ports::keep_if_free`]).
    pub fn addrs(&self, i: u16) -> (String, String) {
        match self.ports.base() {
            Some(base) => {
                let http = u32::from(base) + 2 * (u32::from(i) - 1);
                (format!("127.0.0.1:{http}"), format!("127.0.0.1:{}", http + 1))
            }
            None => (FREE_PORT.to_owned(), FREE_PORT.to_owned()),
        }
    }

    /// The options of node `i`, joining through `seed` (a peer address) unless it founds the
    /// cluster.
    pub fn node(&self, i: u16, seed: Option<&str>) -> ServerOptions {
        assert!(i >= 1, "nodes are numbered from 1");
        let id = Self::id(i);
        let (http, peer) = self.addrs(i);
        let options = ServerOptions::new(self.data_root.join(&id)).node_id(&id).addrs(&http, &peer);
        match seed {
            Some(seed) => options.join(seed),
            None => options,
        }
    }
}

/// A listen address on loopback whose port the OS picks.
pub const FREE_PORT: &str = "127.0.0.1:0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_i_gets_its_id_dir_and_ports_from_the_base_port() {
        let layout = Layout::new("/tmp/c", Ports::Fixed(7700));
        let n3 = layout.node(3, Some("127.0.0.1:7701"));
        assert_eq!(
            n3.server_args(),
            [
                "server",
                "--data-dir",
                "/tmp/c/n3",
                "--http-addr",
                "127.0.0.1:7704",
                "--peer-addr",
                "127.0.0.1:7705",
                "--node-id",
                "n3",
                "--join",
                "127.0.0.1:7701"
            ]
        );
        assert_eq!(n3.log_path(), Path::new("/tmp/c/n3.log"));
        assert_eq!(n3.pid_path(), Path::new("/tmp/c/n3.pid"));
        let n1 = Layout::new("/tmp/c", Ports::Free).node(1, None);
        assert_eq!((n1.http_addr.as_str(), n1.peer_addr.as_str()), ("127.0.0.1:0", "127.0.0.1:0"));
        assert!(n1.join.is_empty());
    }

    #[test]
    fn a_base_port_range_past_the_last_port_is_refused() {
        assert!(Layout::new("/tmp", Ports::Fixed(65_530)).check(3).is_ok());
        assert!(Layout::new("/tmp", Ports::Fixed(65_531)).check(3).is_err());
        assert!(Layout::new("/tmp", Ports::Preferred(65_531)).check(3).is_err());
        assert!(Layout::new("/tmp", Ports::Fixed(0)).check(1).is_err());
        assert!(Layout::new("/tmp", Ports::Free).check(32).is_ok());
    }
}
