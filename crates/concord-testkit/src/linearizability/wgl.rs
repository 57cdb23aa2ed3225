//! The Wing & Gong search with Lowe's memoization, over any sequential [`Model`]: pure, no
//! clock, bounded by a step budget.
//!
//! The history becomes one list of call and return events in real-time order. The search walks
//! it from the front: at a call it tries to linearize that operation next (the model must
//! accept it in the current state); on success it removes the operation's call and return from
//! the list and starts again from the front. Reaching a return means that operation was not
//! linearized before it ended, so the last choice is undone (popped from a stack, its events
//! put back) and the next call after it is tried. Only calls before the first remaining return
//! are ever tried: exactly the operations that could take effect next. Lowe's addition is the
//! cache of configurations seen, (set of linearized operations, model state): two different
//! orders that reach the same configuration have the same future, so the second is cut off.
//!
//! An operation without an end (an unknown outcome) is *optional*: it has no return event, so
//! it may be linearized at any point after its call, or never. The search succeeds once every
//! *required* operation (one with an end) is linearized. Optional operations make Lowe's cache
//! weak: k unknown writes pending give 2^k sets of them placed. So the cache is kept by
//! (required operations placed, state), with the sets of optional ones placed, and a
//! configuration is cut off when one with a subset of its optional operations was explored
//! (`Explored`); each walk over the candidates tries the required ones first, so the small
//! sets tend to come first.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::hash::Hash;

/// A sequential specification: which operations may take effect in which state.
pub trait Model {
    type State: Clone + Eq + Hash;
    type Op;

    /// The state after `op` takes effect in `state`, or `None` if it cannot take effect there
    /// with the outcome it recorded.
    fn step(&self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;
}

/// One operation to place.
#[derive(Debug, Clone)]
pub struct Entry<O> {
    pub op: O,
    pub call_us: u64,
    /// `None`: the operation may take effect at any point after its call, or not at all.
    pub return_us: Option<u64>,
}

/// How far the search got when it found no linearization: the return of `op` (an index into
/// the entries) came with `op` unplaced in every order, and this is the order that reached the
/// latest such return (of those, the one that placed the fewest operations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck<S> {
    pub op: usize,
    /// The operations linearized, in order, at that point.
    pub prefix: Vec<usize>,
    /// The model state after `prefix`.
    pub state: S,
    /// Every operation that could have gone next there (`op` among them).
    pub candidates: Vec<usize>,
}

/// The search's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search<S> {
    /// Every operation with an end, and the chosen operations without one, in a legal order.
    Linearizable {
        order: Vec<usize>,
    },
    NotLinearizable(Stuck<S>),
    /// The budget ran out before either answer was known.
    Undecided,
}

/// The events, in a doubly linked list over arrays so that removing and restoring an
/// operation's events is O(1) (Knuth's dancing links, as Lowe's implementation does).
struct Events {
    /// Node 0 is the head, node `len + 1` the tail; node `1 + i` is the `i`-th event in
    /// real-time order.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Per event node: the operation, and whether it is the call.
    event: Vec<(usize, bool)>,
    /// Per operation: its call node and return node.
    nodes: Vec<(usize, Option<usize>)>,
}

impl Events {
    const HEAD: usize = 0;

    fn new<O>(entries: &[Entry<O>]) -> Events {
        // At equal instants calls sort before returns: two operations whose times touch are
        // taken as concurrent. That can only hide an order, never invent one, so a coarse
        // clock costs sensitivity, not soundness.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(entries.len() * 2);
        for (i, entry) in entries.iter().enumerate() {
            order.push((entry.call_us, false, i));
            if let Some(end) = entry.return_us {
                order.push((end, true, i));
            }
        }
        order.sort_unstable();
        let len = order.len();
        let mut event = vec![(usize::MAX, false); len + 2];
        let mut nodes = vec![(0, None); entries.len()];
        for (n, &(_, is_return, op)) in order.iter().enumerate() {
            let node = n + 1;
            event[node] = (op, !is_return);
            if is_return {
                nodes[op].1 = Some(node);
            } else {
                nodes[op].0 = node;
            }
        }
        let next = (1..=len + 2).collect();
        let prev = std::iter::once(0).chain(0..=len).collect();
        Events { next, prev, event, nodes }
    }

