//! Reads of many keys of one partition: listings bounded in keys looked at, byte-bounded
//! chunks for handoff and tombstone sweeps, anti-entropy segment reads, counts. All of it is
//! blocking work (engine scans), run on the background lane, never on an async worker.

use std::collections::BTreeSet;

use concord_types::{DvvSet, Key, NamespaceId, PartitionId};

use super::ObjectStore;
use crate::keys::prefix_end;
use crate::stored_state::decode_stored;
use crate::{ObjectKey, Space, StorageError, StoredState, tree};

/// Which live keys of a partition [`ObjectStore::scan_live`] lists, and how far it looks.
#[derive(Debug, Clone, Copy)]
pub struct Listing<'a> {
    /// Only keys starting with these bytes.
    pub prefix: &'a [u8],
    /// Only keys after this one.
    pub after: Option<&'a [u8]>,
    /// Most keys returned.
    pub limit: usize,
    /// Most stored keys looked at, tombstones included (at least 1).
    pub examine_max: usize,
}

/// A page of a partition's live keys (see [`ObjectStore::scan_live`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LiveKeys {
    pub keys: Vec<Key>,
    /// Set when the page stopped because it looked at as many stored keys as it may: the last
    /// key looked at. Every live key up to it is in `keys`; more may follow it.
    pub stopped_at: Option<Key>,
}

/// A chunk of a partition's objects (see [`ObjectStore::scan_objects`]).
#[derive(Debug, Default)]
pub struct ObjectChunk {
    /// Keys with their stored states, still encoded: the chunk is shipped as is, and the
    /// receiver decodes (and so validates) each with [`StoredState::decode`].
    pub objects: Vec<(Key, StoredState)>,
    /// Encoded size of the chunk, keys included.
    pub bytes: usize,
    /// Whether objects after the last one may exist.
    pub more: bool,
}

impl ObjectStore {
    /// Up to `limit` keys of one partition that start with `prefix`, come after `after` and are
    /// not deleted, in key order (see [`Listing`]), looking at no more than `examine_max`
    /// stored keys (tombstones included): a listing never walks an unbounded run of
    /// tombstones. If the bound stopped the scan first, [`LiveKeys::stopped_at`] is the last
    /// key looked at: the partition's live keys up to it are all returned, and the next page
    /// starts after it. Values are read in small chunks and not kept. Blocking work.
    pub fn scan_live(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        listing: Listing<'_>,
    ) -> Result<LiveKeys, StorageError> {
        const CHUNK: usize = 64;
        let Listing { prefix, after, limit, examine_max } = listing;
        let examine_max = examine_max.max(1);
        let base = ObjectKey::partition_prefix(namespace, partition);
        let with_base = |suffix: &[u8]| [base.as_slice(), suffix].concat();
        let mut start = match after {
            Some(after) if after >= prefix => with_base(&[after, &[0u8]].concat()),
            _ => with_base(prefix),
        };
        let end = match prefix_end(prefix) {
            Some(end) => with_base(&end),
            None => prefix_end(&base).expect("partition prefix is never all 0xff"),
        };
        let mut out = LiveKeys::default();
        let mut examined = 0;
        while out.keys.len() < limit && start < end {
            let want = CHUNK.min(examine_max - examined);
            let chunk = self.storage.scan(Space::Data, &start, &end, want)?;
            let exhausted = chunk.len() < want;
            for (raw_key, bytes) in chunk {
                start = [raw_key.as_slice(), &[0u8]].concat();
                examined += 1;
                let (object, state) = decode_entry(&raw_key, &bytes)?;
                let live = !state.is_deleted();
                if examined == examine_max && !(live && out.keys.len() + 1 == limit) {
                    out.stopped_at = Some(object.key.clone());
                }
                if live {
                    out.keys.push(object.key);
                    if out.keys.len() == limit {
                        break;
                    }
                }
            }
            if exhausted || out.stopped_at.is_some() {
                break;
            }
        }
        Ok(out)
    }

