//! One way to start local clusters of `concord server` processes, shared by `concord demo`
//! (and through it the benchmark scripts) and the test kit.
//!
//! A local cluster has a *data root*; node `i` (1-based) is `n{i}`, keeps its data in
//! `<root>/n{i}`, logs (stderr) to `<root>/n{i}.log`, and listens on free ports or, with a
//! base port `P`, HTTP on `P + 2(i-1)` and peers on the next port: exactly those, or those
//! when they are free ([`Ports`]). `n1` founds the cluster and
//! every other node joins through `n1`'s peer address. A node is started when it prints its
//! startup line ([`concord_client::startup::Announcement`]) and up when the cluster says so
//! ([`ready`]).
//!
//! # Layout
//!
//! - [`options`]: [`ServerOptions`], the flags and environment of one `concord server`, and
//!   [`Layout`], which gives node `i` of a local cluster its id, data dir and [`Ports`].
//! - [`ports`]: whether a preferred port is free, and the fallback to ports the OS picks.
//! - [`process`]: spawning a node and waiting for its startup line, with its stdout piped or
//!   in a file (a node that outlives its launcher), signals, log tails, pid files.
//! - [`ready`]: whether a node's view of the cluster shows given nodes up.
//!
//! No server crate is a dependency: nodes are processes, reached over their printed addresses.
//! Blocking (std processes and threads), so that the test kit can use it anywhere; async
//! callers run the starts on a blocking thread.

pub mod options;
pub mod ports;
pub mod process;
pub mod ready;

mod error;

pub use error::Error;
pub use options::{Layout, Ports, ServerOptions};
pub use process::{Signal, Started, StdoutTo};
