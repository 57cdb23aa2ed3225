//! The decisions of one coordinated write, as a pure state machine: `on(event) -> actions`.
//!
//! A [`WriteRound`] starts once the coordinator has applied the write itself. It says which
//! replicas the write is sent to, which ones get a hint and where (a replica SWIM reports down
//! at once, one that fails, and, at half the deadline, one that has not answered), which
//! fallback a hint tries next when one fails (`HintPlaces`: the first two fallbacks that are
//! up, in ring order, then this node; a fallback coordinator's extra copies walk the same
//! order, see [`crate::fallback_round`]), and when the client is answered: once the quorum is met
//! ([`WriteAcks`]' rules: joint quorum during a transition, hints on fallbacks counting unless
//! strict), once nothing more can arrive, or at the deadline.
//!
//! It reads no clock and does no I/O: the async driver in `service` executes the actions and
//! feeds back what happened, including the passing of time (`HalfDeadline`, `Deadline`). The
//! round goes on after the answer, until every replica holds the write or a hint for it (or
//! its hint was lost), so that replicas answering late still count for durability.

use concord_types::NodeId;

use crate::quorum::{Shortfall, WriteAcks};

/// How many fallback nodes a hint tries before this node keeps it.
pub(crate) const FALLBACK_TRIES: usize = 2;

/// Where a hint is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A fallback node (counts toward a sloppy quorum unless the write is strict).
    Fallback(NodeId),
    /// The coordinator itself (keeps the write safe, adds no copy).
    Here,
}

impl Via {
    /// The fallback node holding the hint; `None` for this node.
    pub fn holder(&self) -> Option<&NodeId> {
        match self {
            Via::Fallback(node) => Some(node),
            Via::Here => None,
        }
    }
}

/// Where a hint for one replica is tried, in order: [`FALLBACK_TRIES`] fallbacks SWIM does not
/// report down, then this node. The fallbacks are taken in ring order, those holding no other
/// copy of this write first: as in Dynamo, each missing replica's copy goes to the next
/// fallback, so that two missing replicas make two copies on two nodes, not one node that
/// counts once. A [`WriteRound`]'s hints and the extra copies of a fallback coordinator's
/// write ([`crate::fallback_round`]) walk orders made here.
#[derive(Debug, Clone)]
pub(crate) struct HintPlaces {
    up: Vec<NodeId>,
}

impl HintPlaces {
    /// `fallbacks` in ring order, less the ones in `down`.
    pub(crate) fn new(fallbacks: &[NodeId], down: &[NodeId]) -> Self {
        let up = fallbacks.iter().filter(|f| !down.contains(f));
        HintPlaces { up: up.cloned().collect() }
    }

    /// The places one replica's hint tries, in order, when the fallbacks in `busy` already
    /// hold (or are asked to hold) a copy of this write for another replica: the up fallbacks
    /// not busy, then the busy ones, [`FALLBACK_TRIES`] of them in all, then this node.
    pub(crate) fn order(&self, busy: &[NodeId]) -> Vec<Via> {
        let free = self.up.iter().filter(|f| !busy.contains(f));
        let taken = self.up.iter().filter(|f| busy.contains(f));
        let fallbacks = free.chain(taken).take(FALLBACK_TRIES).cloned().map(Via::Fallback);
        fallbacks.chain([Via::Here]).collect()
    }
}

/// What happened, as the driver observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `node` acknowledged the write.
    Stored { node: NodeId },
    /// `node` did not take the write (`cause` as clients see it: `down`, `timeout`, `error: ..`).
    Failed { node: NodeId, cause: String },
    /// Half the time to the deadline has passed: replicas that have not answered get a hint.
    HalfDeadline,
    /// A hint for `target` is durably held on `holder`.
    Hinted { target: NodeId, holder: Via },
    /// The hint for `target` on the last `Hint`'s `via` was not stored.
    HintFailed { target: NodeId, cause: String },
    /// The client's deadline has passed.
    Deadline,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the write to replica `node`; answer with `Stored` or `Failed`.
    Send { node: NodeId },
    /// Store a hint for `target` on `via`; answer with `Hinted` or `HintFailed`.
    Hint { target: NodeId, via: Via },
    /// Answer the client: how many nodes hold the write, or why the quorum was not met.
    Answer(Result<usize, Shortfall>),
}

