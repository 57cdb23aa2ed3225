//! The second half of every round: balancing prefix `n` among the old nodes.
//!
//! A move changes one list, or for a joiner two, so that one node leaves prefix `n` and another
//! enters, and no shorter prefix changes (see [`Move`]). A move is allowed only if the step stays
//! minimal afterwards: on a join old nodes only move later and the joiner keeps its position in
//! every prefix; on a leave remaining nodes only move earlier than where they were.
//!
//! Each allowed move is an edge `from → to` between nodes. A node above its fair share sheds one
//! list along a shortest path of edges to a node below its share, as an augmenting path in a
//! flow: nodes inside the path give one list and take one. When no node outside the bound can
//! be repaired the bound is widened by one and the search repeats, so the worst deviation left
//! is the smallest this search finds, usually none. Every repair moves one node strictly closer
//! and none further, so the search ends.
//!
//! On a leave, paths that keep every list's newcomer (the outsider a full list takes in) where
//! it is are preferred: the newcomer decides the deepest prefix, and one brought forward or
//! swapped early is fixed there before that prefix's round.

use std::cmp::Reverse;
use std::collections::VecDeque;

use super::{Change, Step, fair_share, tiebreak};

/// A change to one list at level `n` that takes one node out of prefix `n` and puts another in,
/// leaving shorter prefixes as they are. Positions `n-1..` are rotated, so deeper prefixes change
/// too, which is fine: they are settled in later rounds.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// The node at `from` moves to `n-1`; those at `n-1..from` move one later.
    Rotate { from: usize },
    /// `outsider` enters at `n-1`; those at `n-1..out` move one later and the one at `out`
    /// leaves the list.
    Enter { outsider: usize, out: usize },
    /// Join only: the joiner, placed at `n-1` of this list in this round, goes to `n-1` of
    /// list `target` instead. This list gets back the node it pushed out of prefix `n`, and
    /// `target` pushes out its own. The joiner's share of every prefix is unchanged.
    Relocate { target: usize },
}

/// One allowed move: `from` leaves prefix `n` of `partition` and `to` enters it.
#[derive(Debug, Clone, Copy)]
struct Edge {
    from: usize,
    to: usize,
    partition: usize,
    action: Move,
}

