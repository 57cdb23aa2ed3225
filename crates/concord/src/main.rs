//! The `concord` binary.

mod server;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "concord", version, about = "Concord: a distributed key-value database")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a Concord node.
    Server(server::ServerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(args),
    }
}
