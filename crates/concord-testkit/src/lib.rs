//! Test support for process-level tests: start the real `concord` binary on loopback ports,
//! stop it gracefully, with SIGKILL or SIGSTOP, restart it on the same data dir and ports, run
//! clusters of such processes, and draw replayable random seeds.
//!
//! # Layout
//!
//! - [`server`]: [`ServerOptions`] and [`TestServer`], one `concord server` process.
//! - [`cluster`]: [`TestCluster`], nodes `n1..nN` joined through `n1`, and
//!   [`TestCluster::wait_for`], the one way tests wait for the cluster to reach a state.
//! - [`chaos`]: histories of client operations and the checkers that judge them.
//! - [`linearizability`]: the checker of register histories for strong namespaces (Wing &
//!   Gong's search with Lowe's cache), per key, with explanations.
//! - [`netns`]: one network namespace per node, for clusters whose nodes have their own hosts.
//!
//! Dev-only: nothing here ships in the binary. It talks to nodes through `concord-client` and
//! the printed startup line only, never through server crates.

pub mod chaos;
pub mod cluster;
pub mod linearizability;
pub mod netns;
pub mod server;

pub use cluster::{ProcessState, TestCluster};
pub use server::{Exited, ServerOptions, TestServer};

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