impl Step<'_> {
    /// Second half of round `n`: brings every node's count in prefix `n` within its fair share,
    /// or as close as the allowed moves get. Prefix 1 needs nothing: placing the joiner or
    /// refilling the leaver's holes balances it exactly.
    pub(super) fn balance_level(&mut self, n: usize) {
        if n < 2 || n > self.width {
            return;
        }
        let partitions = self.rows.len();
        let (lo, hi) = fair_share(partitions, n, self.members());
        let mut load = self.load(n);
        // No load exceeds Q, so the widest bound always holds: this bounds the loop.
        for slack in 0..=partitions {
            let (low, high) = (lo.saturating_sub(slack), hi + slack);
            while let Some(path) = self.find_repair(n, &load, low, high) {
                for edge in path {
                    self.apply(n, edge);
                    load[edge.from] -= 1;
                    load[edge.to] += 1;
                }
            }
            let fixed = self.fixed();
            if (0..load.len()).all(|x| x == fixed || (low..=high).contains(&load[x])) {
                return;
            }
        }
        unreachable!("every prefix load is between 0 and Q");
    }

    /// The node whose load is not balanced here: the joiner's is exact, the leaver holds none.
    pub(super) fn fixed(&self) -> usize {
        match self.change {
            Change::Join { joiner } => joiner,
            Change::Leave { leaver } => leaver,
        }
    }

    /// A path of moves that brings one node outside `low..=high` one step closer, without
    /// pushing any other node outside it.
    fn find_repair(&self, n: usize, load: &[usize], low: usize, high: usize) -> Option<Vec<Edge>> {
        let fixed = self.fixed();
        let excess = |x: usize| load[x].saturating_sub(high).max(low.saturating_sub(load[x]));
        let mut violators: Vec<usize> =
            (0..load.len()).filter(|&x| x != fixed && excess(x) > 0).collect();
        if violators.is_empty() {
            return None;
        }
        violators.sort_by_key(|&x| (Reverse(excess(x)), x));
        let all_edges = self.edges(n);
        let settles = |e: &&Edge| !self.unsettles_newcomer(e);
        let calm: Vec<Edge> = all_edges.iter().filter(settles).copied().collect();
        if calm.len() < all_edges.len()
            && let Some(path) = self.find_path(&calm, &violators, load, low, high)
        {
            return Some(path);
        }
        self.find_path(&all_edges, &violators, load, low, high)
    }

    /// Whether a leave's move changes which outsider joins a full list, or brings it forward:
    /// that commits the deepest prefix, which later rounds can otherwise still balance.
    fn unsettles_newcomer(&self, edge: &Edge) -> bool {
        match (self.change, edge.action) {
            (Change::Leave { .. }, Move::Enter { .. }) => true,
            (Change::Leave { .. }, Move::Rotate { .. }) => {
                !self.old.row(edge.partition).contains(&edge.to)
            }
            _ => false,
        }
    }

    fn find_path(
        &self,
        edges: &[Edge],
        violators: &[usize],
        load: &[usize],
        low: usize,
        high: usize,
    ) -> Option<Vec<Edge>> {
        let fixed = self.fixed();
        let (mut outgoing, mut incoming) =
            (vec![Vec::new(); load.len()], vec![Vec::new(); load.len()]);
        for (index, edge) in edges.iter().enumerate() {
            outgoing[edge.from].push(index);
            incoming[edge.to].push(index);
        }
        violators.iter().find_map(|&start| {
            if load[start] > high {
                search(start, &outgoing, edges, |e| e.to, |y| y != fixed && load[y] < high)
            } else {
                search(start, &incoming, edges, |e| e.from, |y| y != fixed && load[y] > low)
            }
        })
    }

    /// Every move allowed at level `n`, in a fixed order that varies per partition.
    fn edges(&self, n: usize) -> Vec<Edge> {
        let mut edges = Vec::new();
        for partition in 0..self.rows.len() {
            self.partition_edges(partition, n, &mut edges);
        }
        if let Change::Join { joiner } = self.change {
            self.relocation_edges(joiner, n, &mut edges);
        }
        edges.sort_by_cached_key(|e| (e.from, tiebreak(e.partition, &self.names[e.to], n)));
        edges
    }

    fn partition_edges(&self, partition: usize, n: usize, edges: &mut Vec<Edge>) {
        let row = &self.rows[partition];
        let top = n - 1;
        let from = row[top];
        for at in n..row.len() {
            if !self.may_move_later(partition, row[at - 1], at - 1) {
                break;
            }
            if self.may_move_up(partition, row[at], top) {
                let action = Move::Rotate { from: at };
                edges.push(Edge { from, to: row[at], partition, action });
            }
        }
        if self.width != self.old.width {
            return;
        }
        let shift_to =
            |out: usize| (top..out).all(|at| self.may_move_later(partition, row[at], at));
        match self.change {
            Change::Join { .. } => {
                let Some(outsider) = self.dropped[partition] else { return };
                let out = self.width - 1;
                if shift_to(out)
                    && self.may_move_later(partition, row[out], out)
                    && self.may_move_up(partition, outsider, top)
                {
                    let action = Move::Enter { outsider, out };
                    edges.push(Edge { from, to: outsider, partition, action });
                }
            }
            Change::Leave { leaver } => {
                let old_row = self.old.row(partition);
                let Some(out) = (top..row.len()).find(|&at| !old_row.contains(&row[at])) else {
                    return;
                };
                if !shift_to(out) {
                    return;
                }
                for outsider in (0..self.names.len()).filter(|&x| x != leaver && !row.contains(&x))
                {
                    let action = Move::Enter { outsider, out };
                    edges.push(Edge { from, to: outsider, partition, action });
                }
            }
        }
    }

    /// Moves of this round's placements of the joiner, one per pair of nodes: the list that
    /// gives a node back is chosen by that node alone and the list that takes the joiner by the
    /// node it pushes out alone, so the moves along one path never share a list.
    fn relocation_edges(&self, joiner: usize, n: usize, edges: &mut Vec<Edge>) {
        let top = n - 1;
        let nodes = self.names.len();
        let mut gives_back: Vec<Option<(u64, usize)>> = vec![None; nodes];
        let mut takes: Vec<Option<(u64, usize)>> = vec![None; nodes];
        for (partition, row) in self.rows.iter().enumerate() {
            let key = tiebreak(partition, &self.names[joiner], n);
            let slot = if row.get(top) == Some(&joiner) && row.len() > n {
                &mut gives_back[row[n]]
            } else if !row.contains(&joiner) {
                &mut takes[row[top]]
            } else {
                continue;
            };
            if slot.is_none_or(|(best, _)| key < best) {
                *slot = Some((key, partition));
            }
        }
        for (to, back) in gives_back.iter().enumerate() {
            let Some((_, partition)) = back else { continue };
            for (from, take) in takes.iter().enumerate() {
                if let Some((_, target)) = take
                    && from != to
                {
                    let action = Move::Relocate { target: *target };
                    edges.push(Edge { from, to, partition: *partition, action });
                }
            }
        }
    }

    /// Whether `node`, now at `position`, may move one place later (or off the end) and keep
    /// the step minimal: on a join any old node may, on a leave only one that is not later than
    /// it used to be, or the newcomer.
    fn may_move_later(&self, partition: usize, node: usize, position: usize) -> bool {
        let was = self.old.row(partition).iter().position(|&x| x == node);
        match self.change {
            Change::Join { joiner } => node != joiner,
            Change::Leave { .. } => was.is_none_or(|was| was > position),
        }
    }

    /// Whether `node` may move up to `position`: on a join only back to where it was or later,
    /// on a leave always.
    fn may_move_up(&self, partition: usize, node: usize, position: usize) -> bool {
        let was = self.old.row(partition).iter().position(|&x| x == node);
        match self.change {
            Change::Join { .. } => was.is_some_and(|was| was <= position),
            Change::Leave { .. } => true,
        }
    }

    fn apply(&mut self, n: usize, edge: Edge) {
        let top = n - 1;
        if let Move::Relocate { target } = edge.action {
            return self.relocate(n, edge, target);
        }
        let row = &mut self.rows[edge.partition];
        assert_eq!(row[top], edge.from, "stale move");
        match edge.action {
            Move::Rotate { from } => {
                assert_eq!(row[from], edge.to, "stale move");
                row[top..=from].rotate_right(1);
            }
            Move::Enter { outsider, out } => {
                let leaving = row[out];
                row[top..=out].rotate_right(1);
                row[top] = outsider;
                if let Change::Join { .. } = self.change {
                    self.dropped[edge.partition] = Some(leaving);
                }
            }
            Move::Relocate { .. } => unreachable!("handled above"),
        }
    }

    fn relocate(&mut self, n: usize, edge: Edge, target: usize) {
        let Change::Join { joiner } = self.change else { unreachable!("a join step") };
        let top = n - 1;
        let row = &mut self.rows[edge.partition];
        assert_eq!((row[top], row[n]), (joiner, edge.to), "stale move");
        row.remove(top);
        row.extend(self.dropped[edge.partition].take());
        let row = &mut self.rows[target];
        assert_eq!(row[top], edge.from, "stale move");
        row.insert(top, joiner);
        if row.len() > self.width {
            self.dropped[target] = row.pop();
        }
    }
}

/// Breadth-first search from `start` along `adjacency` (edge indices; `next` names the node an
/// edge leads to) for the nearest node that satisfies `goal`. Returns the path's edges.
fn search(
    start: usize,
    adjacency: &[Vec<usize>],
    edges: &[Edge],
    next: impl Fn(&Edge) -> usize,
    goal: impl Fn(usize) -> bool,
) -> Option<Vec<Edge>> {
    let mut reached_by: Vec<Option<usize>> = vec![None; adjacency.len()];
    let mut visited = vec![false; adjacency.len()];
    visited[start] = true;
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &index in &adjacency[node] {
            let reached = next(&edges[index]);
            if visited[reached] {
                continue;
            }
            visited[reached] = true;
            reached_by[reached] = Some(index);
            if goal(reached) {
                let mut path = Vec::new();
                let mut at = reached;
                while let Some(index) = reached_by[at] {
                    let edge = edges[index];
                    path.push(edge);
                    at = if edge.to == at { edge.from } else { edge.to };
                }
                return Some(path);
            }
            queue.push_back(reached);
        }
    }
    None
}
