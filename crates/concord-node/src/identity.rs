//! The node's identity, persisted in `<data_dir>/identity.toml` on first start: node id,
//! cluster id, partition count, and the incarnation drawn with the data dir (the cluster refuses
//! a known node id that comes back with another incarnation: it lost its data). A data dir that holds another node's identity is refused
//! (DESIGN.md §3, invariant 7), and so is a data dir another process has open.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use concord_types::{ClusterId, NodeId};
use serde::{Deserialize, Serialize};

use crate::Error;

const IDENTITY_FILE: &str = "identity.toml";
const LOCK_FILE: &str = "LOCK";

/// Who this node is. Written once, never changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node_id: NodeId,
    pub cluster_id: ClusterId,
    pub partitions: u16,
    pub incarnation: u64,
}

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    node_id: String,
    cluster_id: String,
    partitions: u16,
    /// Absent in identity files written before incarnations existed: 0.
    #[serde(default)]
    incarnation: u64,
}

/// A fresh incarnation for a new data dir.
pub fn draw_incarnation() -> u64 {
    rand::random()
}

/// An exclusive lock on a data dir, held for the life of the node.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the data dir's lock, creating the dir if needed.
pub fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, Error> {
    let startup = |what: &str, e: &dyn std::fmt::Display| {
        Error::Startup(format!("{what} {}: {e}", data_dir.display()))
    };
    fs::create_dir_all(data_dir).map_err(|e| startup("cannot create data dir", &e))?;
    let path = data_dir.join(LOCK_FILE);
    let file = File::create(&path).map_err(|e| startup("cannot create lock in", &e))?;
    file.try_lock().map_err(|_| {
        Error::Startup(format!("data dir {} is in use by another process", data_dir.display()))
    })?;
    Ok(DataDirLock { _file: file, path })
}

impl Identity {
    /// Loads the identity stored in `data_dir`, if any. `configured_id` is the operator's
    /// `--node-id` ("" for none); it must match a stored id.
    pub fn load(data_dir: &Path, configured_id: &str) -> Result<Option<Identity>, Error> {
        let path = data_dir.join(IDENTITY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let identity = Self::read(&path)?;
        if !configured_id.is_empty() && configured_id != identity.node_id.as_str() {
            return Err(Error::Startup(format!(
                "data dir {} belongs to node {:?}, not {configured_id:?}",
                data_dir.display(),
                identity.node_id.as_str()
            )));
        }
        Ok(Some(identity))
    }

    /// Persists the identity in `data_dir`.
    pub fn write(&self, data_dir: &Path) -> Result<(), Error> {
        self.write_file(&data_dir.join(IDENTITY_FILE))
    }

    /// Loads the identity from `data_dir`, or creates it on first start.
    ///
    /// `configured_id` is the operator's `--node-id` ("" for none); it must match a stored id.
    /// `fresh` draws the ids of a new node and cluster.
    pub fn load_or_create(
        data_dir: &Path,
        configured_id: &str,
        partitions: u16,
        fresh: impl FnOnce() -> (String, ClusterId),
    ) -> Result<Identity, Error> {
        if let Some(identity) = Self::load(data_dir, configured_id)? {
            if partitions != identity.partitions {
                tracing::warn!(
                    configured = partitions,
                    stored = identity.partitions,
                    "cluster.partitions is fixed at cluster creation; using the stored value"
                );
            }
            return Ok(identity);
        }
        let (drawn_id, cluster_id) = fresh();
        let node_id = if configured_id.is_empty() { drawn_id } else { configured_id.to_string() };
        let identity = Identity {
            node_id: NodeId::new(node_id)?,
            cluster_id,
            partitions,
            incarnation: draw_incarnation(),
        };
        identity.write(data_dir)?;
        Ok(identity)
    }

    fn read(path: &Path) -> Result<Identity, Error> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::Startup(format!("cannot read identity {}: {e}", path.display()))
        };
        let text = fs::read_to_string(path).map_err(|e| bad(&e))?;
        let file: IdentityFile = toml::from_str(&text).map_err(|e| bad(&e))?;
        Ok(Identity {
            node_id: NodeId::new(file.node_id).map_err(|e| bad(&e))?,
            cluster_id: file.cluster_id.parse().map_err(|e| bad(&e))?,
            partitions: file.partitions,
            incarnation: file.incarnation,
        })
    }

    /// Writes atomically: a temporary file, fsync, rename, fsync of the directory.
    fn write_file(&self, path: &Path) -> Result<(), Error> {
        let io = |e: std::io::Error| {
            Error::Startup(format!("cannot write identity {}: {e}", path.display()))
        };
        let file = IdentityFile {
            node_id: self.node_id.to_string(),
            cluster_id: self.cluster_id.to_string(),
            partitions: self.partitions,
            incarnation: self.incarnation,
        };
        let text = toml::to_string(&file).expect("identity serializes");
        let tmp = path.with_extension("toml.tmp");
        let mut out = File::create(&tmp).map_err(io)?;
        out.write_all(text.as_bytes()).map_err(io)?;
        out.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)?;
        let dir = path.parent().expect("identity path has a parent");
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (String, ClusterId) {
        ("n-drawn".into(), ClusterId(42))
    }

    #[test]
    fn identity_is_created_once_and_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = Identity::load_or_create(dir.path(), "", 64, fresh).unwrap();
        assert_eq!(first.node_id.as_str(), "n-drawn");
        let again = Identity::load_or_create(dir.path(), "", 64, || ("other".into(), ClusterId(7)))
            .unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn a_data_dir_of_another_node_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Identity::load_or_create(dir.path(), "alpha", 64, fresh).unwrap();
        let err = Identity::load_or_create(dir.path(), "beta", 64, fresh).unwrap_err();
        assert!(err.to_string().contains("belongs to node \"alpha\""), "{err}");
    }

    #[test]
    fn a_data_dir_can_be_locked_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
