//! `concord server`: run a node until SIGINT or SIGTERM, or until it has left the cluster.
//!
//! Precedence of settings: built-in defaults, then the TOML file (`--config`), then `CONCORD_*`
//! environment variables, then these flags.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use concord_http::server::ServeOptions;
use concord_node::{Config, Node};
use tokio::net::TcpListener;

/// Flags of `concord server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML config file (every key is documented in the README).
    #[arg(long, env = "CONCORD_CONFIG", hide_env_values = true)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./concord-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:7700]; port 0 picks a free port.
    #[arg(long)]
    pub http_addr: Option<String>,
    /// Peer (node-to-node) listen address [default: 127.0.0.1:7701].
    #[arg(long)]
    pub peer_addr: Option<String>,
    /// HTTP address announced to clients and peers [default: the listen address].
    #[arg(long)]
    pub advertise_http: Option<String>,
    /// Peer address announced to other nodes [default: the peer listen address].
    #[arg(long)]
    pub advertise_peer: Option<String>,
    /// Peer address of a member to join (repeatable); ignored once the node is a member.
    #[arg(long)]
    pub join: Vec<String>,
    /// Node name, fixed at first start [default: drawn at random].
    #[arg(long)]
    pub node_id: Option<String>,
    /// Serve the fault-injection endpoints (tests and game days only).
    #[arg(long)]
    pub enable_fault_injection: bool,
}

impl ServerArgs {
    /// Builds the configuration: file, then environment, then flags.
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        let set = |field: &mut String, flag: &Option<String>| {
            if let Some(value) = flag {
                field.clone_from(value);
            }
        };
        if let Some(dir) = &self.data_dir {
            config.node.data_dir.clone_from(dir);
        }
        set(&mut config.http.addr, &self.http_addr);
        set(&mut config.peer.addr, &self.peer_addr);
        set(&mut config.http.advertise, &self.advertise_http);
        set(&mut config.peer.advertise, &self.advertise_peer);
        set(&mut config.node.id, &self.node_id);
        if !self.join.is_empty() {
            config.cluster.join.clone_from(&self.join);
        }
        config.admin.enable_fault_injection |= self.enable_fault_injection;
        config.validate()?;
        Ok(config)
    }
}

/// Runs the server until SIGINT or SIGTERM, then drains and flushes; exits 0 on a clean stop.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    init_logging();
    let config = args.config()?;
    tracing::debug!(?config, "resolved configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("concord-worker")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Signal handlers first, so a SIGTERM during startup is a clean stop, not a kill.
    let shutdown = shutdown_signal()?;
    // The HTTP listener is bound first so the address recorded in the cluster is the real one.
    let listener = TcpListener::bind(&config.http.addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.addr))?;
    let local = listener.local_addr()?;
    let advertised = if config.http.advertise.is_empty() {
        local.to_string()
    } else {
        config.http.advertise.clone()
    };
    let node = Node::start(config.clone(), advertised).await?;
    let db = node.database().clone();
    db.set_ready(true);
    // Tests, the demo and scripts read this line to learn the ports.
    println!(
        "{}",
        concord_client::startup::Announcement::line(
            db.identity().node_id.as_str(),
            &local.to_string(),
            node.peer_addr(),
            &config.node.data_dir.display().to_string(),
        )
    );
    tracing::info!(node = %db.identity().node_id, cluster = %db.identity().cluster_id, %local, "serving");

    let app = concord_http::router(db.clone(), concord_http::Limits::from_config(&config));
    let options = ServeOptions {
        max_connections: config.http.max_connections,
        header_read_timeout: Duration::from_millis(config.http.header_read_timeout_ms),
        drain_timeout: Duration::from_millis(config.limits.request_timeout_ms),
    };
    // A node that left the cluster (or was removed) stops as if signalled, and says so.
    let stop = async {
        tokio::select! {
            () = shutdown => {}
            _ = node.departed() => {}
        }
    };
    concord_http::server::serve(listener, app, options, stop).await;
    db.set_ready(false);
    node.shutdown().await.context("flushing storage at shutdown")?;
    match node.departure() {
        Some(departed) => println!("concord node stopped: {departed}"),
        None => println!("concord node {} stopped cleanly", db.identity().node_id),
    }
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        }
    })
}

/// The log filter when `CONCORD_LOG` is unset or invalid: Concord's own crates at info, its
/// dependencies (fjall, lsm-tree, openraft, hyper) only when they warn, so that start-up says
/// what Concord did rather than how the storage engine opened its files.
const LOG_FILTER_DEFAULT: &str = "warn,concord=info";

/// openraft logs every failed call to a follower that is down, five lines twice a second;
/// `concord_meta::network` logs the peer's reachability changes instead, so these are off
/// unless `CONCORD_LOG` names openraft itself.
const LOG_FILTER_RAFT_RETRIES: &str =
    "openraft::replication=off,openraft::engine::handler::replication_handler=error";

fn init_logging() {
    let asked = std::env::var("CONCORD_LOG").unwrap_or_default();
    let filter = log_filter(&asked);
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter("")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours_wanted())
        .with_writer(std::io::stderr)
        .init();
}

/// Colour codes only for a person at a terminal: not in a log file or a pipe, and not when
/// `NO_COLOR` is set (no-color.org).
fn colours_wanted() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The filter for `CONCORD_LOG=asked`: the default if empty, and openraft's per-retry lines
/// off unless it names openraft.
fn log_filter(asked: &str) -> String {
    if asked.trim().is_empty() {
        format!("{LOG_FILTER_DEFAULT},{LOG_FILTER_RAFT_RETRIES}")
    } else if asked.contains("openraft") {
        asked.to_owned()
    } else {
        format!("{asked},{LOG_FILTER_RAFT_RETRIES}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_retry_lines_are_off_unless_openraft_is_asked_for() {
        assert_eq!(
            log_filter(""),
            "warn,concord=info,openraft::replication=off,\
             openraft::engine::handler::replication_handler=error"
        );
        assert_eq!(
            log_filter("debug"),
            "debug,openraft::replication=off,openraft::engine::handler::replication_handler=error"
        );
        assert_eq!(log_filter("info,openraft=debug"), "info,openraft=debug");
        tracing_subscriber::EnvFilter::try_new(log_filter("")).expect("a valid filter");
    }
}
