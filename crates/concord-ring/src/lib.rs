//! Placement: which partition a key belongs to, which nodes hold each partition, and what must
//! move when the membership changes.
//!
//! # Keys to partitions
//!
//! `partition = hash(namespace, key) mod Q`, with Q fixed at cluster creation (a power of two,
//! default 64). The hash is XXH3-64 over the namespace id and the key, a function whose output is
//! specified and stable across versions: it decides where data lives on disk, so it must never
//! change ([`PartitionCount::partition_of`]).
//!
//! # Partitions to nodes: the [`Ring`]
//!
//! Every partition has an ordered preference list of `width = min(REPLICAS_MAX, members)`
//! distinct members. A namespace of `n` replicas stores the partition on the first
//! `min(n, width)` of them, primary first; the members outside the list are its fallbacks. One
//! ring serves every replica count, so the claim algorithm balances every prefix of the lists,
//! not only the primaries.
//!
//! The ring changes one node at a time ([`Ring::rebalance`] takes out the leavers, then adds the
//! joiners, each in sorted order), and each step moves as little as possible, prefix by prefix:
//! on a join every prefix gains at most the new node, which gets its fair share
//! (`⌊Qn/m⌋` or `⌈Qn/m⌉`) of every prefix `n`; on a leave exactly the prefixes that held the
//! leaver gain one node each and nothing else changes. Within those rules it balances load:
//!
//! * guaranteed: every member is primary of `⌊Q/m⌋` or `⌈Q/m⌉` partitions after every step
//!   (with fewer partitions than members, some members are primary of none);
//! * measured and tested, not proven: every member's count in every deeper prefix stays within 3
//!   of its fair share, and is exactly fair with at least 16 partitions per member. See the
//!   `claim` module for how, and for the numbers.
//!
//! Everything is deterministic: the same ring and membership give the same next ring on every
//! node and every platform.
//!
//! # Transitions
//!
//! [`changes`] compares two rings for a namespace of `n` replicas: for every partition whose
//! replica set differs, the nodes that must receive its data and the nodes that may drop it once
//! they have.
//!
//! # Layout
//!
//! * `ring.rs`: [`Ring`], its accessors and its stored form.
//! * `claim.rs`: the claim algorithm on index lists; `claim/balance.rs` balances deeper
//!   prefixes; `claim/tests.rs` holds the property tests of every guarantee above.
//! * `transition.rs`: [`changes`] and [`PartitionChange`].
//! * `error.rs`: [`RingError`].
//! * `examples/balance_survey.rs`: measures balance over random histories.
//!
//! Pure: no I/O, no clock, no randomness. Depends only on `concord-types`.

mod claim;
mod error;
mod ring;
mod transition;

pub use error::RingError;
pub use ring::{MEMBERS_MAX, Ring};
pub use transition::{PartitionChange, changes};

use concord_types::{Key, NamespaceId, PartitionId};

/// Default number of partitions.
pub const PARTITIONS_DEFAULT: u16 = 64;

/// The fixed partition count of a cluster: a power of two from 1 to 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionCount(u16);

impl PartitionCount {
    pub const MAX: u16 = 4096;

    pub fn new(count: u16) -> Option<Self> {
        (count.is_power_of_two() && count <= Self::MAX).then_some(Self(count))
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// Every partition id, in order.
    pub fn all(self) -> impl Iterator<Item = PartitionId> {
        (0..self.0).map(PartitionId)
    }

    /// The partition that holds `key` of namespace `ns`.
    pub fn partition_of(self, ns: NamespaceId, key: &Key) -> PartitionId {
        let mut input = Vec::with_capacity(4 + key.as_bytes().len());
        input.extend_from_slice(&ns.0.to_be_bytes());
        input.extend_from_slice(key.as_bytes());
        let hash = xxhash_rust::xxh3::xxh3_64(&input);
        PartitionId((hash % u64::from(self.0)) as u16)
    }
}

impl Default for PartitionCount {
    fn default() -> Self {
        Self(PARTITIONS_DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_count_must_be_a_power_of_two() {
        assert!(PartitionCount::new(64).is_some());
        assert!(PartitionCount::new(1).is_some());
        assert!(PartitionCount::new(0).is_none());
        assert!(PartitionCount::new(48).is_none());
        assert!(PartitionCount::new(8192).is_none());
    }

    /// The placement function is part of the on-disk format; these values must never change.
    #[test]
    fn placement_is_stable() {
        let q = PartitionCount::default();
        let key = Key::new(b"hello".to_vec()).unwrap();
        let p = q.partition_of(NamespaceId(1), &key);
        assert_eq!(p, q.partition_of(NamespaceId(1), &key));
        let expected = xxhash_rust::xxh3::xxh3_64(b"\0\0\0\x01hello") % 64;
        assert_eq!(u64::from(p.0), expected);
    }

    #[test]
    fn keys_spread_over_all_partitions() {
        let q = PartitionCount::default();
        let mut counts = vec![0u32; 64];
        for i in 0..64_000u32 {
            let key = Key::new(format!("key{i:09}").into_bytes()).unwrap();
            counts[q.partition_of(NamespaceId(7), &key).0 as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 800 && *max < 1200, "unbalanced: min {min} max {max}");
    }
}
