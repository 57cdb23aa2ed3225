//! The client commands (`kv`, `ns`, `cluster`): their flags and their printing. Each talks to
//! one endpoint through `concord-client`; no database logic lives here.
//!
//! - [`output`]: the `--output` format, tables, byte rendering.
//! - [`kv`], [`ns`], [`cluster`]: one module per command group; [`verify`]: `cluster verify`.

pub mod cluster;
pub mod kv;
pub mod ns;
pub mod output;
pub mod verify;

use std::future::Future;

use anyhow::Context as _;
use clap::Args;
use concord_client::Client;

use self::output::OutputFormat;

/// Flags shared by every client command. `global` lets them follow the subcommand
/// (`concord kv get NS KEY --output json`).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The HTTP API of any node of the cluster.
    #[arg(
        long,
        global = true,
        env = "CONCORD_ENDPOINT",
        // Help would show `[env: CONCORD_ENDPOINT=]` when it is unset, which reads as set empty.
        hide_env_values = true,
        default_value = "http://127.0.0.1:7700",
        value_name = "URL"
    )]
    pub endpoint: String,

    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

impl ClientArgs {
    /// A client of `--endpoint`.
    pub fn connect(&self) -> anyhow::Result<Client> {
        // The client's error already names the endpoint.
        Ok(Client::new(&self.endpoint)?)
    }
}

/// Runs one client command to completion on a single-threaded runtime: a command sends a
/// handful of requests, one after the other.
pub fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(command)
}
