//! What the replica layer's background loops (hint replay, anti-entropy) log about a peer whose
//! calls keep failing: the first failure with its cause, a summary a minute while it lasts, and
//! the recovery, never every failed call (`concord_types::failures` decides which line).

use std::fmt::Display;
use std::time::{Duration, Instant};

use concord_types::{FailureLine, FailureLogs, NodeId};

/// How often a peer whose calls keep failing is summarized in the log.
const FAILURE_REPEAT_EVERY: Duration = Duration::from_secs(60);

/// Failing peers tracked for the log at once (more than a cluster has).
const FAILING_PEERS_MAX: usize = 1024;

/// A fresh record of which peers are failing, for one background loop.
pub(crate) fn failure_logs() -> FailureLogs<NodeId> {
    FailureLogs::new(FAILURE_REPEAT_EVERY, FAILING_PEERS_MAX)
}

/// Records the outcome of one call of `what` (e.g. "hint replay to") to `peer`: `failure` is why
/// it failed, `None` if it worked. Logs only the state changes and the minute summaries.
pub(crate) fn log_outcome(
    failures: &mut FailureLogs<NodeId>,
    what: &str,
    peer: &NodeId,
    failure: Option<impl Display>,
) {
    let now = Instant::now();
    let line = match failure {
        Some(e) => {
            tracing::debug!(%peer, error = %e, "{what} {peer} failed");
            failures.failed(peer, now, e)
        }
        None => failures.succeeded(peer, now),
    };
    match line {
        Some(line @ FailureLine::Recovered { .. }) => {
            tracing::info!(%peer, "{what} {peer}: {line}")
        }
        Some(line) => tracing::warn!(%peer, "{what} {peer}: {line}"),
        None => {}
    }
}