    fn tail(&self) -> usize {
        self.next.len() - 1
    }

    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = self.nodes[op];
        self.unlink(call);
        if let Some(ret) = ret {
            self.unlink(ret);
        }
    }

    /// Undoes [`Events::lift`]; only valid in the reverse order of the lifts.
    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.nodes[op];
        if let Some(ret) = ret {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// A set of operation indices, compact enough to be cached by the million.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn is_subset_of(&self, other: &Bits) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & !b == 0)
    }
}

/// The configurations explored, by (required operations placed, state): the sets of optional
/// operations placed with them. A configuration is covered by one with the same required
/// operations and state and a subset of its optional ones: the smaller set leaves more
/// operations to place, none of them required, so every way on from the larger is a way on
/// from the smaller (leave the extra ones out). Lowe's cache is the case of equal sets; the
/// subsets are what keep a burst of unknown writes from costing every subset of them.
struct Explored<S> {
    by_required: HashMap<(Bits, S), Vec<Bits>>,
    /// An estimate of the memory held, from above (sets dropped as covered are not deducted).
    bytes: u64,
}

impl<S: Clone + Eq + Hash> Explored<S> {
    /// Records the configuration; false if it, or one that covers it, was explored before.
    fn first_visit(&mut self, required: &Bits, optional: &Bits, state: &S) -> bool {
        let set_bytes = (optional.0.len() * 8 + 16) as u64;
        let key = (required.clone(), state.clone());
        let sets = match self.by_required.entry(key) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => {
                let key_bytes = (required.0.len() * 8) as u64;
                self.bytes += key_bytes + std::mem::size_of::<(Bits, S, Vec<Bits>)>() as u64 + 16;
                slot.insert(Vec::new())
            }
        };
        if sets.iter().any(|set| set.is_subset_of(optional)) {
            return false;
        }
        sets.retain(|set| !optional.is_subset_of(set));
        sets.push(optional.clone());
        self.bytes += set_bytes;
        true
    }
}

/// Which operations a walk over the candidates tries: the required ones first, so that
/// configurations with fewer optional operations placed are explored, and cover others,
/// first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Required,
    Optional,
}

/// What a search may spend before it answers [`Search::Undecided`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Model steps tried.
    pub steps_max: u64,
    /// Memory held by the cache of configurations explored (estimated from above).
    pub cache_bytes_max: u64,
}

/// What a search spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    pub steps: u64,
    pub cache_bytes: u64,
}

/// Searches for a linearization of `entries` from `initial` within `budget`. Returns the
/// answer and what it cost.
pub fn search<M: Model>(
    model: &M,
    initial: M::State,
    entries: &[Entry<M::Op>],
    budget: Budget,
) -> (Search<M::State>, Spent) {
    let mut run = Run {
        model,
        entries,
        events: Events::new(entries),
        required_left: entries.iter().filter(|e| e.return_us.is_some()).count(),
        required: Bits::new(entries.len()),
        optional: Bits::new(entries.len()),
        explored: Explored { by_required: HashMap::new(), bytes: 0 },
        stack: Vec::new(),
        state: initial,
        steps: 0,
        furthest: None,
    };
    let answer = run.walk(budget);
    (answer, Spent { steps: run.steps, cache_bytes: run.explored.bytes })
}

/// One search in progress.
struct Run<'a, M: Model> {
    model: &'a M,
    entries: &'a [Entry<M::Op>],
    events: Events,
    /// Operations with an end not placed yet: the search succeeds when none is left.
    required_left: usize,
    /// The operations placed, with an end and without.
    required: Bits,
    optional: Bits,
    explored: Explored<M::State>,
    /// Each choice made: the operation placed and the state before it.
    stack: Vec<(usize, M::State)>,
    state: M::State,
    steps: u64,
    furthest: Option<Stuck<M::State>>,
}

