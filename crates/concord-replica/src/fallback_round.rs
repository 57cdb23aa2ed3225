//! The decisions of a write that no replica of its key could be reached for, as a pure state
//! machine: `on(event) -> actions`.
//!
//! The node that took the request holds the write as a hint for every node of the key's write
//! set: those hints are its copy of the write, counted once ([`WriteAcks::for_fallback`]). When
//! the quorum needs more than that one copy, it places one more per replica, a replica at a
//! time, each on the places of `HintPlaces` (the up fallbacks, then this node, as a
//! [`WriteRound`](crate::write_round::WriteRound)'s hints), and stops once the quorum is met or
//! every replica had its try. A strict write (only replicas count, and none took it) and a
//! delete without a context (which needs the stored versions only a replica has) are refused
//! before anything is written.
//!
//! It reads no clock and does no I/O: the driver in `service` mints the write (with an actor
//! drawn for it), executes the hints one at a time and feeds back what happened.

use concord_types::NodeId;

use crate::quorum::{Shortfall, WriteAcks};
use crate::write_round::{HintPlaces, Via};

/// What happened to the last hint asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A hint for `target` is durably held on `holder`.
    Hinted { target: NodeId, holder: Via },
    /// The hint for `target` was not stored.
    HintFailed { target: NodeId, cause: String },
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store a hint for `target` on `via`; answer with `Hinted` or `HintFailed`.
    Hint { target: NodeId, via: Via },
    /// Answer the client: how many nodes hold the write, or why the quorum was not met.
    Answer(Result<usize, Shortfall>),
}

/// How a fallback write is set up.
#[derive(Debug, Clone)]
pub struct FallbackSetup<'a> {
    /// The node that took the write.
    pub me: &'a NodeId,
    /// The key's write set: current replicas and, during a transition, the target ones.
    pub targets: &'a [NodeId],
    /// Where extra copies go, in ring order (never a node of `targets`).
    pub fallbacks: &'a [NodeId],
    /// The nodes SWIM reports down.
    pub down: &'a [NodeId],
    pub required: usize,
    pub strict: bool,
    /// The write is a delete without a context.
    pub blind_delete: bool,
    /// Why each replica tried did not take the write; first in any shortfall.
    pub unreachable: Vec<(String, String)>,
}

/// Where the round stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Holding the hints here; which targets have reported.
    Here {
        reported: Vec<bool>,
    },
    /// Placing an extra copy for `targets[target]`, at place `at` of the hint places.
    Copy {
        target: usize,
        at: usize,
    },
    Answered,
}

/// One fallback write's decisions.
#[derive(Debug, Clone)]
pub struct FallbackRound {
    me: NodeId,
    acks: WriteAcks,
    targets: Vec<NodeId>,
    /// Where extra copies are tried.
    places: HintPlaces,
    /// The places of the copy being placed ([`HintPlaces::order`]).
    copy_places: Vec<Via>,
    /// The fallbacks holding an extra copy so far: the next copy goes elsewhere first.
    copies: Vec<NodeId>,
    required: usize,
    unreachable: Vec<(String, String)>,
    stage: Stage,
}

impl FallbackRound {
    /// The round and its first actions, or why this node refuses the write.
    pub fn start(setup: FallbackSetup<'_>) -> Result<(Self, Vec<Action>), Shortfall> {
        let FallbackSetup {
            me,
            targets,
            fallbacks,
            down,
            required,
            strict,
            blind_delete,
            mut unreachable,
        } = setup;
        if strict {
            return Err(Shortfall { required, answered: 0, failures: unreachable });
        }
        if blind_delete {
            let why = "error: a delete without a context needs a replica of the key";
            unreachable.push((me.to_string(), why.into()));
            return Err(Shortfall { required, answered: 0, failures: unreachable });
        }
        let others: Vec<NodeId> = fallbacks.iter().filter(|f| *f != me).cloned().collect();
        let mut round = FallbackRound {
            me: me.clone(),
            acks: WriteAcks::for_fallback(targets, required),
            targets: targets.to_vec(),
            places: HintPlaces::new(&others, down),
            copy_places: Vec::new(),
            copies: Vec::new(),
            required,
            unreachable,
            stage: Stage::Here { reported: vec![false; targets.len()] },
        };
        let mut actions: Vec<Action> = targets
            .iter()
            .map(|target| Action::Hint { target: target.clone(), via: Via::Here })
            .collect();
        if targets.is_empty() {
            round.held_here(&mut actions);
        }
        Ok((round, actions))
    }

