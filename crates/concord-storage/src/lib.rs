//! Local storage: the byte-level [`Storage`] trait, its engines, and the [`ObjectStore`] that
//! keeps one DVV set per key and commits writes in groups.
//!
//! Layout:
//! - [`engine`]: the `Storage` trait (named keyspaces of ordered bytes, atomic batches with a
//!   durability mode). Engines: [`FjallStorage`] (an LSM tree with a journal, for production) and
//!   [`MemoryStorage`] (for tests and simulation).
//! - [`objects`]: [`ObjectStore`], the single committer. Request handlers hand it updates; it
//!   applies every waiting update to the stored DVV sets as one batch, makes the batch durable
//!   with one fsync, and then acknowledges them all (group commit, DESIGN.md §7). Because every
//!   read-modify-write of a DVV set happens inside this one thread, two concurrent writes to a key
//!   can never both start from the same stored state (DESIGN.md §4).
//! - [`keys`]: every key stored, by keyspace (data, hints, meta, raft, and the strong groups'
//!   group-log and group-state): one file to read.
//! - [`meta`]: the records of the meta space (last-alive time, single-node namespaces).
//! - [`stored_state`]: [`StoredState`], the one encoding of a key's DVV set on disk and where
//!   stored bytes cross the wire (a format-version byte, then postcard), decoded and validated
//!   in one place.
//! - [`hints`]: writes held for another replica (hinted handoff), in their own space.
//! - [`tree`]: anti-entropy hash trees per partition replica, kept current by the committer.
//! - [`tombstones`]: which tombstones are past their grace and may be purged.
//! - [`writeback`]: new table files written back to disk in small steps as the engine writes
//!   them, so a journal fsync never queues behind a whole table.
//! - [`engine_watch`]: the engine's background work (flushes, compactions, journal files),
//!   sampled into events for the log and the metrics, to line write stalls up with it.
//!
//! This crate knows nothing of the network; [`StoredState`] only says how stored bytes serialize
//! where they cross it.

pub mod engine;
pub mod engine_watch;
pub mod hints;
pub mod keys;
pub mod meta;
pub mod objects;
pub mod stored_state;
pub mod tombstones;
pub mod tree;
pub mod writeback;

mod error;
mod fjall_engine;
mod memory;

pub use engine::{Batch, Durability, Space, Storage};
pub use engine_watch::{EngineEvent, EngineObserver, EngineState, EngineWatch};
pub use error::{StorageError, too_many_siblings};
pub use fjall_engine::{FjallOptions, FjallStorage};
pub use hints::Hint;
pub use keys::{HintKey, ObjectKey};
pub use memory::MemoryStorage;
pub use objects::{
    CommitKind, CommitObserver, CommitTiming, Listing, LiveKeys, ObjectChunk, ObjectStore,
    ObjectStoreOptions, Update,
};
pub use stored_state::{StoredState, StoredStateError};
pub use tombstones::{Expired, Sweep};
pub use tree::{HashTree, Trees};
