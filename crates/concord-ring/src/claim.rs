//! The claim algorithm: the next preference lists after one node joins or one node leaves.
//!
//! Works on [`Lists`], preference lists of member indices, so that the arithmetic is on small
//! integers and the `Ring` type only deals with names. Every function is pure and deterministic:
//! no hash maps, no randomness; where a choice is free, ties are broken by [`tiebreak`], a fixed
//! hash of the partition and the node's name, which spreads a node's partners over many nodes
//! (see "Why a hashed tie-break" below).
//!
//! # Movement
//!
//! Think of each preference list as nested prefixes: a namespace of `n` replicas stores a
//! partition on the first `n` nodes of its list. A ring change is minimal when, for every `n`,
//! no prefix gains a node it did not have to:
//!
//! * **Join of `D`.** An old node may only move later in a list (or off its end, when the list
//!   is full), so every prefix gains at most one node, `D`. `D` is inserted at one position of
//!   some lists; everything after it shifts one place later.
//! * **Leave of `L`.** A remaining node may only move earlier, so exactly the prefixes that held
//!   `L` gain one node each, and every other list is unchanged. The hole left by `L` at position
//!   `k` is filled by a node from later in the list or, when lists are full, from outside it.
//!
//! Within those rules the algorithm is free to choose, and it uses the freedom for balance.
//!
//! # Rounds
//!
//! A step settles prefix 1, then prefix 2, and so on up to the width; round `n` never changes a
//! shorter prefix, so a settled prefix stays settled.
//!
//! * **Join**, round `n`: [`Step::place_joiner`] puts `D` at position `n-1` of just enough lists
//!   that `D` holds `⌊Qn/m⌋` (or `⌈Qn/m⌉`) of prefix `n`, each time in a list whose node at `n-1`
//!   (pushed out of prefix `n`) is the most loaded there. Then the `balance` module evens out the
//!   old nodes.
//! * **Leave**, round `k + 1`: [`Step::refill`] closes every hole at position `k`. A hole at the
//!   primary goes to the least-loaded candidate; deeper holes close by moving the rest of the list
//!   up, which keeps every later node free to move for balancing. Then `balance` evens out
//!   prefix `k + 1`.
//!
//! # What is guaranteed, and what is measured
//!
//! Guaranteed, and asserted on every step:
//!
//! * Primaries are exactly balanced: every member is primary of `⌊Q/m⌋` or `⌈Q/m⌉`
//!   partitions. On a join `D` takes its share one list at a time from a most-loaded primary,
//!   and may go first in any list; on a leave each orphaned primary goes to a least-loaded node,
//!   and every node but `L` is a candidate (later in the list or outside it). Taking from the top
//!   or giving to the bottom of loads that differ by at most one keeps them within one, whatever
//!   share `D` takes.
//! * On a join, `D` holds `⌊Qn/m⌋` or `⌈Qn/m⌉` of every prefix `n`, by construction.
//!
//! Measured, not proven: every other node's count in every prefix within 3 of its fair share
//! `⌊Qn/m⌋..=⌈Qn/m⌉`, and exactly fair with at least 16 partitions per member. The survey
//! (`cargo run --release -p concord-ring --example balance_survey -- 3000 60`: 180,000 random
//! joins and leaves per Q, up to 12 members) finds every prefix exactly fair in every step for
//! Q = 128 and 256, off by 1 in 0.2% of steps for Q = 64, and off in 6% to 17% of steps for
//! Q = 8 to 32, by at most 3. Part of the gap is the movement rule: after a leave
//! a node can only gain lists that held `L` and not itself, so with few partitions per member
//! the lists it shares with `L` decide how close it can get. Part is the search, which settles
//! one prefix at a time: an exhaustive search of small cases sometimes finds a balanced ring
//! the rounds miss. The property tests check exactly the two bounds above.
//!
//! # Why a hashed tie-break
//!
//! Breaking ties by node index makes the same pairs share lists again and again (with ids in
//! join order, "1 then 2" becomes the head of most lists 1 holds). A later leave of node 2 can
//! then give node 1 almost nothing, since 1 already holds most of what 2 leaves. Hashing the
//! partition with the name makes partners vary per partition, as a random claim would, but
//! reproducibly.

mod balance;

use std::cmp::Reverse;

use concord_types::NodeId;
use concord_types::namespace::REPLICAS_MAX;

/// Preference lists as indices into a sorted member list: `flat[p * width + i]` is the node at
/// position `i` of partition `p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lists {
    pub(crate) width: usize,
    pub(crate) flat: Vec<usize>,
}

