//! Quorum tracking for a coordinated write: pure bookkeeping of who acknowledged.
//!
//! A write succeeds once `required` distinct nodes hold it: current replicas that took it (the
//! coordinator counts when it is one) and, unless the write is strict, fallback nodes holding a
//! hint for a replica that did not (the sloppy quorum).
//!
//! During a ring transition the write also goes to the target replicas (the incoming set), and
//! must be held there too, as in joint consensus: either `required` nodes of the incoming set
//! hold a copy, or every target-only replica (a new owner) holds it or has a hint stored for
//! it. Either way, once the transition settles and the old owners drop the partition, the write
//! is where the settled ring's reads look for it, exactly as a write made after the transition
//! would be. A new owner that is slower than the replicas it shares with the old set is
//! therefore not waited for: the write still reaches it (or a hint does) after the client has
//! its answer.

use concord_types::NodeId;

/// The acknowledgements of one write.
#[derive(Debug, Clone)]
pub struct WriteAcks {
    owners: Vec<NodeId>,
    /// The target replicas during a ring transition; empty otherwise.
    incoming: Vec<NodeId>,
    required: usize,
    strict: bool,
    /// Distinct nodes holding the write that count toward `required`.
    counted: Vec<NodeId>,
    /// Nodes of `incoming` holding a copy of the write.
    incoming_held: Vec<NodeId>,
    /// Target-only replicas that have neither acknowledged nor been hinted yet.
    must: Vec<NodeId>,
    failures: Vec<(String, String)>,
}

/// Why a read or a write did not reach its quorum: what answered, what was required, and each
/// failure. Every round ends a failure in this one shape, which becomes
/// `ReplicaError::Quorum` and, at the HTTP layer, a 503 with these details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    pub required: usize,
    pub answered: usize,
    pub failures: Vec<(String, String)>,
}

impl WriteAcks {
    /// `owners` are the current replicas, `incoming` the target replicas of a ring transition
    /// in progress (empty when there is none); `me` has already applied the write. A `strict`
    /// write counts only current replicas.
    pub fn new(
        me: &NodeId,
        owners: &[NodeId],
        incoming: &[NodeId],
        required: usize,
        strict: bool,
    ) -> Self {
        let must = incoming.iter().filter(|n| !owners.contains(n) && *n != me).cloned().collect();
        let counted =
            if owners.contains(me) || owners.is_empty() { vec![me.clone()] } else { vec![] };
        let incoming_held = if incoming.contains(me) { vec![me.clone()] } else { vec![] };
        Self {
            owners: owners.to_vec(),
            incoming: incoming.to_vec(),
            required,
            strict,
            counted,
            incoming_held,
            must,
            failures: Vec::new(),
        }
    }

    /// A write taken by a fallback node because no replica of the key could be reached: every
    /// replica in `targets` must get a hint, and each node holding hints counts once.
    pub fn for_fallback(targets: &[NodeId], required: usize) -> Self {
        Self {
            owners: Vec::new(),
            incoming: Vec::new(),
            required,
            strict: false,
            counted: Vec::new(),
            incoming_held: Vec::new(),
            must: targets.to_vec(),
            failures: Vec::new(),
        }
    }

