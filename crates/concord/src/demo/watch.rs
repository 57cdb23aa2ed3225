//! What an attached demo shows of the cluster while it runs: a line each time a node's state
//! changes as a live node sees it (`up -> suspect -> down`), and each time the number of hints
//! the live nodes hold for a node changes (they pile up while it is down and drain once it is
//! back). This is the game day made visible: kill a node, write, restart it, watch.
//!
//! [`Snapshot::changes`] is pure; [`snapshot`] asks the nodes.

use std::collections::BTreeMap;
use std::time::Duration;

use concord_client::{Client, ClientConfig};

/// How long one look at a node may take: a frozen node must not hold up the watch.
const LOOK_TIMEOUT: Duration = Duration::from_secs(1);

/// What the demo knows of the cluster at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The live node whose view gave the states.
    pub observer: String,
    /// Each member's state as the observer sees it.
    pub states: BTreeMap<String, String>,
    /// For each member, the hints every live node that answered holds for it.
    pub hints: BTreeMap<String, u64>,
}

impl Snapshot {
    /// One line per change from `before` to `self`, states first.
    pub fn changes(&self, before: &Snapshot) -> Vec<String> {
        let mut lines = Vec::new();
        for (node, state) in &self.states {
            let old = before.states.get(node).map_or("absent", String::as_str);
            if old != state {
                lines.push(format!(
                    "cluster: {node} {old} -> {state} (as {} sees it)",
                    self.observer
                ));
            }
        }
        for (node, &count) in &self.hints {
            let old = before.hints.get(node).copied().unwrap_or(0);
            match (old, count) {
                (old, new) if old == new => {}
                (_, 0) => lines.push(format!("hints: every hint for {node} delivered")),
                (_, new) => lines.push(format!("hints: {new} held for {node}")),
            }
        }
        lines
    }
}

/// A client for looking at one node, with short deadlines.
pub fn client(endpoint: &str) -> anyhow::Result<Client> {
    let config = ClientConfig {
        connect_timeout: LOOK_TIMEOUT,
        request_timeout: LOOK_TIMEOUT,
        ..ClientConfig::default()
    };
    Ok(Client::with_config(endpoint, config)?)
}

/// Asks each of `live` (id and client) for its view: states from the first that answers,
/// hints summed over all that answer. `None` when none answers.
pub async fn snapshot(live: &[(&str, &Client)]) -> Option<Snapshot> {
    let mut snapshot: Option<Snapshot> = None;
    for (id, client) in live {
        let Ok(view) = client.cluster().await else { continue };
        let snapshot = snapshot.get_or_insert_with(|| Snapshot {
            observer: (*id).to_owned(),
            states: view.nodes.iter().map(|n| (n.id.clone(), n.state.clone())).collect(),
            hints: BTreeMap::new(),
        });
        for node in &view.nodes {
            *snapshot.hints.entry(node.id.clone()).or_default() += node.hints_pending;
        }
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(states: &[(&str, &str)], hints: &[(&str, u64)]) -> Snapshot {
        Snapshot {
            observer: "n1".to_owned(),
            states: states.iter().map(|(n, s)| ((*n).to_owned(), (*s).to_owned())).collect(),
            hints: hints.iter().map(|(n, h)| ((*n).to_owned(), *h)).collect(),
        }
    }

    /// A node going down, hints piling up for it, then draining: one line per change, none
    /// when nothing changed.
    #[test]
    fn state_and_hint_changes_are_one_line_each() {
        let up = snapshot(&[("n1", "up"), ("n2", "up")], &[("n1", 0), ("n2", 0)]);
        let down = snapshot(&[("n1", "up"), ("n2", "down")], &[("n1", 0), ("n2", 20)]);
        let back = snapshot(&[("n1", "up"), ("n2", "up")], &[("n1", 0), ("n2", 0)]);
        assert_eq!(up.changes(&up), Vec::<String>::new());
        assert_eq!(
            down.changes(&up),
            ["cluster: n2 up -> down (as n1 sees it)", "hints: 20 held for n2"]
        );
        assert_eq!(
            back.changes(&down),
            ["cluster: n2 down -> up (as n1 sees it)", "hints: every hint for n2 delivered"]
        );
    }

    /// The first snapshot names every member as it appears; no hints is no line.
    #[test]
    fn the_first_snapshot_shows_each_member_appearing() {
        let first = snapshot(&[("n1", "up")], &[("n1", 0)]);
        assert_eq!(
            first.changes(&Snapshot::default()),
            ["cluster: n1 absent -> up (as n1 sees it)"]
        );
    }
}
