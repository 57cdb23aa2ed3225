//! The chaos suite's pure parts (issue 6, under construction): recorded histories and the
//! checkers that judge them. The cluster runner, the nemesis and the workloads build on these.
//!
//! - [`history`]: operations as invoke/ok/fail/unknown events, as JSON lines.
//! - [`checker`]: the set checker (lost, recovered, unexpected elements) and read-your-writes.
//! - [`nemesis`]: network partition shapes drawn from a seed, as the directed links they cut.

pub mod checker;
pub mod history;
pub mod nemesis;

pub use checker::{SetReport, StaleRead, check_read_your_writes, check_sets};
pub use history::{Event, History, Op, Phase};