impl Lists {
    pub(crate) fn from_rows(width: usize, rows: impl IntoIterator<Item = Vec<usize>>) -> Self {
        let mut flat = Vec::new();
        for row in rows {
            assert_eq!(row.len(), width, "a preference list has the wrong width");
            flat.extend(row);
        }
        Self { width, flat }
    }

    pub(crate) fn partitions(&self) -> usize {
        self.flat.len() / self.width
    }

    pub(crate) fn row(&self, partition: usize) -> &[usize] {
        &self.flat[partition * self.width..(partition + 1) * self.width]
    }
}

/// The length of every preference list for `members` nodes.
pub(crate) fn width_for(members: usize) -> usize {
    members.min(REPLICAS_MAX)
}

/// A member's fair share of prefix `n`: `(⌊Qn/m⌋, ⌈Qn/m⌉)`.
pub(crate) fn fair_share(partitions: usize, n: usize, members: usize) -> (usize, usize) {
    let total = partitions * n;
    (total / members, total.div_ceil(members))
}

/// Orders free choices: a fixed function of the partition, the node's name and a salt (the
/// position or level being decided), so that the same inputs always give the same ring.
pub(crate) fn tiebreak(partition: usize, node: &NodeId, salt: usize) -> u64 {
    let seed = ((partition as u64) << 8) | salt as u64;
    xxhash_rust::xxh3::xxh3_64_with_seed(node.as_str().as_bytes(), seed)
}

/// The lists after `names[joiner]` joins. `names` is the new sorted membership, `old` the lists
/// before the join in the same indices (no list holds `joiner`).
pub(crate) fn join(names: &[NodeId], old: &Lists, joiner: usize) -> Lists {
    let width = width_for(names.len());
    let mut step = Step::new(names, old, Change::Join { joiner }, width);
    let mut placed = 0;
    for n in 1..=width {
        placed = step.place_joiner(n, placed);
        step.balance_level(n);
    }
    for n in 1..=width {
        let (low, high) = fair_share(old.partitions(), n, names.len());
        let held = step.load(n)[joiner];
        assert!((low..=high).contains(&held), "the joiner holds {held} of prefix {n}");
    }
    step.finish()
}

/// The lists after `names[leaver]` leaves, in the same indices (no list holds `leaver`); the
/// caller drops `leaver` from the index space. `names` is the membership before the leave.
pub(crate) fn leave(names: &[NodeId], old: &Lists, leaver: usize) -> Lists {
    let width = width_for(names.len() - 1);
    let mut step = Step::new(names, old, Change::Leave { leaver }, width);
    for hole in 0..old.width {
        step.refill(hole);
        step.balance_level(hole + 1);
    }
    step.finish()
}

/// The membership change of one step, by node index.
#[derive(Debug, Clone, Copy)]
enum Change {
    Join { joiner: usize },
    Leave { leaver: usize },
}

/// One join or leave in progress. Prefix `n` is settled at round `n` (the joiner placed or the
/// leaver's holes filled, then balanced) and never changes afterwards.
struct Step<'a> {
    names: &'a [NodeId],
    /// The lists before the step: the movement rules are stated against them.
    old: &'a Lists,
    change: Change,
    /// The width the lists have at the end of the step.
    width: usize,
    /// The lists being built. Until a round reaches them they are the old lists, so their
    /// lengths differ while the width changes.
    rows: Vec<Vec<usize>>,
    /// Join into full lists: the node each list pushed off its end, if the joiner went in.
    dropped: Vec<Option<usize>>,
}

impl<'a> Step<'a> {
    fn new(names: &'a [NodeId], old: &'a Lists, change: Change, width: usize) -> Self {
        let rows = (0..old.partitions()).map(|p| old.row(p).to_vec()).collect();
        let dropped = vec![None; old.partitions()];
        Self { names, old, change, width, rows, dropped }
    }

    fn finish(self) -> Lists {
        Lists::from_rows(self.width, self.rows)
    }

    /// How many members share the partitions at the end of the step.
    fn members(&self) -> usize {
        match self.change {
            Change::Join { .. } => self.names.len(),
            Change::Leave { .. } => self.names.len() - 1,
        }
    }

    /// Every node's count in prefix `n` of the lists as they are now. The leaver counts zero.
    fn load(&self, n: usize) -> Vec<usize> {
        let mut load = vec![0; self.names.len()];
        for row in &self.rows {
            row.iter().take(n).for_each(|&node| load[node] += 1);
        }
        if let Change::Leave { leaver } = self.change {
            load[leaver] = 0;
        }
        load
    }

