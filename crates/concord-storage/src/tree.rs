//! Hash trees for anti-entropy: one per partition replica (namespace, partition), over
//! (key, digest of the stored state).
//!
//! The shape is a fixed-width two-level tree, as in Riak's later "tictac" anti-entropy: a key
//! falls in one of [`SEGMENTS`] leaf segments by a hash of the key; a leaf is the XOR of the
//! entry hashes of its keys, so adding, changing or removing one key is two XORs, in any order,
//! with no rescan. [`SEGMENTS`] / [`BRANCH_WIDTH`] branches each hash their leaves, and the root
//! hashes the branches. Equal contents give equal trees whatever the order of the writes, the
//! memory is fixed (8 KiB of leaves per partition replica, however many keys), and two replicas
//! find their differences by comparing the root, then the branches, then the leaves of differing
//! branches, then the keys of differing segments.

use std::collections::HashMap;
use std::sync::Mutex;

use concord_types::{NamespaceId, PartitionId};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::{ObjectKey, Space, Storage, StorageError};

/// Leaf segments per tree.
pub const SEGMENTS: usize = 1024;
/// Leaves per branch.
pub const BRANCH_WIDTH: usize = 32;
/// Branches per tree.
pub const BRANCHES: usize = SEGMENTS / BRANCH_WIDTH;

/// Seed of the segment hash, distinct from the entry hash.
const SEGMENT_SEED: u64 = 0x5345_474d_454e_5453;

/// The digest of a stored state: a hash of its encoding (which is canonical: equal DVV sets
/// encode equally).
pub fn digest(encoded: &[u8]) -> u64 {
    xxh3_64(encoded)
}

/// The segment a user key falls in.
pub fn segment_of(key: &[u8]) -> usize {
    (xxh3_64_with_seed(key, SEGMENT_SEED) % SEGMENTS as u64) as usize
}

/// What one key contributes to its leaf.
fn entry_hash(key: &[u8], digest: u64) -> u64 {
    let mut bytes = Vec::with_capacity(key.len() + 8);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&digest.to_le_bytes());
    // Never 0, so an entry cannot vanish into an empty leaf.
    xxh3_64(&bytes) | 1
}

/// The hash tree of one partition replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashTree {
    leaves: Vec<u64>,
    keys: u64,
}

impl Default for HashTree {
    fn default() -> Self {
        Self::new()
    }
}

impl HashTree {
    pub fn new() -> Self {
        Self { leaves: vec![0; SEGMENTS], keys: 0 }
    }

    /// Records that `key`'s stored digest went from `old` to `new` (`None`: absent).
    pub fn apply(&mut self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let leaf = &mut self.leaves[segment_of(key)];
        if let Some(old) = old {
            *leaf ^= entry_hash(key, old);
            self.keys -= 1;
        }
        if let Some(new) = new {
            *leaf ^= entry_hash(key, new);
            self.keys += 1;
        }
    }

    /// Keys in the tree (tombstones included).
    pub fn keys(&self) -> u64 {
        self.keys
    }

    pub fn leaves(&self) -> &[u64] {
        &self.leaves
    }

    /// The hash of each branch of leaves.
    pub fn branches(&self) -> Vec<u64> {
        self.leaves.chunks(BRANCH_WIDTH).map(hash_words).collect()
    }

    /// The root: a hash of the branches. Equal for equal contents.
    pub fn root(&self) -> u64 {
        hash_words(&self.branches())
    }

    /// Segments whose leaves differ between two trees.
    pub fn differing_segments(&self, other: &[u64]) -> Vec<usize> {
        self.leaves
            .iter()
            .zip(other)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect()
    }
}

fn hash_words(words: &[u64]) -> u64 {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    xxh3_64(&bytes)
}

/// The trees of every partition replica a node stores, kept current by the committer.
#[derive(Debug, Default)]
pub struct Trees {
    trees: Mutex<HashMap<(NamespaceId, PartitionId), HashTree>>,
}

impl Trees {
    /// Records the changes of one commit: each stored object's raw key in the data space, with
    /// its digest before and after. One lock for the whole batch.
    pub(crate) fn apply_all(&self, changes: Vec<(Vec<u8>, Option<u64>, Option<u64>)>) {
        let mut trees = self.trees.lock().expect("trees lock");
        for (raw_key, old, new) in changes {
            let Some(object) = ObjectKey::decode(&raw_key) else { continue };
            let tree = trees.entry((object.namespace, object.partition)).or_default();
            tree.apply(object.key.as_bytes(), old, new);
            if tree.keys() == 0 {
                trees.remove(&(object.namespace, object.partition));
            }
        }
    }