impl<M: Model> Run<'_, M> {
    fn walk(&mut self, budget: Budget) -> Search<M::State> {
        let mut node = self.events.next[Events::HEAD];
        let mut pass = Pass::Required;
        loop {
            if self.required_left == 0 {
                let order = self.stack.iter().map(|(op, _)| *op).collect();
                return Search::Linearizable { order };
            }
            // Every operation with an end has its return in the list, before the tail.
            assert_ne!(node, self.events.tail(), "the search passed an unplaced op's return");
            let (op, is_call) = self.events.event[node];
            if is_call {
                if self.pass_of(op) == pass {
                    if self.steps == budget.steps_max
                        || self.explored.bytes > budget.cache_bytes_max
                    {
                        return Search::Undecided;
                    }
                    self.steps += 1;
                    if self.place(op) {
                        (node, pass) = (self.events.next[Events::HEAD], Pass::Required);
                        continue;
                    }
                }
                node = self.events.next[node];
                continue;
            }
            // `op` ends here unplaced: every candidate before it was tried.
            if pass == Pass::Required {
                (node, pass) = (self.events.next[Events::HEAD], Pass::Optional);
                continue;
            }
            self.note_dead_end(op, node);
            let Some(undone) = self.undo() else {
                let stuck = self.furthest.take().expect("the dead end just met is recorded");
                return Search::NotLinearizable(stuck);
            };
            (node, pass) = (self.events.next[self.events.nodes[undone].0], self.pass_of(undone));
        }
    }

    fn pass_of(&self, op: usize) -> Pass {
        match self.entries[op].return_us {
            Some(_) => Pass::Required,
            None => Pass::Optional,
        }
    }

    fn placed(&mut self, op: usize) -> &mut Bits {
        match self.pass_of(op) {
            Pass::Required => &mut self.required,
            Pass::Optional => &mut self.optional,
        }
    }

    /// Places `op` next if the model accepts it and the configuration is new.
    fn place(&mut self, op: usize) -> bool {
        let Some(after) = self.model.step(&self.state, &self.entries[op].op) else {
            return false;
        };
        self.placed(op).set(op);
        if !self.explored.first_visit(&self.required, &self.optional, &after) {
            self.placed(op).clear(op);
            return false;
        }
        self.stack.push((op, std::mem::replace(&mut self.state, after)));
        self.events.lift(op);
        self.required_left -= usize::from(self.pass_of(op) == Pass::Required);
        true
    }

    /// Takes back the last placement; `None` when there is none left.
    fn undo(&mut self) -> Option<usize> {
        let (undone, before) = self.stack.pop()?;
        self.state = before;
        self.placed(undone).clear(undone);
        self.events.unlift(undone);
        self.required_left += usize::from(self.pass_of(undone) == Pass::Required);
        Some(undone)
    }

    /// Keeps the furthest dead end in real time, and at one the order that placed the fewest.
    fn note_dead_end(&mut self, op: usize, node: usize) {
        let further = match &self.furthest {
            None => true,
            Some(f) => match self.events.nodes[f.op].1.cmp(&Some(node)) {
                Ordering::Less => true,
                Ordering::Equal => self.stack.len() < f.prefix.len(),
                Ordering::Greater => false,
            },
        };
        if further {
            self.furthest = Some(stuck(&self.events, &self.stack, &self.state, op, node));
        }
    }
}