    /// Round `n` of a join: puts the joiner at position `n-1` of enough more lists that it
    /// holds `⌊Qn/m⌋` or `⌈Qn/m⌉` of prefix `n`; `placed` lists hold it already. Returns the new
    /// count.
    ///
    /// Putting the joiner at `n-1` pushes the node there out of prefix `n`, so each list is taken
    /// from the node that is then most loaded in prefix `n`. For prefix 1 this keeps primaries
    /// exactly balanced (see the module documentation). The joiner takes the larger share when
    /// the smaller would leave some node above its own.
    fn place_joiner(&mut self, n: usize, placed: usize) -> usize {
        let Change::Join { joiner } = self.change else { unreachable!("a join step") };
        let (partitions, position) = (self.rows.len(), n - 1);
        if position >= self.old.width {
            // The lists grow by one: the joiner ends every list that does not hold it yet.
            for row in self.rows.iter_mut().filter(|row| !row.contains(&joiner)) {
                row.push(joiner);
            }
            return partitions;
        }
        let (low, high) = fair_share(partitions, n, self.members());
        let mut load = self.load(n);
        // The node a placement pushes out of prefix `n + 1`: among equally loaded choices,
        // take from the most loaded there too, so the next round starts closer to balance.
        let mut next_load = self.load(n + 1);
        let excess: usize = (0..load.len()).map(|x| load[x].saturating_sub(high)).sum();
        let target = if low.saturating_sub(placed) < excess { high } else { low }.max(placed);
        let mut free: Vec<usize> =
            (0..partitions).filter(|&p| !self.rows[p].contains(&joiner)).collect();
        for _ in placed..target {
            let key = |p: usize| {
                let row = &self.rows[p];
                let next = row.get(n).map_or(0, |&x| next_load[x]);
                (load[row[position]], next, Reverse(tiebreak(p, &self.names[joiner], position)))
            };
            let (index, &partition) = free
                .iter()
                .enumerate()
                .max_by_key(|&(_, &p)| key(p))
                .expect("fewer lists than the joiner's share");
            free.swap_remove(index);
            let row = &mut self.rows[partition];
            load[row[position]] -= 1;
            if let Some(&pushed) = row.get(n) {
                next_load[pushed] -= 1;
            }
            row.insert(position, joiner);
            if row.len() > self.width {
                self.dropped[partition] = row.pop();
            }
        }
        target
    }

    /// Round `hole + 1` of a leave, first half: every list with the leaver at position `hole`
    /// loses it. At the primary the least-loaded candidate takes its place (a node from later in
    /// the list, or from outside a full list); deeper, the next node does. The rest move up, and
    /// a full list takes at its end the outsider least loaded in whole lists. Lists that shrink
    /// and had the leaver last just drop it.
    fn refill(&mut self, hole: usize) {
        let Change::Leave { leaver } = self.change else { unreachable!("a leave step") };
        let full = self.width == self.old.width;
        let mut load = self.load(hole + 1);
        let mut last_load = self.load(self.width);
        for partition in 0..self.rows.len() {
            let old_row = self.old.row(partition);
            if old_row[hole] != leaver {
                continue;
            }
            if hole >= self.width {
                self.rows[partition].remove(hole);
                continue;
            }
            let key = |node: usize, salt: usize| tiebreak(partition, &self.names[node], salt);
            let outsiders: Vec<usize> = if full {
                (0..self.names.len()).filter(|&x| x != leaver && !old_row.contains(&x)).collect()
            } else {
                Vec::new()
            };
            let later = &old_row[hole + 1..];
            let depth = |node: usize| old_row.iter().position(|&x| x == node);
            // A node promoted from deep in the list pins every node it jumps over, and an
            // outsider brought in early is in every deeper prefix: both take freedom from the
            // balancing rounds, so only the primary, which must be exact now, chooses freely,
            // preferring the shallowest of the least loaded.
            let pool: Vec<usize> = match later.first() {
                Some(_) if hole == 0 => later.iter().chain(&outsiders).copied().collect(),
                Some(&next) => vec![next],
                None => outsiders.clone(),
            };
            let heir = pool
                .into_iter()
                .min_by_key(|&node| {
                    (load[node], depth(node).is_none(), depth(node), key(node, hole))
                })
                .expect("a list that loses a node always has a candidate to take its place");
            load[heir] += 1;
            let mut row: Vec<usize> = old_row[..hole].to_vec();
            row.push(heir);
            row.extend(later.iter().copied().filter(|&node| node != heir));
            if row.len() < self.width {
                let outsider = outsiders
                    .iter()
                    .copied()
                    .min_by_key(|&node| (last_load[node], key(node, self.width)))
                    .expect("a full list of a larger membership has an outsider");
                last_load[outsider] += 1;
                row.push(outsider);
            }
            self.rows[partition] = row;
        }
    }
}

#[cfg(test)]
mod tests;
