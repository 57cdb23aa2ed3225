//! The `concord` binary: argument handling and printing only.
//!
//! - `concord server`: run a node ([`server`]).
//! - `concord demo`: a local cluster of child `concord server` processes ([`demo`]).
//! - `concord kv|ns|cluster`: client commands over the HTTP API ([`cli`]).
//! - `concord bench`: a closed-loop load generator ([`bench`]).
//!
//! Every command returns `anyhow::Result`; `main` prints the error once, as
//! `error: <message> (<code>, HTTP <status>)` for server errors, and exits non-zero. A panic is
//! a bug: the panic hook prints it and aborts rather than letting the process limp on.

mod bench;
mod cli;
mod demo;
mod environment;
mod server;

use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the data path allocates many short-lived values of about
/// a kilobyte on several threads, and glibc's consolidation and bin management were about an
/// eighth of all CPU samples during a handoff under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run a local cluster of N nodes until Ctrl-C, n1 on localhost:7700 when free (data in a
    /// temporary directory); kill and restart its nodes to watch the cluster react.
    Demo(demo::DemoArgs),
    /// Read, write, delete and list keys.
    Kv(cli::kv::KvArgs),
    /// Create, list, show, update and delete namespaces.
    Ns(cli::ns::NsArgs),
    /// Show cluster members and the partition ring; decommission or remove nodes.
    Cluster(cli::cluster::ClusterArgs),
    /// Load a cluster with a closed loop of reads and writes and report latency.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = parse_command_line();
    if let Err(err) =
        environment::check(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()))
    {
        return report_error(&err);
    }
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Kv(args) => cli::kv::run(args),
        Command::Ns(args) => cli::ns::run(args),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report_error(&err),
    }
}

/// The command line, with `server --help` completed by the environment variables (generated
/// from the config keys, so it cannot go stale).
fn parse_command_line() -> Cli {
    let command = Cli::command().mut_subcommand("server", |server| {
        server
            .after_help(
                "Every config key is also read from CONCORD_<SECTION>_<KEY> (e.g. \
                 CONCORD_STORAGE_DURABILITY); --help lists them.",
            )
            .after_long_help(environment::server_help())
    });
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|err| err.exit())
}

/// Prints the default panic message, then aborts: after a broken invariant nothing the process
/// does can be trusted, unwinding included.
fn install_panic_hook() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::abort();
    }));
}

/// Prints `err` on stderr and picks the exit status.
fn report_error(err: &anyhow::Error) -> ExitCode {
    // The reader of a pipe went away (`concord kv list NS --all | head`): not a failure.
    let broken_pipe = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|cause| cause.kind() == io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let mut stderr = io::stderr().lock();
    // `concord_client::Error::Api` displays as `<message> (<code>, HTTP <status>)`.
    let _ = writeln!(stderr, "error: {err:#}");
    let details = err.chain().find_map(|cause| match cause.downcast_ref() {
        Some(concord_client::Error::Api { details, .. }) if !is_empty(details) => Some(details),
        _ => None,
    });
    if let Some(details) = details {
        let _ = writeln!(stderr, "details: {details}");
    }
    ExitCode::FAILURE
}

/// Whether error details say nothing: `null` or `{}`.
fn is_empty(details: &serde_json::Value) -> bool {
    details.is_null() || details.as_object().is_some_and(serde_json::Map::is_empty)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Clap's own consistency checks: no flag defined twice, defaults valid, and so on.
    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Client flags may follow the subcommand, and the endpoint has its documented default.
    #[test]
    fn client_flags_are_global() {
        let cli = Cli::try_parse_from(["concord", "kv", "get", "ns", "k", "--output", "json"]);
        assert!(cli.is_ok(), "{cli:?}");
        let cli = Cli::try_parse_from(["concord", "cluster", "--endpoint", "h:1", "ring"]);
        assert!(cli.is_ok(), "{cli:?}");
    }

    /// `demo` takes a node count and a base port; membership changes take one node id.
    #[test]
    fn demo_and_membership_commands_parse() {
        let cli = Cli::try_parse_from(["concord", "demo", "--nodes", "5", "--base-port", "9000"]);
        assert!(cli.is_ok(), "{cli:?}");
        assert!(Cli::try_parse_from(["concord", "demo", "--nodes", "0"]).is_err());
        let launcher = ["concord", "demo", "--data-root", "/tmp/c", "--detach", "--only", "2"];
        assert!(Cli::try_parse_from(launcher).is_ok());
        let detached_in_a_temporary_dir = ["concord", "demo", "--detach"];
        assert!(Cli::try_parse_from(detached_in_a_temporary_dir).is_err());
        assert!(Cli::try_parse_from(["concord", "demo", "--data-root", "/c", "--stop"]).is_ok());
        assert!(Cli::try_parse_from(["concord", "demo", "--free-ports"]).is_ok());
        let both = ["concord", "demo", "--free-ports", "--base-port", "9000"];
        assert!(Cli::try_parse_from(both).is_err(), "free ports or fixed ports, not both");
        for change in ["leave", "remove"] {
            let cli = Cli::try_parse_from(["concord", "cluster", change, "n2"]);
            assert!(cli.is_ok(), "{cli:?}");
            assert!(Cli::try_parse_from(["concord", "cluster", change]).is_err());
        }
    }

    /// The value comes from one place only.
    #[test]
    fn put_refuses_both_value_and_file() {
        let cli = Cli::try_parse_from(["concord", "kv", "put", "ns", "k", "v", "--file", "f"]);
        assert!(cli.is_err());
    }

    /// `--duration` and `--ops` exclude each other.
    #[test]
    fn bench_takes_duration_or_ops() {
        let cli = Cli::try_parse_from(["concord", "bench", "--duration", "5s", "--ops", "10"]);
        assert!(cli.is_err());
        let cli = Cli::try_parse_from(["concord", "bench", "--ops", "10", "--read-ratio", "1"]);
        assert!(cli.is_ok(), "{cli:?}");
    }
}
