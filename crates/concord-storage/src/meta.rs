//! The records of the meta space (keys in [`crate::keys::meta`]): what a node keeps about itself
//! beside its data. Each record's encoding is written and read here only.
//!
//! - the last-alive time (`alive`): wall-clock ms, u64 BE, written synced by the downtime guard
//!   of `concord-node`;
//! - namespaces of single-node data dirs (`ns/<name>`, postcard [`StoredNamespace`], and
//!   `ns-next-id`, u32 BE): kept so that a data dir from before clustering still starts, its
//!   namespaces imported into the metadata when the node founds a cluster.

use concord_types::{NamespaceConfig, NamespaceId, NamespaceName};
use serde::{Deserialize, Serialize};

use crate::keys::meta::{ALIVE_KEY, NAMESPACE_NEXT_ID_KEY, NAMESPACE_PREFIX, namespace_key};
use crate::keys::prefix_end;
use crate::{Batch, Durability, Space, Storage, StorageError};

/// When this data dir's node was last recorded alive, in wall-clock ms (`None` if never).
pub fn last_alive(storage: &dyn Storage) -> Result<Option<u64>, StorageError> {
    let Some(bytes) = storage.get(Space::Meta, ALIVE_KEY)? else { return Ok(None) };
    let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| StorageError::Corrupt {
        key: ALIVE_KEY.to_vec(),
        reason: format!("the last-alive record has {} bytes, not 8", bytes.len()),
    })?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

/// Records, durably, that this data dir's node was alive at `at_ms` (wall-clock ms).
pub fn record_alive(storage: &dyn Storage, at_ms: u64) -> Result<(), StorageError> {
    let mut batch = Batch::new();
    batch.put(Space::Meta, ALIVE_KEY.to_vec(), at_ms.to_be_bytes().to_vec());
    storage.commit(batch, Durability::Sync)
}

/// A namespace as a single-node data dir records it: its id and configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredNamespace {
    pub id: NamespaceId,
    pub name: NamespaceName,
    pub config: NamespaceConfig,
}

/// Every namespace record of the data dir, in name order.
pub fn namespaces(storage: &dyn Storage) -> Result<Vec<StoredNamespace>, StorageError> {
    let end = prefix_end(NAMESPACE_PREFIX).expect("the namespace prefix has an end");
    let records = storage.scan(Space::Meta, NAMESPACE_PREFIX, &end, usize::MAX)?;
    records
        .into_iter()
        .map(|(key, value)| {
            postcard::from_bytes(&value).map_err(|e| StorageError::Corrupt {
                key,
                reason: format!("namespace record: {e}"),
            })
        })
        .collect()
}

/// The id the next namespace created in a single-node data dir gets (1 in a fresh one).
pub fn next_namespace_id(storage: &dyn Storage) -> Result<NamespaceId, StorageError> {
    let Some(bytes) = storage.get(Space::Meta, NAMESPACE_NEXT_ID_KEY)? else {
        return Ok(NamespaceId(1));
    };
    let bytes: [u8; 4] = bytes.as_slice().try_into().map_err(|_| StorageError::Corrupt {
        key: NAMESPACE_NEXT_ID_KEY.to_vec(),
        reason: format!("the namespace id counter has {} bytes, not 4", bytes.len()),
    })?;
    Ok(NamespaceId(u32::from_be_bytes(bytes)))
}

/// Records a new namespace and moves the id counter past its id, in one synced batch.
pub fn store_namespace(
    storage: &dyn Storage,
    namespace: &StoredNamespace,
) -> Result<(), StorageError> {
    let record = postcard::to_stdvec(namespace).expect("a namespace record encodes");
    let next = namespace.id.0.checked_add(1).expect("namespace ids are far from u32::MAX");
    let mut batch = Batch::new();
    batch.put(Space::Meta, namespace_key(&namespace.name), record);
    batch.put(Space::Meta, NAMESPACE_NEXT_ID_KEY.to_vec(), next.to_be_bytes().to_vec());
    storage.commit(batch, Durability::Sync)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStorage;

    /// The records are the bytes data dirs already hold: an 8-byte big-endian time, a 4-byte
    /// big-endian counter, and the postcard record under `ns/<name>`; a record of another size
    /// is corruption, never a panic.
    #[test]
    fn meta_records_keep_the_bytes_data_dirs_hold() {
        let storage = MemoryStorage::new();
        assert_eq!(last_alive(&storage).unwrap(), None);
        record_alive(&storage, 0x0102_0304_0506_0708).unwrap();
        let raw = storage.get(Space::Meta, b"alive").unwrap().unwrap();
        assert_eq!(raw, [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(last_alive(&storage).unwrap(), Some(0x0102_0304_0506_0708));

        assert_eq!(next_namespace_id(&storage).unwrap(), NamespaceId(1));
        let carts = StoredNamespace {
            id: NamespaceId(1),
            name: NamespaceName::new("carts").unwrap(),
            config: NamespaceConfig::default(),
        };
        store_namespace(&storage, &carts).unwrap();
        let raw = storage.get(Space::Meta, b"ns/carts").unwrap().unwrap();
        let fields = (carts.id, carts.name.clone(), carts.config.clone());
        assert_eq!(raw, postcard::to_stdvec(&fields).unwrap(), "the fields in order");
        assert_eq!(storage.get(Space::Meta, b"ns-next-id").unwrap().unwrap(), [0, 0, 0, 2]);
        assert_eq!(next_namespace_id(&storage).unwrap(), NamespaceId(2));
        assert_eq!(namespaces(&storage).unwrap(), vec![carts]);

        let mut batch = Batch::new();
        batch.put(Space::Meta, b"alive".to_vec(), vec![1, 2, 3]);
        batch.put(Space::Meta, b"ns-next-id".to_vec(), vec![9]);
        batch.put(Space::Meta, b"ns/broken".to_vec(), vec![0xff]);
        storage.commit(batch, Durability::Sync).unwrap();
        assert!(matches!(last_alive(&storage), Err(StorageError::Corrupt { .. })));
        assert!(matches!(next_namespace_id(&storage), Err(StorageError::Corrupt { .. })));
        assert!(matches!(namespaces(&storage), Err(StorageError::Corrupt { .. })));
    }
}