    /// One chunk of a partition's objects, tombstones included, in key order after `after`:
    /// at most `max_objects` and at most `max_bytes` of keys and encoded states, except that a
    /// single object larger than `max_bytes` makes a chunk of its own. Returns the objects,
    /// their encoded size, and whether more may follow. Handoff streams a partition with this.
    pub fn scan_objects(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        after: Option<&Key>,
        max_objects: usize,
        max_bytes: usize,
    ) -> Result<ObjectChunk, StorageError> {
        let base = ObjectKey::partition_prefix(namespace, partition);
        let start = match after {
            Some(after) => [base.as_slice(), after.as_bytes(), &[0u8]].concat(),
            None => base.clone(),
        };
        let end = prefix_end(&base).expect("partition prefix is never all 0xff");
        let mut chunk = ObjectChunk::default();
        let mut cursor = start;
        'pages: while chunk.objects.len() < max_objects && cursor < end {
            let page_size = (max_objects - chunk.objects.len()).min(256);
            let page = self.storage.scan(Space::Data, &cursor, &end, page_size)?;
            let exhausted = page.len() < page_size;
            for (raw_key, bytes) in page {
                cursor = [raw_key.as_slice(), &[0u8]].concat();
                let size = raw_key.len() + bytes.len();
                if !chunk.objects.is_empty() && chunk.bytes + size > max_bytes {
                    chunk.more = true;
                    break 'pages;
                }
                let object = ObjectKey::decode(&raw_key).ok_or_else(|| not_an_object(&raw_key))?;
                chunk.bytes += size;
                chunk.objects.push((object.key, StoredState::from_bytes(bytes)));
                if chunk.bytes >= max_bytes || chunk.objects.len() >= max_objects {
                    chunk.more = true;
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(chunk)
    }

    /// The stored objects of one partition whose keys fall in `segments` of its anti-entropy
    /// tree, raw as stored, at most `max_objects` and at most `max_bytes` of keys and states
    /// (a single larger object is returned alone). Scans the partition: blocking work.
    pub fn objects_in_segments(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
        segments: &BTreeSet<usize>,
        max_objects: usize,
        max_bytes: usize,
    ) -> Result<Vec<(Key, StoredState)>, StorageError> {
        let (mut cursor, end) = ObjectKey::partition_range(namespace, partition);
        let mut out = Vec::new();
        let mut size = 0;
        loop {
            let page = self.storage.scan(Space::Data, &cursor, &end, 1024)?;
            let full = page.len() == 1024;
            for (raw_key, bytes) in page {
                cursor = [raw_key.as_slice(), &[0u8]].concat();
                let object = ObjectKey::decode(&raw_key).ok_or_else(|| not_an_object(&raw_key))?;
                if segments.contains(&tree::segment_of(object.key.as_bytes())) {
                    let grown = size + object.key.as_bytes().len() + bytes.len();
                    if !out.is_empty() && grown > max_bytes {
                        return Ok(out);
                    }
                    size = grown;
                    out.push((object.key, StoredState::from_bytes(bytes)));
                    if out.len() >= max_objects {
                        return Ok(out);
                    }
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Whether any object of the partition is stored here.
    pub fn holds(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
    ) -> Result<bool, StorageError> {
        let (base, end) = ObjectKey::partition_range(namespace, partition);
        Ok(!self.storage.scan(Space::Data, &base, &end, 1)?.is_empty())
    }

    /// How many objects (tombstones included) of the partition are stored here.
    pub fn count(
        &self,
        namespace: NamespaceId,
        partition: PartitionId,
    ) -> Result<usize, StorageError> {
        let (base, end) = ObjectKey::partition_range(namespace, partition);
        let mut start = base;
        let mut count = 0;
        loop {
            let page = self.storage.scan(Space::Data, &start, &end, 1024)?;
            count += page.len();
            match page.last() {
                Some((key, _)) if page.len() == 1024 => start = [key.as_slice(), &[0u8]].concat(),
                _ => return Ok(count),
            }
        }
    }
}

/// Decodes one stored entry of the data space.
fn decode_entry(raw_key: &[u8], bytes: &[u8]) -> Result<(ObjectKey, DvvSet), StorageError> {
    let state = decode_stored(raw_key, bytes)?;
    let object = ObjectKey::decode(raw_key).ok_or_else(|| not_an_object(raw_key))?;
    Ok((object, state))
}

fn not_an_object(raw_key: &[u8]) -> StorageError {
    StorageError::Corrupt { key: raw_key.to_vec(), reason: "not an object key".into() }
}