    /// Takes in what happened to the last hint; returns what to do next.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        match (event, self.stage.clone()) {
            (Event::Hinted { target, .. }, Stage::Here { reported }) => {
                if self.report_here(&target, reported) {
                    self.acks.hinted(&target, Some(&self.me));
                    self.after_here(&mut actions);
                }
            }
            (Event::HintFailed { target, cause }, Stage::Here { reported }) => {
                if self.report_here(&target, reported) {
                    self.acks.fail(&target, format!("error: hint not stored: {cause}"));
                    self.after_here(&mut actions);
                }
            }
            (Event::Hinted { target, holder }, Stage::Copy { target: i, .. }) => {
                if self.targets[i] == target {
                    self.acks.hinted(&target, holder.holder());
                    self.copies.extend(holder.holder().cloned());
                    self.copy_from(i + 1, &mut actions);
                }
            }
            (Event::HintFailed { target, .. }, Stage::Copy { target: i, at }) => {
                if self.targets[i] == target {
                    if at + 1 < self.copy_places.len() {
                        self.copy_at(i, at + 1, &mut actions);
                    } else {
                        // No place took this replica's copy: on to the next replica.
                        self.copy_from(i + 1, &mut actions);
                    }
                }
            }
            (_, Stage::Answered) => {}
        }
        actions
    }

    /// True once the client is answered (nothing is outstanding then).
    pub fn done(&self) -> bool {
        self.stage == Stage::Answered
    }

    /// Marks `target`'s hint here reported; false if it is not a target or reported already.
    fn report_here(&mut self, target: &NodeId, mut reported: Vec<bool>) -> bool {
        let Some(i) = self.targets.iter().position(|t| t == target) else { return false };
        if reported[i] {
            return false;
        }
        reported[i] = true;
        self.stage = Stage::Here { reported };
        true
    }

    /// Once every hint here has reported: answer, or place extra copies for a larger quorum.
    fn after_here(&mut self, actions: &mut Vec<Action>) {
        let Stage::Here { reported } = &self.stage else { return };
        if reported.iter().all(|r| *r) {
            self.held_here(actions);
        }
    }

    fn held_here(&mut self, actions: &mut Vec<Action>) {
        if self.acks.satisfied() || self.required <= 1 {
            self.answer(actions);
        } else {
            self.copy_from(0, actions);
        }
    }

    /// The extra copy of the first replica from `i` on, unless the quorum is met or every
    /// replica had its try.
    fn copy_from(&mut self, i: usize, actions: &mut Vec<Action>) {
        if self.acks.satisfied() || i >= self.targets.len() {
            self.answer(actions);
        } else {
            self.copy_places = self.places.order(&self.copies);
            self.copy_at(i, 0, actions);
        }
    }

    fn copy_at(&mut self, i: usize, at: usize, actions: &mut Vec<Action>) {
        self.stage = Stage::Copy { target: i, at };
        let via = self.copy_places[at].clone();
        actions.push(Action::Hint { target: self.targets[i].clone(), via });
    }

    fn answer(&mut self, actions: &mut Vec<Action>) {
        self.stage = Stage::Answered;
        let outcome = self.acks.clone().finish().map_err(|mut short| {
            let mut failures = std::mem::take(&mut self.unreachable);
            failures.append(&mut short.failures);
            short.failures = failures;
            short
        });
        actions.push(Action::Answer(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_fixture::{Placement, n, on, shortfall};
    use Action::{Answer, Hint};

    fn hinted(target: &str, holder: Via) -> Event {
        Event::Hinted { target: n(target), holder }
    }

    fn hint_failed(target: &str, cause: &str) -> Event {
        Event::HintFailed { target: n(target), cause: cause.into() }
    }

    fn hint(target: &str, via: Via) -> Action {
        Hint { target: n(target), via }
    }

    /// The hints for `targets` are held here, with nothing to do yet.
    fn held_here(round: &mut FallbackRound, targets: &[&str]) {
        for target in targets {
            assert_eq!(round.on(hinted(target, Via::Here)), vec![], "hint for {target} here");
        }
    }

    /// Every replica of the key a, b, c was unreachable; f, the fallback after d and e,
    /// takes the write.
    fn taken_by_f() -> Placement {
        Placement::new().me("f").fallbacks(&["d", "e", "f", "g"])
    }

    const UNREACHABLE: [(&str, &str); 3] =
        [("a", "error: unreachable"), ("b", "error: unreachable"), ("c", "down")];

    #[test]
    fn at_w1_the_hints_held_here_are_the_quorum() {
        let (mut round, start) = taken_by_f().required(1).fallback(&UNREACHABLE, false).unwrap();
        assert_eq!(start, vec![hint("a", Via::Here), hint("b", Via::Here), hint("c", Via::Here)]);
        assert_eq!(round.on(hinted("a", Via::Here)), vec![]);
        assert_eq!(round.on(hinted("b", Via::Here)), vec![]);
        assert!(!round.done(), "c has no hint yet");
        assert_eq!(round.on(hinted("c", Via::Here)), vec![Answer(Ok(1))]);
        assert!(round.done());
    }

    #[test]
    fn a_larger_quorum_places_one_more_copy_on_the_first_fallback_up() {
        let (mut round, _) = taken_by_f().down(&["d"]).fallback(&UNREACHABLE, false).unwrap();
        assert_eq!(round.on(hinted("a", Via::Here)), vec![]);
        assert_eq!(round.on(hinted("b", Via::Here)), vec![]);
        assert_eq!(round.on(hinted("c", Via::Here)), vec![hint("a", on("e"))], "d is down");
        assert_eq!(round.on(hinted("a", on("e"))), vec![Answer(Ok(2))], "f and e hold it");
        assert!(round.done());
    }

    #[test]
    fn an_extra_copy_walks_the_places_then_the_next_replica() {
        let (mut round, _) = taken_by_f().fallback(&UNREACHABLE, false).unwrap();
        held_here(&mut round, &["a", "b"]);
        assert_eq!(round.on(hinted("c", Via::Here)), vec![hint("a", on("d"))]);
        assert_eq!(round.on(hint_failed("a", "timeout")), vec![hint("a", on("e"))]);
        assert_eq!(round.on(hint_failed("a", "timeout")), vec![hint("a", Via::Here)]);
        assert_eq!(round.on(hinted("a", Via::Here)), vec![hint("b", on("d"))], "f adds no copy");
        assert_eq!(round.on(hint_failed("b", "timeout")), vec![hint("b", on("e"))]);
        assert_eq!(round.on(hinted("b", on("e"))), vec![Answer(Ok(2))]);
    }

    #[test]
    fn each_extra_copy_goes_to_a_fallback_holding_none_yet() {
        let (mut round, _) = taken_by_f().required(3).fallback(&UNREACHABLE, false).unwrap();
        held_here(&mut round, &["a", "b"]);
        assert_eq!(round.on(hinted("c", Via::Here)), vec![hint("a", on("d"))]);
        assert_eq!(round.on(hinted("a", on("d"))), vec![hint("b", on("e"))], "d holds one");
        assert_eq!(round.on(hinted("b", on("e"))), vec![Answer(Ok(3))], "f, d and e");
        assert!(round.done());
    }

    #[test]
    fn a_quorum_out_of_reach_is_answered_once_every_replica_had_its_try() {
        let placement = taken_by_f().required(3).down(&["e", "g"]);
        let (mut round, _) = placement.fallback(&UNREACHABLE, false).unwrap();
        held_here(&mut round, &["a", "b"]);
        assert_eq!(round.on(hinted("c", Via::Here)), vec![hint("a", on("d"))]);
        assert_eq!(round.on(hinted("a", on("d"))), vec![hint("b", on("d"))], "only d is up");
        assert_eq!(round.on(hinted("b", on("d"))), vec![hint("c", on("d"))], "d counts once");
        let answer = round.on(hinted("c", on("d")));
        assert_eq!(answer, vec![Answer(Err(shortfall(3, 2, &UNREACHABLE)))]);
        assert!(round.done());
        assert_eq!(round.on(hinted("c", on("e"))), vec![], "answered once");
    }

    #[test]
    fn a_hint_not_held_here_leaves_its_replica_to_the_extra_copies() {
        let (mut round, _) = taken_by_f().fallback(&UNREACHABLE, false).unwrap();
        assert_eq!(round.on(hinted("a", Via::Here)), vec![]);
        assert_eq!(round.on(hint_failed("b", "hint limit reached")), vec![]);
        assert_eq!(round.on(hinted("c", Via::Here)), vec![hint("a", on("d"))]);
        assert_eq!(round.on(hinted("a", on("d"))), vec![hint("b", on("e"))], "b lacks a hint");
        assert_eq!(round.on(hinted("b", on("e"))), vec![Answer(Ok(3))], "f, d and e");

        let (mut at_w1, _) = taken_by_f().required(1).fallback(&UNREACHABLE, false).unwrap();
        assert_eq!(at_w1.on(hinted("a", Via::Here)), vec![]);
        assert_eq!(at_w1.on(hint_failed("b", "disk full")), vec![]);
        let answer = at_w1.on(hinted("c", Via::Here));
        let mut failures = UNREACHABLE.to_vec();
        failures.push(("b", "error: hint not stored: disk full"));
        assert_eq!(answer, vec![Answer(Err(shortfall(2, 1, &failures)))], "b is a must");
    }

    #[test]
    fn strict_writes_and_deletes_without_a_context_are_refused() {
        let strict = taken_by_f().strict().fallback(&UNREACHABLE, false).unwrap_err();
        assert_eq!(strict, shortfall(2, 0, &UNREACHABLE));
        let blind = taken_by_f().fallback(&UNREACHABLE, true).unwrap_err();
        let mut failures = UNREACHABLE.to_vec();
        failures.push(("f", "error: a delete without a context needs a replica of the key"));
        assert_eq!(blind, shortfall(2, 0, &failures));
        let both = taken_by_f().strict().fallback(&UNREACHABLE, true).unwrap_err();
        assert_eq!(both, shortfall(2, 0, &UNREACHABLE), "strict is refused first");
    }

    #[test]
    fn during_a_transition_every_node_of_the_write_set_gets_a_hint() {
        let placement = taken_by_f().incoming(&["a", "b", "d"]).fallbacks(&["e", "f"]);
        let (mut round, start) = placement.required(1).fallback(&UNREACHABLE, false).unwrap();
        let here = ["a", "b", "c", "d"].map(|t| hint(t, Via::Here));
        assert_eq!(start, here.to_vec());
        for target in ["a", "b", "c"] {
            assert_eq!(round.on(hinted(target, Via::Here)), vec![]);
        }
        assert_eq!(round.on(hinted("d", Via::Here)), vec![Answer(Ok(1))]);
    }

    #[test]
    fn without_a_ring_there_is_no_one_to_hold_the_write() {
        let placement = Placement::new().me("a").owners(&[]).fallbacks(&[]).required(1);
        let (round, start) = placement.fallback(&[], false).unwrap();
        assert_eq!(start, vec![Answer(Err(shortfall(1, 0, &[])))]);
        assert!(round.done());
    }
}