/// Where one replica's answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Pending,
    Stored,
    Failed,
}

/// Where the hint for one replica stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HintState {
    None,
    /// Trying the `n`th of the target's places.
    Trying(usize),
    /// Held at the `n`th of the target's places.
    Held(usize),
    Lost,
}

#[derive(Debug, Clone)]
struct Target {
    node: NodeId,
    reply: Reply,
    hint: HintState,
    /// Where its hint is tried, in order ([`HintPlaces::order`]), fixed at its first try.
    places: Vec<Via>,
}

impl Target {
    /// The fallback holding, or asked to hold, this target's hint.
    fn hint_holder(&self) -> Option<&NodeId> {
        match self.hint {
            HintState::Trying(at) | HintState::Held(at) => self.places.get(at)?.holder(),
            HintState::None | HintState::Lost => None,
        }
    }
}

/// One coordinated write's decisions.
#[derive(Debug, Clone)]
pub struct WriteRound {
    acks: WriteAcks,
    targets: Vec<Target>,
    /// Where hints are tried.
    places: HintPlaces,
    strict: bool,
    answered: bool,
}

/// How a round is set up: `owners` are the current replicas, `incoming` the target replicas
/// of a ring transition (empty when there is none), `fallbacks` the hint holders in ring order
/// (never a node the write goes to), `down` the nodes SWIM reports down.
#[derive(Debug, Clone)]
pub struct RoundSetup<'a> {
    pub me: &'a NodeId,
    pub owners: &'a [NodeId],
    pub incoming: &'a [NodeId],
    pub required: usize,
    pub strict: bool,
    pub fallbacks: &'a [NodeId],
    pub down: &'a [NodeId],
}

impl WriteRound {
    /// The round and its first actions; the coordinator (`me`) has applied the write already.
    pub fn start(setup: RoundSetup<'_>) -> (Self, Vec<Action>) {
        let RoundSetup { me, owners, incoming, required, strict, fallbacks, down } = setup;
        let mut round = WriteRound {
            acks: WriteAcks::new(me, owners, incoming, required, strict),
            targets: Vec::new(),
            places: HintPlaces::new(fallbacks, down),
            strict,
            answered: false,
        };
        let mut actions = Vec::new();
        let all = owners.iter().chain(incoming.iter().filter(|n| !owners.contains(n)));
        for node in all.filter(|n| *n != me) {
            let mut target = Target {
                node: node.clone(),
                reply: Reply::Pending,
                hint: HintState::None,
                places: Vec::new(),
            };
            if down.contains(node) {
                target.reply = Reply::Failed;
                round.acks.fail(node, "down".into());
                actions.push(round.hint_at(&mut target, 0));
            } else {
                actions.push(Action::Send { node: node.clone() });
            }
            round.targets.push(target);
        }
        round.settle(&mut actions);
        (round, actions)
    }

