//! The decisions of one coordinated read, as a pure state machine: `on(event) -> actions`.
//!
//! A [`ReadRound`] asks every current replica of the key, the ones SWIM reports up first (the
//! others too: SWIM may be wrong), and merges the states they answer. A replica holding no state
//! of the key answers all the same (not found) and counts toward R; one that fails does not.
//! The client is answered with the merge once R replicas have answered; with a [`Shortfall`]
//! once every replica has reported short of R, or at the deadline, where the replicas not heard
//! fail with `timeout`.
//!
//! After a successful answer the round keeps hearing the replicas it did not wait for, until
//! every one has reported or the read-repair wait is over, then sends the merge of every state
//! heard to each replica whose answer differed from it, a not-found one included (read repair).
//! A replica that failed or was not heard in time is left to hints and anti-entropy; a read
//! that failed repairs nothing.
//!
//! It reads no clock and does no I/O: the driver in `service` executes the actions and feeds
//! back the answers and the passing of time (`Deadline`, `LateOver`).

use concord_types::{ConflictPolicy, DvvSet, NodeId};

use crate::quorum::Shortfall;

/// The result of a coordinated read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The merge of the answers waited for; `None` if none held the key.
    pub state: Option<DvvSet>,
    /// How many replicas answered.
    pub answered: usize,
}

/// What happened, as the driver observed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `node` answered with its state of the key (`None`: it holds none).
    Read { node: NodeId, state: Option<DvvSet> },
    /// `node` did not answer (`cause` as clients see it: `down`, `timeout`, `error: ..`).
    Failed { node: NodeId, cause: String },
    /// The client's deadline has passed.
    Deadline,
    /// The read-repair wait, which began with `HearLate`, is over.
    LateOver,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the key on `node`; answer with `Read` or `Failed`.
    Ask { node: NodeId },
    /// Answer the client.
    Answer(Result<ReadResult, Shortfall>),
    /// Keep hearing the replicas not heard yet for the read-repair wait, then report `LateOver`.
    HearLate,
    /// Send `state`, the merge of every answer, to `node`, which was behind (read repair).
    Repair { node: NodeId, state: DvvSet },
}

/// How a read is set up: `replicas` are the key's current replicas, `down` the nodes SWIM
/// reports down, `policy` how their states merge.
#[derive(Debug, Clone)]
pub struct ReadSetup<'a> {
    pub replicas: &'a [NodeId],
    pub down: &'a [NodeId],
    pub required: usize,
    pub policy: ConflictPolicy,
}

/// Where one replica's answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Pending,
    Read,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for R answers.
    Reading,
    /// Answered; hearing the others for read repair.
    HearingLate,
    Done,
}

/// One coordinated read's decisions.
#[derive(Debug, Clone)]
pub struct ReadRound {
    replicas: Vec<NodeId>,
    replies: Vec<Reply>,
    required: usize,
    policy: ConflictPolicy,
    /// Every answer, in the order heard: read repair compares each with `merged`.
    heard: Vec<(NodeId, Option<DvvSet>)>,
    /// The merge of every state heard; `None` while no answer held the key.
    merged: Option<DvvSet>,
    /// Why replicas did not answer before the client was answered.
    failures: Vec<(String, String)>,
    stage: Stage,
}

impl ReadRound {
    /// The round and its first actions: ask every replica, the ones up first.
    pub fn start(setup: ReadSetup<'_>) -> (Self, Vec<Action>) {
        let ReadSetup { replicas, down, required, policy } = setup;
        let (up, down): (Vec<&NodeId>, Vec<&NodeId>) =
            replicas.iter().partition(|node| !down.contains(node));
        let mut actions: Vec<Action> =
            up.into_iter().chain(down).map(|node| Action::Ask { node: node.clone() }).collect();
        let mut round = ReadRound {
            replicas: replicas.to_vec(),
            replies: vec![Reply::Pending; replicas.len()],
            required,
            policy,
            heard: Vec::new(),
            merged: None,
            failures: Vec::new(),
            stage: Stage::Reading,
        };
        round.settle(&mut actions);
        (round, actions)
    }

