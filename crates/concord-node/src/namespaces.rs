//! The namespace registry: names, dense ids and configurations, persisted in the meta space.
//!
//! On one node the registry is local. When clustering lands, namespaces move into the Raft
//! metadata log (`concord-meta`) and this registry becomes its read view.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use concord_storage::Storage;
use concord_storage::meta::{self, StoredNamespace as Namespace};
use concord_types::{Consistency, NamespaceConfig, NamespaceName};

use crate::Error;

/// A namespace as shown to clients: its configuration and the replica count actually placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceView {
    pub name: String,
    pub config: NamespaceConfig,
    pub effective_replicas: usize,
}

/// All namespaces of the node, cached in memory and written through to storage.
pub struct Namespaces {
    storage: Arc<dyn Storage>,
    by_name: RwLock<BTreeMap<String, Arc<Namespace>>>,
    /// Serialises creations so two racing creates of one name cannot both allocate an id.
    create_lock: Mutex<()>,
}

impl Namespaces {
    /// Loads every namespace from the meta space.
    pub fn load(storage: Arc<dyn Storage>) -> Result<Self, Error> {
        let mut by_name = BTreeMap::new();
        for namespace in meta::namespaces(&*storage)? {
            by_name.insert(namespace.name.to_string(), Arc::new(namespace));
        }
        Ok(Self { storage, by_name: RwLock::new(by_name), create_lock: Mutex::new(()) })
    }

    pub fn get(&self, name: &str) -> Result<Arc<Namespace>, Error> {
        let by_name = self.by_name.read().expect("namespace lock poisoned");
        by_name.get(name).cloned().ok_or_else(|| Error::NamespaceNotFound(name.to_string()))
    }

    pub fn all(&self) -> Vec<Arc<Namespace>> {
        self.by_name.read().expect("namespace lock poisoned").values().cloned().collect()
    }

    /// Creates a namespace. Returns `false` if it already exists with the same configuration.
    pub fn create(&self, name: NamespaceName, config: NamespaceConfig) -> Result<bool, Error> {
        config.validate()?;
        if config.consistency == Consistency::Strong {
            return Err(Error::InvalidArgument(
                "strong namespaces are not available yet; use \"eventual\"".into(),
            ));
        }
        let _creating = self.create_lock.lock().expect("namespace create lock poisoned");
        if let Ok(existing) = self.get(name.as_str()) {
            return if existing.config == config {
                Ok(false)
            } else {
                Err(Error::NamespaceConflict { name: name.to_string() })
            };
        }
        let id = meta::next_namespace_id(&*self.storage)?;
        let namespace = Namespace { id, name, config };
        meta::store_namespace(&*self.storage, &namespace)?;
        let mut by_name = self.by_name.write().expect("namespace lock poisoned");
        by_name.insert(namespace.name.to_string(), Arc::new(namespace));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use concord_storage::MemoryStorage;
    use concord_types::{ConflictPolicy, NamespaceId};

    use super::*;

    fn name(s: &str) -> NamespaceName {
        NamespaceName::new(s).unwrap()
    }

    #[test]
    fn create_is_idempotent_for_identical_config_and_refuses_a_different_one() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let namespaces = Namespaces::load(storage.clone()).unwrap();
        assert!(namespaces.create(name("carts"), NamespaceConfig::default()).unwrap());
        assert!(!namespaces.create(name("carts"), NamespaceConfig::default()).unwrap());
        let lww = NamespaceConfig { conflicts: ConflictPolicy::Lww, ..Default::default() };
        assert!(matches!(
            namespaces.create(name("carts"), lww.clone()),
            Err(Error::NamespaceConflict { .. })
        ));
        assert!(namespaces.create(name("sessions"), lww).unwrap());

        let reloaded = Namespaces::load(storage).unwrap();
        assert_eq!(reloaded.get("carts").unwrap().id, NamespaceId(1));
        assert_eq!(reloaded.get("sessions").unwrap().id, NamespaceId(2));
        assert!(matches!(reloaded.get("nope"), Err(Error::NamespaceNotFound(_))));
    }

    #[test]
    fn strong_namespaces_are_refused_for_now() {
        let namespaces = Namespaces::load(Arc::new(MemoryStorage::new())).unwrap();
        let strong = NamespaceConfig { consistency: Consistency::Strong, ..Default::default() };
        assert!(matches!(namespaces.create(name("locks"), strong), Err(Error::InvalidArgument(_))));
        assert!(namespaces.all().is_empty());
    }
}