    /// Takes in what happened; returns what to do next.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Stored { node } => {
                self.acks.ack(&node);
                if let Some(i) = self.index(&node) {
                    self.targets[i].reply = Reply::Stored;
                }
            }
            Event::Failed { node, cause } => self.failed(&node, cause, &mut actions),
            Event::HalfDeadline => {
                for i in 0..self.targets.len() {
                    let t = &self.targets[i];
                    if t.reply == Reply::Pending && t.hint == HintState::None {
                        let mut target = self.targets[i].clone();
                        actions.push(self.hint_at(&mut target, 0));
                        self.targets[i] = target;
                    }
                }
            }
            Event::Hinted { target, holder } => {
                self.acks.hinted(&target, holder.holder());
                if let Some(i) = self.index(&target)
                    && let HintState::Trying(at) = self.targets[i].hint
                {
                    self.targets[i].hint = HintState::Held(at);
                }
            }
            Event::HintFailed { target, cause } => self.hint_failed(&target, cause, &mut actions),
            Event::Deadline => {
                if !self.answered {
                    for t in self.targets.iter().filter(|t| t.reply == Reply::Pending) {
                        self.acks.fail(&t.node, "timeout".into());
                    }
                    self.answered = true;
                    actions.push(Action::Answer(self.acks.clone().finish()));
                }
            }
        }
        self.settle(&mut actions);
        actions
    }

    /// True once the client is answered and no send or hint is still outstanding.
    pub fn done(&self) -> bool {
        self.answered && !self.targets.iter().any(Self::outstanding)
    }

    /// Whether only current replicas count (hints on fallbacks do not).
    pub fn strict(&self) -> bool {
        self.strict
    }

    /// How many other nodes the write goes to.
    pub fn replicas(&self) -> usize {
        self.targets.len()
    }

    /// Whether the client has been answered.
    pub fn answered(&self) -> bool {
        self.answered
    }

    fn outstanding(t: &Target) -> bool {
        t.reply == Reply::Pending || matches!(t.hint, HintState::Trying(_))
    }

    fn index(&self, node: &NodeId) -> Option<usize> {
        self.targets.iter().position(|t| t.node == *node)
    }

    fn failed(&mut self, node: &NodeId, cause: String, actions: &mut Vec<Action>) {
        let Some(i) = self.index(node) else { return };
        if self.targets[i].reply != Reply::Pending {
            return;
        }
        self.targets[i].reply = Reply::Failed;
        if !self.answered {
            self.acks.fail(node, cause);
        }
        if self.targets[i].hint == HintState::None {
            let mut target = self.targets[i].clone();
            actions.push(self.hint_at(&mut target, 0));
            self.targets[i] = target;
        }
    }

    fn hint_failed(&mut self, node: &NodeId, cause: String, actions: &mut Vec<Action>) {
        let Some(i) = self.index(node) else { return };
        let HintState::Trying(at) = self.targets[i].hint else { return };
        if at + 1 < self.targets[i].places.len() {
            let mut target = self.targets[i].clone();
            actions.push(self.hint_at(&mut target, at + 1));
            self.targets[i] = target;
        } else {
            // This node could not keep it either: the hint is lost, and said so.
            self.targets[i].hint = HintState::Lost;
            if !self.answered {
                self.acks.fail(node, format!("error: hint not stored: {cause}"));
            }
        }
    }

    /// The hint for `target` at its place `at`; its places are chosen at its first try, away
    /// from the fallbacks the other targets' hints are on.
    fn hint_at(&self, target: &mut Target, at: usize) -> Action {
        if at == 0 {
            let others = self.targets.iter().filter(|t| t.node != target.node);
            let busy: Vec<NodeId> = others.filter_map(Target::hint_holder).cloned().collect();
            target.places = self.places.order(&busy);
        }
        target.hint = HintState::Trying(at);
        Action::Hint { target: target.node.clone(), via: target.places[at].clone() }
    }

    /// Answers the client once the quorum is met or nothing more can arrive.
    fn settle(&mut self, actions: &mut Vec<Action>) {
        if self.answered {
            return;
        }
        let idle = !self.targets.iter().any(Self::outstanding);
        if self.acks.satisfied() || idle {
            self.answered = true;
            actions.push(Action::Answer(self.acks.clone().finish()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_fixture::{Placement, n, on, shortfall};
    use Action::{Answer, Hint, Send};

    fn stored(node: &str) -> Event {
        Event::Stored { node: n(node) }
    }

    fn failed(node: &str, cause: &str) -> Event {
        Event::Failed { node: n(node), cause: cause.into() }
    }

    fn hinted(target: &str, holder: Via) -> Event {
        Event::Hinted { target: n(target), holder }
    }

    fn hint_failed(target: &str, cause: &str) -> Event {
        Event::HintFailed { target: n(target), cause: cause.into() }
    }

    fn hint(target: &str, via: Via) -> Action {
        Hint { target: n(target), via }
    }

    fn send(node: &str) -> Action {
        Send { node: n(node) }
    }

    fn short(required: usize, answered: usize, failures: &[(&str, &str)]) -> Action {
        Answer(Err(shortfall(required, answered, failures)))
    }

    #[test]
    fn all_replicas_ack() {
        let (mut round, start) = Placement::new().write();
        assert_eq!(start, vec![send("b"), send("c")]);
        assert_eq!(round.on(stored("b")), vec![Answer(Ok(2))]);
        assert!(!round.done(), "c is still on its way");
        assert_eq!(round.on(stored("c")), vec![]);
        assert!(round.done());
    }

    #[test]
    fn a_replica_down_at_the_start_is_hinted_right_away() {
        let (mut round, start) = Placement::new().required(3).down(&["c"]).write();
        assert_eq!(start, vec![send("b"), hint("c", on("d"))]);
        assert_eq!(round.on(stored("b")), vec![]);
        assert_eq!(round.on(hinted("c", on("d"))), vec![Answer(Ok(3))]);
        assert!(round.done());
    }

    #[test]
    fn a_slow_replica_is_hinted_on_the_first_fallback_at_half_the_deadline() {
        let (mut round, start) = Placement::new().required(3).write();
        assert_eq!(start, vec![send("b"), send("c")]);
        assert_eq!(round.on(stored("b")), vec![]);
        assert_eq!(round.on(Event::HalfDeadline), vec![hint("c", on("d"))]);
        assert_eq!(round.on(hinted("c", on("d"))), vec![Answer(Ok(3))]);
        assert!(!round.done(), "the write still goes on to c");
        assert_eq!(round.on(stored("c")), vec![]);
        assert!(round.done());
        assert_eq!(round.on(Event::Deadline), vec![], "answered once");
    }

    #[test]
    fn a_failed_hint_tries_the_next_fallback_then_this_node() {
        let (mut round, _) = Placement::new().required(3).write();
        assert_eq!(round.on(stored("b")), vec![]);
        assert_eq!(round.on(failed("c", "error: refused")), vec![hint("c", on("d"))]);
        assert_eq!(round.on(hint_failed("c", "unreachable")), vec![hint("c", on("e"))]);
        assert_eq!(round.on(hint_failed("c", "unreachable")), vec![hint("c", Via::Here)]);

        let mut kept = round.clone();
        let answer = kept.on(hinted("c", Via::Here));
        assert_eq!(answer, vec![short(3, 2, &[("c", "error: refused")])]);
        assert!(kept.done());

        let answer = round.on(hint_failed("c", "disk full"));
        let failures = [("c", "error: refused"), ("c", "error: hint not stored: disk full")];
        assert_eq!(answer, vec![short(3, 2, &failures)]);
        assert!(round.done());
    }

    #[test]
    fn fallbacks_reported_down_are_skipped() {
        let placement = Placement::new().owners(&["a", "b"]).fallbacks(&["d", "e", "f"]);
        let (mut round, start) = placement.down(&["b", "d"]).write();
        assert_eq!(start, vec![hint("b", on("e"))]);
        assert_eq!(round.on(hint_failed("b", "timeout")), vec![hint("b", on("f"))]);
        assert_eq!(round.on(hinted("b", on("f"))), vec![Answer(Ok(2))]);
    }

    /// As in Dynamo, each missing replica's hint goes to the next fallback: at W=3 with two
    /// replicas down, d and e hold one hint each and the write has its three copies.
    #[test]
    fn two_missing_replicas_hint_two_different_fallbacks() {
        let placement = Placement::new().owners(&["a", "b", "c"]).required(3).down(&["b", "c"]);
        let (mut round, start) = placement.write();
        assert_eq!(start, vec![hint("b", on("d")), hint("c", on("e"))]);
        assert_eq!(round.on(hinted("b", on("d"))), vec![]);
        assert_eq!(round.on(hinted("c", on("e"))), vec![Answer(Ok(3))]);

        // When e fails c's hint, d (already holding b's) is next, then this node.
        let (mut busy, _) = placement.write();
        assert_eq!(busy.on(hint_failed("c", "timeout")), vec![hint("c", on("d"))]);
        assert_eq!(busy.on(hint_failed("c", "timeout")), vec![hint("c", Via::Here)]);
    }

    #[test]
    fn a_strict_write_never_counts_hints() {
        let (mut round, start) = Placement::new().strict().write();
        assert_eq!(start, vec![send("b"), send("c")]);
        assert_eq!(round.on(failed("b", "timeout")), vec![hint("b", on("d"))]);
        assert_eq!(round.on(hinted("b", on("d"))), vec![]);
        assert_eq!(round.on(stored("c")), vec![Answer(Ok(2))]);
        assert!(round.done());

        let (mut short_of_two, _) = Placement::new().strict().down(&["c"]).write();
        let b_elsewhere = short_of_two.on(failed("b", "error: refused"));
        assert_eq!(b_elsewhere, vec![hint("b", on("e"))], "d holds c's hint");
        assert_eq!(short_of_two.on(hinted("c", on("d"))), vec![]);
        let answer = short_of_two.on(hinted("b", on("e")));
        assert_eq!(answer, vec![short(2, 1, &[("c", "down"), ("b", "error: refused")])]);
    }

    #[test]
    fn an_unreachable_quorum_is_answered_at_the_deadline_with_each_cause() {
        let (mut round, start) = Placement::new().fallbacks(&[]).write();
        assert_eq!(start, vec![send("b"), send("c")]);
        assert_eq!(round.on(failed("b", "error: refused")), vec![hint("b", Via::Here)]);
        assert_eq!(round.on(Event::HalfDeadline), vec![hint("c", Via::Here)]);
        assert_eq!(round.on(hinted("b", Via::Here)), vec![]);
        assert_eq!(round.on(hinted("c", Via::Here)), vec![]);
        let answer = round.on(Event::Deadline);
        assert_eq!(answer, vec![short(2, 1, &[("b", "error: refused"), ("c", "timeout")])]);
        assert!(!round.done(), "c's answer is still to come");
        assert_eq!(round.on(failed("c", "timeout")), vec![], "c already has its hint");
        assert!(round.done());
    }

    #[test]
    fn during_a_transition_the_target_quorum_is_needed() {
        // c hands its replica to d: a, b, c hold the partition now, a, b, d will.
        let placement = Placement::new().incoming(&["a", "b", "d"]).fallbacks(&["e"]);
        let (mut round, start) = placement.write();
        assert_eq!(start, vec![send("b"), send("c"), send("d")]);
        assert_eq!(round.on(stored("c")), vec![], "a and c are only one of the new set");
        assert_eq!(round.on(stored("d")), vec![Answer(Ok(2))]);
        assert_eq!(round.on(stored("b")), vec![]);
        assert!(round.done());

        // The new owner fails and its hint is lost: the old quorum alone is not enough.
        let (mut lost, _) = placement.write();
        assert_eq!(lost.on(stored("c")), vec![]);
        assert_eq!(lost.on(failed("b", "error: refused")), vec![hint("b", on("e"))]);
        assert_eq!(lost.on(failed("d", "down")), vec![hint("d", on("e"))]);
        assert_eq!(lost.on(hinted("b", on("e"))), vec![]);
        assert_eq!(lost.on(hint_failed("d", "busy")), vec![hint("d", Via::Here)]);
        let failures =
            [("b", "error: refused"), ("d", "down"), ("d", "error: hint not stored: busy")];
        assert_eq!(lost.on(hint_failed("d", "busy")), vec![short(3, 3, &failures)]);
    }
}
