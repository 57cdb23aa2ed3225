//! The nemesis's network partitions, drawn from a seed: which directed links between nodes a
//! partition cuts. Pure, so each shape is tested for what it promises; the runner turns the cut
//! links into each node's fault-injection rules.

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::SliceRandom;

/// The partition shapes Jepsen's nemeses use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    /// Two random halves that cannot reach each other.
    Halves,
    /// One random node cut off from every other.
    Isolate,
    /// Each node sees a majority (itself and its nearest ring neighbours), no two the same set.
    /// Degenerates to no cut below five nodes, where every majority is everyone's.
    MajoritiesRing,
    /// Two halves, and one node that sees both.
    Bridge,
    /// Messages from one random half to the other are dropped; the other way works.
    OneWay,
}

/// A directed link: messages from `.0` to `.1`.
pub type Link = (usize, usize);

/// The links `shape` cuts among `n` nodes (indices `0..n`), shuffled by `rng`.
pub fn cut_links(shape: Partition, n: usize, rng: &mut impl Rng) -> BTreeSet<Link> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let both_ways = |a: &[usize], b: &[usize]| -> BTreeSet<Link> {
        a.iter().flat_map(|&x| b.iter().flat_map(move |&y| [(x, y), (y, x)])).collect()
    };
    match shape {
        Partition::Halves => {
            let (a, b) = order.split_at(n / 2);
            both_ways(a, b)
        }
        Partition::Isolate => both_ways(&order[..1], &order[1..]),
        Partition::MajoritiesRing => {
            // Node at ring position i sees positions within `reach` of it: 2 * reach + 1 nodes,
            // the smallest odd count that is a majority.
            let reach = (n / 2).div_ceil(2);
            let mut cut = BTreeSet::new();
            for i in 0..n {
                for j in 0..n {
                    let distance = i.abs_diff(j).min(n - i.abs_diff(j));
                    if distance > reach {
                        cut.insert((order[i], order[j]));
                    }
                }
            }
            cut
        }
        Partition::Bridge => {
            // order[0] is the bridge: it keeps every link.
            let rest = &order[1..];
            let (a, b) = rest.split_at(rest.len() / 2);
            both_ways(a, b)
        }
        Partition::OneWay => {
            let (a, b) = order.split_at(n / 2);
            a.iter().flat_map(|&x| b.iter().map(move |&y| (x, y))).collect()
        }
    }
}

/// The nodes `node` can still send to under `cut` (itself included).
pub fn reachable(node: usize, n: usize, cut: &BTreeSet<Link>) -> BTreeSet<usize> {
    (0..n).filter(|&other| !cut.contains(&(node, other))).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn symmetric(cut: &BTreeSet<Link>) -> bool {
        cut.iter().all(|&(a, b)| cut.contains(&(b, a)))
    }

    #[test]
    fn every_shape_keeps_its_promise_for_every_seed_and_size() {
        for seed in 0..50u64 {
            for n in 3..=7 {
                let mut rng = StdRng::seed_from_u64(seed);
                let halves = cut_links(Partition::Halves, n, &mut rng);
                assert!(symmetric(&halves));
                let sides: BTreeSet<usize> =
                    (0..n).map(|i| reachable(i, n, &halves).len()).collect();
                assert_eq!(sides, BTreeSet::from([n / 2, n - n / 2]), "seed {seed} n {n}");

                let isolated = cut_links(Partition::Isolate, n, &mut rng);
                let alone: Vec<usize> =
                    (0..n).filter(|&i| reachable(i, n, &isolated).len() == 1).collect();
                assert_eq!(alone.len(), 1, "seed {seed} n {n}");
                assert_eq!(isolated.len(), 2 * (n - 1));

                let ring = cut_links(Partition::MajoritiesRing, n, &mut rng);
                assert!(symmetric(&ring));
                let views: BTreeSet<BTreeSet<usize>> =
                    (0..n).map(|i| reachable(i, n, &ring)).collect();
                assert!(views.iter().all(|v| v.len() > n / 2), "every node sees a majority");
                if n >= 5 {
                    assert_eq!(views.len(), n, "no two nodes see the same majority");
                }

                let bridge = cut_links(Partition::Bridge, n, &mut rng);
                let bridges: Vec<usize> =
                    (0..n).filter(|&i| reachable(i, n, &bridge).len() == n).collect();
                assert_eq!(bridges.len(), 1, "exactly one node sees everyone: seed {seed} n {n}");
                assert!(symmetric(&bridge));

                let one_way = cut_links(Partition::OneWay, n, &mut rng);
                assert!(
                    !one_way.is_empty() && one_way.iter().all(|&(a, b)| !one_way.contains(&(b, a)))
                );
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_cut() {
        let draw = |seed| cut_links(Partition::Halves, 5, &mut StdRng::seed_from_u64(seed));
        assert_eq!(draw(7), draw(7));
        assert!((0..20).any(|s| draw(s) != draw(7)), "different seeds draw different cuts");
    }
}