/// The record of a dead end at `return_node`, `op`'s return.
fn stuck<S: Clone>(
    events: &Events,
    stack: &[(usize, S)],
    state: &S,
    op: usize,
    return_node: usize,
) -> Stuck<S> {
    let mut candidates = Vec::new();
    let mut node = events.next[Events::HEAD];
    while node != return_node {
        let (candidate, is_call) = events.event[node];
        if is_call {
            candidates.push(candidate);
        }
        node = events.next[node];
    }
    Stuck {
        op,
        prefix: stack.iter().map(|(op, _)| *op).collect(),
        state: state.clone(),
        candidates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter that only goes up by one: `op` is the value it must reach.
    struct Increments;

    impl Model for Increments {
        type State = u32;
        type Op = u32;
        fn step(&self, state: &u32, op: &u32) -> Option<u32> {
            (*op == state + 1).then_some(*op)
        }
    }

    fn steps(steps_max: u64) -> Budget {
        Budget { steps_max, cache_bytes_max: u64::MAX }
    }

    fn entry(op: u32, call_us: u64, return_us: Option<u64>) -> Entry<u32> {
        Entry { op, call_us, return_us }
    }

    #[test]
    fn concurrent_operations_are_reordered_to_fit_the_model() {
        // 2 and 1 overlap: 1 must go first although 2 was called first.
        let entries = [entry(2, 0, Some(10)), entry(1, 5, Some(20)), entry(3, 30, Some(40))];
        let (answer, _) = search(&Increments, 0, &entries, steps(100));
        assert_eq!(answer, Search::Linearizable { order: vec![1, 0, 2] });
    }

    #[test]
    fn an_order_fixed_by_real_time_that_the_model_refuses_is_stuck_on_the_late_op() {
        // 2 ends before 1 starts, so 2 must go first, which the model refuses.
        let entries = [entry(2, 0, Some(10)), entry(1, 20, Some(30))];
        let (answer, spent) = search(&Increments, 0, &entries, steps(100));
        let expected = Stuck { op: 0, prefix: vec![], state: 0, candidates: vec![0] };
        assert_eq!(answer, Search::NotLinearizable(expected));
        assert_eq!(spent.steps, 1, "only 2 could go first");
    }

    #[test]
    fn an_operation_without_an_end_may_be_left_out_or_placed_late() {
        // 1 has no end: it goes first. 5 has none and never fits: it is left out.
        let entries = [entry(1, 0, None), entry(5, 1, None), entry(2, 50, Some(60))];
        let (answer, _) = search(&Increments, 0, &entries, steps(100));
        assert_eq!(answer, Search::Linearizable { order: vec![0, 2] });
    }

    #[test]
    fn a_spent_budget_is_undecided_with_its_count() {
        let entries: Vec<_> = (1..=20).map(|v| entry(v, 0, Some(100))).collect();
        let (answer, spent) = search(&Increments, 0, &entries, steps(5));
        assert_eq!((answer, spent.steps), (Search::Undecided, 5));
    }

    #[test]
    fn a_full_cache_is_undecided_with_its_size() {
        let entries: Vec<_> = (1..=20).map(|v| entry(v, 0, Some(100))).collect();
        let budget = Budget { steps_max: u64::MAX, cache_bytes_max: 1000 };
        let (answer, spent) = search(&Increments, 0, &entries, budget);
        assert_eq!(answer, Search::Undecided);
        assert!((1000..2000).contains(&spent.cache_bytes), "{spent:?}");
        let (answer, _) = search(&Increments, 0, &entries, steps(1000));
        assert!(matches!(answer, Search::Linearizable { .. }), "within budget it is decided");
    }

    #[test]
    fn the_furthest_dead_end_is_reported() {
        // 1, 2 fine; then a 4 that ends before the 3 starts.
        let entries = [
            entry(1, 0, Some(10)),
            entry(2, 20, Some(30)),
            entry(4, 40, Some(50)),
            entry(3, 60, Some(70)),
        ];
        let (answer, _) = search(&Increments, 0, &entries, steps(100));
        let expected = Stuck { op: 2, prefix: vec![0, 1], state: 2, candidates: vec![2] };
        assert_eq!(answer, Search::NotLinearizable(expected));
    }
}
