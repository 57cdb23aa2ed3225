//! Quorum tracking for a coordinated write: pure bookkeeping of who acknowledged.
//!
//! A write succeeds once `required` of the key's current replicas hold it (the coordinator
//! counts when it is one) and, during a ring transition, every target-only replica (a new
//! owner) holds it too: a new owner that missed a write could otherwise lose it when the old
//! owners drop the partition after handoff.

use concord_types::NodeId;

/// The acknowledgements of one write.
#[derive(Debug, Clone)]
pub struct WriteAcks {
    owners: Vec<NodeId>,
    required: usize,
    owners_answered: usize,
    /// Target-only replicas that have not acknowledged yet.
    must: Vec<NodeId>,
    failures: Vec<(String, String)>,
}

/// Why a write did not reach its quorum: what answered, what was required, and each failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub required: usize,
    pub answered: usize,
    pub failures: Vec<(String, String)>,
}

impl WriteAcks {
    /// `owners` are the current replicas, `targets` every replica the write goes to (owners
    /// and new owners); `me` has already applied the write.
    pub fn new(me: &NodeId, owners: &[NodeId], targets: &[NodeId], required: usize) -> Self {
        let must = targets.iter().filter(|n| !owners.contains(n) && *n != me).cloned().collect();
        Self {
            owners: owners.to_vec(),
            required,
            owners_answered: usize::from(owners.contains(me) || owners.is_empty()),
            must,
            failures: Vec::new(),
        }
    }

    /// `node` holds the write.
    pub fn ack(&mut self, node: &NodeId) {
        if self.owners.contains(node) {
            self.owners_answered += 1;
        }
        self.must.retain(|m| m != node);
    }

    /// `node` did not take the write.
    pub fn fail(&mut self, node: &NodeId, why: String) {
        self.failures.push((node.to_string(), why));
    }

    pub fn satisfied(&self) -> bool {
        self.owners_answered >= self.required && self.must.is_empty()
    }

    /// Current replicas that acknowledged (the coordinator included).
    pub fn answered(&self) -> usize {
        self.owners_answered
    }

    /// The outcome once no more answers will come.
    pub fn finish(mut self) -> Result<usize, Shortfall> {
        if self.satisfied() {
            return Ok(self.owners_answered);
        }
        for node in &self.must {
            if !self.failures.iter().any(|(n, _)| n == node.as_str()) {
                let why = "no answer (new owner during a ring transition)".to_string();
                self.failures.push((node.to_string(), why));
            }
        }
        Err(Shortfall {
            required: self.required + self.must.len(),
            answered: self.owners_answered,
            failures: self.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::new(*n).unwrap()).collect()
    }

    #[test]
    fn the_coordinator_counts_and_quorum_is_reached_by_owners() {
        let owners = ids(&["a", "b", "c"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &owners, 2);
        assert!(!acks.satisfied());
        acks.fail(&owners[2], "timed out".into());
        assert!(!acks.satisfied());
        acks.ack(&owners[1]);
        assert!(acks.satisfied());
        assert_eq!(acks.finish(), Ok(2));
    }

    #[test]
    fn a_new_owner_must_acknowledge_during_a_transition() {
        let owners = ids(&["a", "b", "c"]);
        let targets = ids(&["a", "b", "c", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &targets, 1);
        assert!(!acks.satisfied(), "d has not acknowledged");
        acks.ack(&owners[1]);
        assert!(!acks.satisfied());
        acks.ack(&targets[3]);
        assert!(acks.satisfied());
        assert_eq!(acks.finish(), Ok(2));
    }

    #[test]
    fn a_shortfall_names_every_missing_replica() {
        let owners = ids(&["a", "b", "c"]);
        let targets = ids(&["a", "b", "c", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &targets, 2);
        acks.fail(&owners[1], "unreachable".into());
        let shortfall = acks.finish().unwrap_err();
        assert_eq!(shortfall.required, 3, "two owners and the new owner d");
        assert_eq!(shortfall.answered, 1);
        assert_eq!(
            shortfall.failures,
            vec![
                ("b".to_string(), "unreachable".to_string()),
                ("d".to_string(), "no answer (new owner during a ring transition)".to_string()),
            ]
        );
    }

    #[test]
    fn a_forwarded_coordinator_outside_the_owners_does_not_count() {
        let owners = ids(&["b", "c"]);
        let me = NodeId::new("a").unwrap();
        let mut acks = WriteAcks::new(&me, &owners, &owners, 1);
        assert_eq!(acks.answered(), 0);
        acks.ack(&owners[0]);
        assert_eq!(acks.finish(), Ok(1));
    }
}
