//! The chaos suite (issue 6): faults injected into a cluster of real processes while clients
//! record what they see, then checkers judge the histories (DESIGN.md, Jepsen's method).
//!
//! - [`history`]: operations as invoke/ok/fail/unknown events, as JSON lines.
//! - [`checker`]: the set checker (lost, recovered, unexpected elements) and read-your-writes.
//! - [`nemesis`]: network partition shapes drawn from a seed, as the directed links they cut.
//! - [`schedule`]: which faults a run injects, drawn from a seed.
//! - [`workload`]: the set and read-your-writes clients, recording the history.
//! - [`register`]: the register workload of strong namespaces: its recorder, its history and
//!   its check by [`crate::linearizability`], and the seam to the server it will run on.
//! - [`runner`]: one schedule on a fresh cluster: workloads, nemesis, heal, checks.

pub mod checker;
pub mod history;
pub mod nemesis;
pub mod register;
pub mod runner;
pub mod schedule;
pub mod workload;

pub use checker::{SetReport, StaleRead, check_read_your_writes, check_sets};
pub use history::{Event, History, Op, Phase};