    /// Takes in what happened; returns what to do next.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Read { node, state } => {
                if self.report(&node, Reply::Read) {
                    if let Some(state) = &state {
                        self.merge(state);
                    }
                    self.heard.push((node, state));
                }
            }
            Event::Failed { node, cause } => {
                if self.report(&node, Reply::Failed) && self.stage == Stage::Reading {
                    self.failures.push((node.to_string(), cause));
                }
            }
            Event::Deadline if self.stage == Stage::Reading => {
                let pending = self.replicas.iter().zip(&self.replies);
                let unheard = pending.filter(|(_, reply)| **reply == Reply::Pending);
                let timeouts = unheard.map(|(node, _)| (node.to_string(), "timeout".to_string()));
                self.failures.extend(timeouts);
                self.fail(&mut actions);
                return actions;
            }
            Event::LateOver if self.stage == Stage::HearingLate => {
                self.repair(&mut actions);
                return actions;
            }
            Event::Deadline | Event::LateOver => return actions,
        }
        self.settle(&mut actions);
        actions
    }

    /// True once the client is answered and read repair is decided.
    pub fn done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Records `node`'s reply; false if it is not a replica asked or has reported already.
    fn report(&mut self, node: &NodeId, reply: Reply) -> bool {
        let Some(i) = self.replicas.iter().position(|r| r == node) else { return false };
        if self.stage == Stage::Done || self.replies[i] != Reply::Pending {
            return false;
        }
        self.replies[i] = reply;
        true
    }

    fn merge(&mut self, state: &DvvSet) {
        match &mut self.merged {
            Some(merged) => merged.merge(state, self.policy),
            None => self.merged = Some(state.clone()),
        }
    }

    fn all_reported(&self) -> bool {
        !self.replies.contains(&Reply::Pending)
    }

    /// Answers once R replicas have answered or every one has reported; repairs once every
    /// one has reported after the answer.
    fn settle(&mut self, actions: &mut Vec<Action>) {
        match self.stage {
            Stage::Reading if self.heard.len() >= self.required => {
                let answer = ReadResult { state: self.merged.clone(), answered: self.heard.len() };
                actions.push(Action::Answer(Ok(answer)));
                if self.all_reported() {
                    self.repair(actions);
                } else {
                    self.stage = Stage::HearingLate;
                    actions.push(Action::HearLate);
                }
            }
            Stage::Reading if self.all_reported() => self.fail(actions),
            Stage::HearingLate if self.all_reported() => self.repair(actions),
            Stage::Reading | Stage::HearingLate | Stage::Done => {}
        }
    }

    fn fail(&mut self, actions: &mut Vec<Action>) {
        self.stage = Stage::Done;
        let failures = std::mem::take(&mut self.failures);
        let short = Shortfall { required: self.required, answered: self.heard.len(), failures };
        actions.push(Action::Answer(Err(short)));
    }

    /// The merge goes to every replica heard whose state differs from it.
    fn repair(&mut self, actions: &mut Vec<Action>) {
        self.stage = Stage::Done;
        let Some(merged) = &self.merged else { return };
        let behind = self.heard.iter().filter(|(_, state)| state.as_ref() != Some(merged));
        actions.extend(
            behind.map(|(node, _)| Action::Repair { node: node.clone(), state: merged.clone() }),
        );
    }
}

#[cfg(test)]
mod tests {
    use concord_types::ConflictPolicy::{Lww, Siblings};

    use super::*;
    use crate::round_fixture::{Placement, merged, n, shortfall, written};
    use Action::{Answer, Ask, HearLate, Repair};

    fn read(node: &str, state: &DvvSet) -> Event {
        Event::Read { node: n(node), state: Some(state.clone()) }
    }

    fn not_found(node: &str) -> Event {
        Event::Read { node: n(node), state: None }
    }

    fn failed(node: &str, cause: &str) -> Event {
        Event::Failed { node: n(node), cause: cause.into() }
    }

    fn ask(node: &str) -> Action {
        Ask { node: n(node) }
    }

    fn repair(node: &str, state: &DvvSet) -> Action {
        Repair { node: n(node), state: state.clone() }
    }

    fn answer(state: Option<&DvvSet>, answered: usize) -> Action {
        Answer(Ok(ReadResult { state: state.cloned(), answered }))
    }

    /// A value written on a fresh key by actor 1, and the value actor 1 wrote over it.
    fn old_and_new() -> (DvvSet, DvvSet) {
        let old = written(&DvvSet::new(), 1, "old", 10, Siblings);
        let new = written(&old, 1, "new", 20, Siblings);
        (old, new)
    }

    #[test]
    fn r_answers_are_enough_and_equal_replicas_get_no_repair() {
        let (_, v) = old_and_new();
        let (mut round, start) = Placement::new().read(Siblings);
        assert_eq!(start, vec![ask("a"), ask("b"), ask("c")]);
        assert_eq!(round.on(read("b", &v)), vec![]);
        assert_eq!(round.on(read("a", &v)), vec![answer(Some(&v), 2), HearLate]);
        assert!(!round.done(), "c is still heard, for read repair");
        assert_eq!(round.on(read("c", &v)), vec![], "nobody is behind");
        assert!(round.done());
    }

    #[test]
    fn replicas_reported_down_are_asked_last() {
        let (_, start) = Placement::new().down(&["a", "b"]).read(Siblings);
        assert_eq!(start, vec![ask("c"), ask("a"), ask("b")]);
    }