    /// A copy of one partition replica's tree (empty if nothing is stored).
    pub fn get(&self, namespace: NamespaceId, partition: PartitionId) -> HashTree {
        let trees = self.trees.lock().expect("trees lock");
        trees.get(&(namespace, partition)).cloned().unwrap_or_default()
    }

    /// Rebuilds every tree from the stored data.
    pub fn rebuild_all(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        let mut fresh: HashMap<(NamespaceId, PartitionId), HashTree> = HashMap::new();
        scan_data(storage, &[], &[0xff; 7], |object, digest| {
            let tree = fresh.entry((object.namespace, object.partition)).or_default();
            tree.apply(object.key.as_bytes(), None, Some(digest));
        })?;
        *self.trees.lock().expect("trees lock") = fresh;
        Ok(())
    }
}

/// A partition replica's tree computed from the stored data alone (a check of the incremental
/// one).
pub fn build(
    storage: &dyn Storage,
    namespace: NamespaceId,
    partition: PartitionId,
) -> Result<HashTree, StorageError> {
    let (start, end) = ObjectKey::partition_range(namespace, partition);
    let mut tree = HashTree::new();
    scan_data(storage, &start, &end, |object, digest| {
        tree.apply(object.key.as_bytes(), None, Some(digest));
    })?;
    Ok(tree)
}

fn scan_data(
    storage: &dyn Storage,
    start: &[u8],
    end: &[u8],
    mut each: impl FnMut(ObjectKey, u64),
) -> Result<(), StorageError> {
    const PAGE: usize = 1024;
    let mut cursor = start.to_vec();
    loop {
        let page = storage.scan(Space::Data, &cursor, end, PAGE)?;
        for (raw, bytes) in &page {
            let object = ObjectKey::decode(raw).ok_or_else(|| StorageError::Corrupt {
                key: raw.clone(),
                reason: "not an object key".into(),
            })?;
            each(object, digest(bytes));
        }
        match page.last() {
            Some((raw, _)) if page.len() == PAGE => cursor = [raw.as_slice(), &[0u8]].concat(),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tree_of(entries: &[(Vec<u8>, u64)]) -> HashTree {
        let mut tree = HashTree::new();
        for (key, digest) in entries {
            tree.apply(key, None, Some(*digest));
        }
        tree
    }

    #[test]
    fn an_empty_tree_has_no_keys_and_a_fixed_root() {
        assert_eq!(HashTree::new().keys(), 0);
        assert_eq!(HashTree::new().root(), HashTree::new().root());
        let mut tree = HashTree::new();
        tree.apply(b"k", None, Some(7));
        assert_ne!(tree.root(), HashTree::new().root());
        tree.apply(b"k", Some(7), None);
        assert_eq!(tree, HashTree::new(), "removing the only key empties the tree");
    }

    #[test]
    fn a_changed_digest_shows_in_exactly_its_segment() {
        let entries: Vec<(Vec<u8>, u64)> =
            (0..500u64).map(|i| (format!("key-{i}").into_bytes(), i)).collect();
        let a = tree_of(&entries);
        let mut b = a.clone();
        b.apply(b"key-42", Some(42), Some(4242));
        assert_ne!(a.root(), b.root());
        assert_eq!(a.differing_segments(b.leaves()), vec![segment_of(b"key-42")]);
        assert_eq!(a.keys(), b.keys());
    }

    proptest! {
        /// Equal contents give equal trees whatever the order and history of the writes, and
        /// the segments that differ hold exactly the keys whose digests differ.
        #[test]
        fn trees_depend_only_on_contents(
            writes in proptest::collection::vec((0u8..40, 0u64..4), 0..120),
            seed in any::<u64>(),
        ) {
            // Replica a applies the writes in order; replica b in a shuffled order, each key's
            // final digest being the last one written in `writes` order.
            let mut final_digest: HashMap<Vec<u8>, u64> = HashMap::new();
            let mut a = HashTree::new();
            for (k, d) in &writes {
                let key = vec![*k];
                let old = final_digest.insert(key.clone(), *d);
                a.apply(&key, old, Some(*d));
            }
            let mut shuffled: Vec<(Vec<u8>, u64)> = final_digest.clone().into_iter().collect();
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            let b = tree_of(&shuffled);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.root(), b.root());
            prop_assert_eq!(a.keys() as usize, final_digest.len());

            // Change some keys on b only: exactly their segments differ.
            let mut c = b.clone();
            let mut changed = std::collections::BTreeSet::new();
            for (key, d) in shuffled.iter().take(3) {
                c.apply(key, Some(*d), Some(d + 100));
                changed.insert(segment_of(key));
            }
            let differing: std::collections::BTreeSet<usize> =
                a.differing_segments(c.leaves()).into_iter().collect();
            prop_assert_eq!(differing, changed);
        }
    }
}
