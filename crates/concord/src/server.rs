//! `concord server`: run a node. (Being written: the node and HTTP crates land next.)

use clap::Args;

/// Flags of `concord server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML config file.
    #[arg(long, env = "CONCORD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(_args: ServerArgs) -> anyhow::Result<()> {
    anyhow::bail!("server not implemented yet")
}
