//! The test fixture of the round machines ([`WriteRound`], [`FallbackRound`], [`ReadRound`]):
//! one key's placement in a small cluster of nodes named by letters, and the states and
//! shortfalls their tests compare, so that each test states only what it is about.
//!
//! By default node `a` coordinates a key whose replicas are a, b and c, with fallbacks d and e,
//! nobody down, no ring transition, and a quorum of 2 that is not strict.

use concord_types::{ActorId, ConflictPolicy, Content, Dot, DvvSet, NodeId, Timestamp};

use crate::fallback_round::{self, FallbackRound, FallbackSetup};
use crate::node_ids as ids;
use crate::quorum::Shortfall;
use crate::read_round::{self, ReadRound, ReadSetup};
use crate::write_round::{self, RoundSetup, Via, WriteRound};

/// A node id from its name.
pub(crate) fn n(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

/// A hint held on fallback `node`.
pub(crate) fn on(node: &str) -> Via {
    Via::Fallback(n(node))
}

/// One key's placement and the request's quorum, as every round takes them.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub me: NodeId,
    pub owners: Vec<NodeId>,
    pub incoming: Vec<NodeId>,
    pub fallbacks: Vec<NodeId>,
    pub down: Vec<NodeId>,
    pub required: usize,
    pub strict: bool,
}

impl Placement {
    /// a coordinates; replicas a, b, c; fallbacks d, e; required 2, not strict, nobody down.
    pub fn new() -> Self {
        Placement {
            me: n("a"),
            owners: ids(&["a", "b", "c"]),
            incoming: Vec::new(),
            fallbacks: ids(&["d", "e"]),
            down: Vec::new(),
            required: 2,
            strict: false,
        }
    }

    pub fn me(mut self, name: &str) -> Self {
        self.me = n(name);
        self
    }

    pub fn owners(mut self, names: &[&str]) -> Self {
        self.owners = ids(names);
        self
    }

    /// The target replicas of a ring transition in progress.
    pub fn incoming(mut self, names: &[&str]) -> Self {
        self.incoming = ids(names);
        self
    }

    pub fn fallbacks(mut self, names: &[&str]) -> Self {
        self.fallbacks = ids(names);
        self
    }

    /// The nodes SWIM reports down.
    pub fn down(mut self, names: &[&str]) -> Self {
        self.down = ids(names);
        self
    }

    pub fn required(mut self, required: usize) -> Self {
        self.required = required;
        self
    }

    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// The write set: the owners, then the incoming replicas that are not owners.
    pub fn targets(&self) -> Vec<NodeId> {
        let extra = self.incoming.iter().filter(|node| !self.owners.contains(node));
        self.owners.iter().chain(extra).cloned().collect()
    }

    /// A write coordinated by `me`, which has applied it.
    pub fn write(&self) -> (WriteRound, Vec<write_round::Action>) {
        WriteRound::start(RoundSetup {
            me: &self.me,
            owners: &self.owners,
            incoming: &self.incoming,
            required: self.required,
            strict: self.strict,
            fallbacks: &self.fallbacks,
            down: &self.down,
        })
    }

    /// A write `me` takes as a fallback after every replica in the write set failed with
    /// `unreachable`'s causes (a delete without a context if `blind_delete`).
    pub fn fallback(
        &self,
        unreachable: &[(&str, &str)],
        blind_delete: bool,
    ) -> Result<(FallbackRound, Vec<fallback_round::Action>), Shortfall> {
        FallbackRound::start(FallbackSetup {
            me: &self.me,
            targets: &self.targets(),
            fallbacks: &self.fallbacks,
            down: &self.down,
            required: self.required,
            strict: self.strict,
            blind_delete,
            unreachable: causes(unreachable),
        })
    }

    /// A read of the owners coordinated by `me`, merging under `policy`.
    pub fn read(&self, policy: ConflictPolicy) -> (ReadRound, Vec<read_round::Action>) {
        ReadRound::start(ReadSetup {
            replicas: &self.owners,
            down: &self.down,
            required: self.required,
            policy,
        })
    }
}

/// (node, cause) pairs as a quorum failure lists them.
pub(crate) fn causes(failures: &[(&str, &str)]) -> Vec<(String, String)> {
    failures.iter().map(|(node, why)| (node.to_string(), why.to_string())).collect()
}

/// Why a quorum was not met.
pub(crate) fn shortfall(required: usize, answered: usize, failures: &[(&str, &str)]) -> Shortfall {
    Shortfall { required, answered, failures: causes(failures) }
}

/// A key's state after actor `actor` wrote `value` over `seen` (the context of a client that
/// read `seen`; a blind write when it is empty), at time `at`, with `policy`.
pub(crate) fn written(
    seen: &DvvSet,
    actor: u64,
    value: &str,
    at: u64,
    policy: ConflictPolicy,
) -> DvvSet {
    let mut state = seen.clone();
    let content = Content::Value { data: value.into(), content_type: "text/plain".into() };
    let last = Dot { actor: ActorId(actor), counter: 0 };
    state.write(seen.context(), last, Timestamp(at), content, policy).unwrap();
    state
}

/// `a` and `b` merged under `policy`.
pub(crate) fn merged(a: &DvvSet, b: &DvvSet, policy: ConflictPolicy) -> DvvSet {
    let mut merged = a.clone();
    merged.merge(b, policy);
    merged
}