    #[test]
    fn a_read_short_of_r_fails_once_every_replica_has_reported() {
        let (_, v) = old_and_new();
        let (mut round, _) = Placement::new().read(Siblings);
        assert_eq!(round.on(failed("b", "down")), vec![]);
        assert_eq!(round.on(failed("c", "error: refused")), vec![], "a may still answer");
        let answer = round.on(read("a", &v));
        let short = shortfall(2, 1, &[("b", "down"), ("c", "error: refused")]);
        assert_eq!(answer, vec![Answer(Err(short))], "and repairs nothing");
        assert!(round.done());
    }

    #[test]
    fn at_the_deadline_the_replicas_not_heard_time_out() {
        let (old, new) = old_and_new();
        let (mut round, _) = Placement::new().required(3).read(Siblings);
        assert_eq!(round.on(read("a", &new)), vec![]);
        assert_eq!(round.on(failed("c", "error: refused")), vec![]);
        let answer = round.on(Event::Deadline);
        let short = shortfall(3, 1, &[("c", "error: refused"), ("b", "timeout")]);
        assert_eq!(answer, vec![Answer(Err(short))]);
        assert!(round.done());
        assert_eq!(round.on(read("b", &old)), vec![], "a late answer repairs nothing");
        assert_eq!(round.on(Event::Deadline), vec![], "answered once");
    }

    #[test]
    fn late_answers_are_heard_until_the_wait_is_over_and_repaired() {
        let (old, new) = old_and_new();
        let (mut round, _) = Placement::new().required(1).read(Siblings);
        assert_eq!(round.on(read("a", &new)), vec![answer(Some(&new), 1), HearLate]);
        assert_eq!(round.on(Event::Deadline), vec![], "the client has its answer");
        assert_eq!(round.on(read("b", &old)), vec![], "b is behind, c not heard yet");
        assert_eq!(round.on(Event::LateOver), vec![repair("b", &new)], "c is left alone");
        assert!(round.done());
        assert_eq!(round.on(read("c", &old)), vec![], "too late to be repaired");
    }

    #[test]
    fn repair_targets_only_the_replicas_behind_or_missing_the_key() {
        let (old, new) = old_and_new();
        let (mut round, _) = Placement::new().required(3).read(Siblings);
        assert_eq!(round.on(read("a", &new)), vec![]);
        assert_eq!(round.on(not_found("b")), vec![]);
        let done = round.on(read("c", &old));
        assert_eq!(done, vec![answer(Some(&new), 3), repair("b", &new), repair("c", &new)]);
        assert!(round.done());

        let (mut failing, _) = Placement::new().read(Siblings);
        assert_eq!(failing.on(read("a", &old)), vec![]);
        assert_eq!(failing.on(failed("b", "timeout")), vec![]);
        let done = failing.on(read("c", &new));
        assert_eq!(done, vec![answer(Some(&new), 2), repair("a", &new)], "b failed: left alone");
    }

    #[test]
    fn a_key_no_replica_holds_is_an_answer_with_nothing_to_repair() {
        let (mut round, _) = Placement::new().read(Siblings);
        assert_eq!(round.on(not_found("a")), vec![]);
        assert_eq!(round.on(not_found("c")), vec![answer(None, 2), HearLate]);
        assert_eq!(round.on(failed("b", "down")), vec![]);
        assert!(round.done());
    }

    #[test]
    fn concurrent_values_come_back_as_siblings_and_both_writers_are_repaired() {
        let one = written(&DvvSet::new(), 1, "one", 10, Siblings);
        let two = written(&DvvSet::new(), 2, "two", 10, Siblings);
        let both = merged(&one, &two, Siblings);
        assert_eq!(both.values().count(), 2);
        let (mut round, _) = Placement::new().required(3).read(Siblings);
        assert_eq!(round.on(read("c", &both)), vec![]);
        assert_eq!(round.on(read("a", &one)), vec![]);
        let done = round.on(read("b", &two));
        assert_eq!(done, vec![answer(Some(&both), 3), repair("a", &both), repair("b", &both)]);
    }

    #[test]
    fn a_last_write_wins_tie_resolves_alike_whichever_replica_answers_first() {
        // Two blind writes at the same time: the larger dot (actor 2's) wins, and the merged
        // history covers both, so each replica is behind it.
        let one = written(&DvvSet::new(), 1, "one", 10, Lww);
        let two = written(&DvvSet::new(), 2, "two", 10, Lww);
        let winner = merged(&one, &two, Lww);
        assert_eq!(winner.siblings(), two.siblings(), "actor 2's value alone");
        for (first, second) in [(&one, &two), (&two, &one)] {
            let (mut round, _) = Placement::new().owners(&["a", "b"]).read(Lww);
            assert_eq!(round.on(read("a", first)), vec![]);
            let done = round.on(read("b", second));
            let expected =
                vec![answer(Some(&winner), 2), repair("a", &winner), repair("b", &winner)];
            assert_eq!(done, expected);
        }
    }
}