    /// `node` holds the write.
    pub fn ack(&mut self, node: &NodeId) {
        if self.owners.contains(node) && !self.counted.contains(node) {
            self.counted.push(node.clone());
        }
        if self.incoming.contains(node) && !self.incoming_held.contains(node) {
            self.incoming_held.push(node.clone());
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
        self.answered() >= self.required && (self.must.is_empty() || self.incoming_quorum())
    }

    /// `required` nodes of the incoming set (or all of it, if it is smaller) hold a copy.
    fn incoming_quorum(&self) -> bool {
        !self.incoming.is_empty()
            && self.incoming_held.len() >= self.required.min(self.incoming.len())
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
    use crate::node_ids as ids;

    #[test]
    fn the_coordinator_counts_and_quorum_is_reached_by_owners() {
        let owners = ids(&["a", "b", "c"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &[], 2, false);
        assert!(!acks.satisfied());
        acks.fail(&owners[2], "timed out".into());
        assert!(!acks.satisfied());
        acks.ack(&owners[1]);
        assert!(acks.satisfied());
        assert_eq!(acks.finish(), Ok(2));
    }

    #[test]
    fn during_a_transition_the_incoming_set_needs_its_own_quorum() {
        // c hands its replica to d: a, b and c hold the partition now, a, b and d will.
        let owners = ids(&["a", "b", "c"]);
        let incoming = ids(&["a", "b", "d"]);
        let d = &incoming[2];

        // The replicas both sets share are enough: d is not waited for.
        let mut shared = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        assert!(!shared.satisfied());
        shared.ack(&owners[1]);
        assert!(shared.satisfied(), "a and b are two of the old set and two of the new");
        assert_eq!(shared.finish(), Ok(2));

        // The leaving replica completes the old quorum but not the new one: d is needed.
        let mut leaving = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        leaving.ack(&owners[2]);
        assert!(!leaving.satisfied(), "a and c are only one of the new set");
        leaving.ack(d);
        assert!(leaving.satisfied());
        assert_eq!(leaving.finish(), Ok(2), "d adds a copy but does not count toward w");

        // d acknowledging first completes nothing while the old set lacks its quorum.
        let mut early = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        early.ack(d);
        assert!(!early.satisfied(), "a is one of the old set");
        early.ack(&owners[2]);
        assert!(early.satisfied());
    }

    #[test]
    fn a_coordinator_leaving_the_partition_needs_the_incoming_quorum_from_others() {
        let owners = ids(&["a", "b", "c"]);
        let incoming = ids(&["b", "c", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        acks.ack(&owners[1]);
        assert!(!acks.satisfied(), "a does not count in the new set: b alone is one");
        acks.ack(&incoming[2]);
        assert!(acks.satisfied(), "b and d");
        assert_eq!(acks.finish(), Ok(2));
    }

    #[test]
    fn an_incoming_set_smaller_than_the_quorum_needs_all_of_it() {
        // A one-node cluster gaining a second node, w = 2: the target set is {a, b}.
        let owners = ids(&["a"]);
        let incoming = ids(&["a", "b"]);
        let acks = WriteAcks::new(&owners[0], &owners, &incoming, 1, false);
        assert!(acks.satisfied(), "w = 1: a holds it in both sets");
        let mut all = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        assert!(!all.satisfied());
        all.ack(&incoming[1]);
        assert!(!all.satisfied(), "b is not a current replica: the old set has one copy");
        assert_eq!(all.finish().unwrap_err().answered, 1);
    }

    #[test]
    fn a_hinted_new_owner_satisfies_the_transition_as_before() {
        let owners = ids(&["a", "b", "c"]);
        let incoming = ids(&["a", "b", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        acks.ack(&owners[2]);
        acks.hinted(&incoming[2], None);
        assert!(acks.satisfied(), "old quorum a, c; d's write is safe in a hint");
        assert_eq!(acks.finish(), Ok(2));
    }

    #[test]
    fn a_strict_write_counts_only_copies_in_the_incoming_set() {
        let owners = ids(&["a", "b", "c"]);
        let incoming = ids(&["a", "b", "d"]);
        let fallback = NodeId::new("e").unwrap();
        let mut acks = WriteAcks::new(&owners[0], &owners, &incoming, 2, true);
        acks.hinted(&owners[1], Some(&fallback));
        acks.ack(&owners[2]);
        assert!(!acks.satisfied(), "b's hint is not a copy and d has not answered");
        acks.ack(&incoming[2]);
        assert!(acks.satisfied(), "old a, c; new a, d");
    }

    #[test]
    fn a_shortfall_names_every_missing_replica() {
        let owners = ids(&["a", "b", "c"]);
        let incoming = ids(&["a", "c", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
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
        let mut acks = WriteAcks::new(&me, &owners, &[], 1, false);
        assert_eq!(acks.answered(), 0);
        acks.ack(&owners[0]);
        assert_eq!(acks.finish(), Ok(1));
    }

    #[test]
    fn a_fallback_holding_a_hint_counts_once_unless_strict() {
        let owners = ids(&["a", "b", "c"]);
        let fallback = NodeId::new("d").unwrap();
        let mut acks = WriteAcks::new(&owners[0], &owners, &[], 3, false);
        acks.hinted(&owners[1], Some(&fallback));
        acks.hinted(&owners[2], Some(&fallback));
        assert_eq!(acks.answered(), 2, "one fallback is one copy, however many hints it holds");
        acks.ack(&owners[1]);
        acks.ack(&owners[1]);
        assert!(acks.satisfied());
        assert_eq!(acks.finish(), Ok(3));

        let mut strict = WriteAcks::new(&owners[0], &owners, &[], 2, true);
        strict.hinted(&owners[1], Some(&fallback));
        assert!(!strict.satisfied(), "strict counts only primaries");
        strict.ack(&owners[2]);
        assert_eq!(strict.finish(), Ok(2));
    }

    #[test]
    fn a_hint_kept_by_the_coordinator_adds_no_copy_but_covers_a_new_owner() {
        let owners = ids(&["a", "b", "c"]);
        let incoming = ids(&["a", "b", "d"]);
        let mut acks = WriteAcks::new(&owners[0], &owners, &incoming, 2, false);
        acks.hinted(&owners[1], None);
        acks.hinted(&incoming[2], None);
        assert_eq!(acks.answered(), 1);
        assert!(!acks.satisfied());
        acks.ack(&owners[2]);
        assert!(acks.satisfied(), "d's write is safe in a hint");
        let mut short = WriteAcks::new(&owners[0], &owners, &[], 2, false);
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
