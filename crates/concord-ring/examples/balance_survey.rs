//! Measures how far prefix loads stray from their fair share over random membership histories:
//! the numbers behind "measured, not proven" in the `claim` module's documentation.
//!
//! ```text
//! cargo run --release -p concord-ring --example balance_survey -- [histories] [steps] [Q...]
//! ```
//!
//! Each history starts from one member and takes `steps` random joins and leaves (joins while
//! there are fewer than 12 members, with probability 0.55), seeded by its index, so a run is
//! reproducible. For every partition count it prints how many steps left some prefix off its
//! fair share `⌊Qn/m⌋..=⌈Qn/m⌉`, and the largest distance seen per prefix length.

use concord_ring::{PartitionCount, Ring};
use concord_types::NodeId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MEMBERS_MAX: usize = 12;

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let histories = args.first().copied().unwrap_or(100);
    let steps = args.get(1).copied().unwrap_or(40);
    let partitions: Vec<u16> = match args.get(2..) {
        Some(qs) if !qs.is_empty() => qs.iter().map(|&q| q as u16).collect(),
        _ => vec![8, 16, 32, 64, 128, 256],
    };
    for q in partitions {
        let q = PartitionCount::new(q).expect("a power of two up to 4096");
        let (mut off_steps, mut all_steps, mut worst) = (0, 0, [0usize; 7]);
        for history in 0..histories {
            let mut rng = StdRng::seed_from_u64(history);
            let mut next_id = 1;
            let mut members = vec![node(0)];
            let mut ring = Ring::new(q, &members).unwrap();
            for _ in 0..steps {
                if members.len() < MEMBERS_MAX && (members.len() == 1 || rng.random_bool(0.55)) {
                    members.push(node(next_id));
                    next_id += 1;
                } else {
                    members.remove(rng.random_range(0..members.len()));
                }
                ring = ring.rebalance(&members).unwrap();
                let distances = distances(&ring);
                all_steps += 1;
                off_steps += usize::from(distances.iter().any(|&d| d > 0));
                for (n, d) in distances.into_iter().enumerate() {
                    worst[n] = worst[n].max(d);
                }
            }
        }
        println!(
            "Q={:4}: {off_steps:6} of {all_steps} steps off balance; largest distance by prefix \
             length 1..=7: {worst:?}",
            q.get()
        );
    }
}

fn node(i: usize) -> NodeId {
    NodeId::new(format!("node-{i}")).unwrap()
}

/// For each prefix length, the largest distance of any member's count from its fair share.
fn distances(ring: &Ring) -> Vec<usize> {
    let (q, m) = (usize::from(ring.partitions().get()), ring.members().len());
    (1..=ring.width())
        .map(|n| {
            let (low, high) = ((q * n) / m, (q * n).div_ceil(m));
            let distance = |x: &NodeId| {
                let count = ring.replica_count(x, n);
                low.saturating_sub(count).max(count.saturating_sub(high))
            };
            ring.members().iter().map(distance).max().unwrap_or(0)
        })
        .collect()
}
