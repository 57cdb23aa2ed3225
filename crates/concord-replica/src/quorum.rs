//! Quorum tracking for a coordinated write: pure bookkeeping of who acknowledged.
//!
//! A write succeeds once `required` distinct nodes hold it: current replicas that took it (the
//! coordinator counts when it is one) and, unless the write is strict, fallback nodes holding a
//! hint for a replica that did not (the sloppy quorum). During a ring transition every
//! target-only replica (a new owner) must also hold the write or have a hint stored for it:
//! a new owner that missed a write could otherwise lose it when the old owners drop the
//! partition after handoff.

use concord_types::NodeId;

/// The acknowledgements of one write.
#[derive(Debug, Clone)]
pub struct WriteAcks {
    owners: Vec<NodeId>,
    required: usize,
    strict: bool,
    /// Distinct nodes holding the write that count toward `required`.
    counted: Vec<NodeId>,
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
    /// and new owners); `me` has already applied the write. A `strict` write counts only
    /// current replicas.
    pub fn new(
        me: &NodeId,
        owners: &[NodeId],
        targets: &[NodeId],
        required: usize,
        strict: bool,
    ) -> Self {
        let must = targets.iter().filter(|n| !owners.contains(n) && *n != me).cloned().collect();
        let counted =
            if owners.contains(me) || owners.is_empty() { vec![me.clone()] } else { vec![] };
        Self { owners: owners.to_vec(), required, strict, counted, must, failures: Vec::new() }
    }

    /// A write taken by a fallback node because no replica of the key could be reached: every
    /// replica in `targets` must get a hint, and each node holding hints counts once.
    pub fn for_fallback(targets: &[NodeId], required: usize) -> Self {
        Self {
            owners: Vec::new(),
            required,
            strict: false,
            counted: Vec::new(),
            must: targets.to_vec(),
            failures: Vec::new(),
        }
    }

    /// `node` holds the write.
    pub fn ack(&mut self, node: &NodeId) {
        if self.owners.contains(node) && !self.counted.contains(node) {
            self.counted.push(node.clone());
        }
        self.must.retain(|m| m != node);
    }

    /// A hint for `target` is durably stored on `holder`: a fallback node (counted toward a
    /// sloppy quorum unless strict, and once) or, with `None`, the coordinator itself (which
    /// keeps the write safe but adds no copy).
    pub fn hinted(&mut self, target: &NodeId, holder: Option<&NodeId>) {
        self.must.retain(|m| m != target);
        if let Some(holder) = holder
            && !self.strict
            && !self.counted.contains(holder)
        {
            self.counted.push(holder.clone());
        }
    }

    /// `node` did not take the write.
    pub fn fail(&mut self, node: &NodeId, why: String) {
        self.failures.push((node.to_string(), why));
    }

    pub fn satisfied(&self) -> bool {
        self.answered() >= self.required && self.must.is_empty()
    }

    /// Distinct nodes that hold the write and count (the coordinator included).
    pub fn answered(&self) -> usize {
        self.counted.len()
    }

    /// The outcome once no more answers will come.
    pub fn finish(mut self) -> Result<usize, Shortfall> {
        if self.satisfied() {
            return Ok(self.answered());
        }
        for node in &self.must {
            if !self.failures.iter().any(|(n, _)| n == node.as_str()) {
                let why = "no answer (new owner during a ring transition)".to_string();
                self.failures.push((node.to_string(), why));
            }
        }
        Err(Shortfall {
            required: self.required + self.must.len(),
            answered: self.answered(),
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
        let mut acks = WriteAcks::new(&owners[0], &owners, &owners, 2, false);
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
        let mut acks = WriteAcks::new(&owners[0], &owners, &targets, 1, false);
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
        let mut acks = WriteAcks::new(&owners[0], &owners, &targets, 2, false);
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
        let mut acks = WriteAcks::new(&me, &owners, &owners, 1, false);
        assert_eq!(acks.answered(), 0);
        acks.ack(&owners[0]);
        assert_eq!(acks.finish(), Ok(1));
    }

    #[test]
    fn a_fallback_holding_a_hint_counts_once_unless_strict() {
        let owners = ids(&["a", "b", "c"]);
        let fallback = NodeId::new("d").unwrap();
        let mut acks = WriteAcks::new(&owners[0], &owners, &owners, 3, false);
        acks.hinted(&owners[1], Some(&fallback));
        acks.hinted(&owners[2], Some(&fallback));
        assert_eq!(acks.answered(), 2, "one fallback is one copy, however many hints it holds");
        acks.ack(&owners[1]);
        acks.ack(&owners[1]);
        assert!(acks.satisfied());
        assert_eq!(acks.finish(), Ok(3));

        let mut strict = WriteAcks::new(&owners[0], &owners, &owners, 2, true);
        strict.hinted(&owners[1], Some(&fallback));
        assert!(!strict.satisfied(), "strict counts only primaries");
        strict.ack(&owners[2]);
        assert_eq!(strict.finish(), Ok(2));
    }

    #[test]
    fn a_hint_kept_by_the_coordinator_adds_no_copy_but_covers_a_new_owner() {
        let owners = ids(&["a", "b", "c"]);
        let targets = ids(&["a", "b", "c", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &targets, 2, false);
        acks.hinted(&owners[1], None);
        acks.hinted(&targets[3], None);
        assert_eq!(acks.answered(), 1);
        assert!(!acks.satisfied());
        acks.ack(&owners[2]);
        assert!(acks.satisfied(), "d's write is safe in a hint");
        let mut short = WriteAcks::new(&owners[0], &owners, &owners, 2, false);
        short.fail(&owners[1], "down".into());
        short.hinted(&owners[1], None);
        short.fail(&owners[2], "timeout".into());
        short.hinted(&owners[2], None);
        let shortfall = short.finish().unwrap_err();
        assert_eq!((shortfall.required, shortfall.answered), (2, 1));
        assert_eq!(shortfall.failures.len(), 2);
    }

    #[test]
    fn a_fallback_coordinator_needs_a_hint_for_every_replica_and_counts_itself_once() {
        let targets = ids(&["a", "b", "c"]);
        let me = NodeId::new("d").unwrap();
        let mut acks = WriteAcks::for_fallback(&targets, 1);
        acks.hinted(&targets[0], Some(&me));
        acks.hinted(&targets[1], Some(&me));
        assert!(!acks.satisfied(), "c has no hint yet");
        acks.hinted(&targets[2], Some(&me));
        assert_eq!(acks.finish(), Ok(1));

        let mut two = WriteAcks::for_fallback(&targets, 2);
        for target in &targets {
            two.hinted(target, Some(&me));
        }
        assert!(!two.satisfied(), "one node is one copy");
        two.hinted(&targets[0], Some(&NodeId::new("e").unwrap()));
        assert_eq!(two.finish(), Ok(2));
    }
}
