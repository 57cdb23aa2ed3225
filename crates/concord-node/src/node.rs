//! Building a node from its configuration, and taking it down.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use concord_storage::{
    Batch, Durability, FjallOptions, FjallStorage, ObjectStore, ObjectStoreOptions, Space, Storage,
};
use concord_types::{ActorId, ClusterId, NamespaceConfig, NamespaceName, WallClock};
use rand::Rng;

use crate::config::DurabilityMode;
use crate::database::{Database, DatabaseParts};
use crate::identity::{DataDirLock, lock_data_dir};
use crate::namespaces::Namespaces;
use crate::{Config, Error, Identity, Metrics};

const ACTOR_PREFIX: &[u8] = b"actor/";

/// The system clock.
struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// A running node: its database and the lock on its data dir.
pub struct Node {
    database: Arc<Database>,
    config: Config,
    /// Held until the node is dropped, so a second process cannot open the same data dir.
    _lock: DataDirLock,
}

impl Node {
    /// Opens the data dir (creating identity and storage on first start), recovers storage,
    /// and makes sure the `default` namespace exists. Needs a tokio runtime.
    pub fn open(config: Config) -> Result<Node, Error> {
        config.validate()?;
        let data_dir = &config.node.data_dir;
        let lock = lock_data_dir(data_dir)?;
        let identity = Identity::load_or_create(
            data_dir,
            &config.node.id,
            config.cluster.partitions,
            draw_identity,
        )?;
        let engine = FjallOptions {
            memtable_bytes: config.storage.memtable_bytes,
            background_threads: config.storage.background_threads,
        };
        let storage: Arc<dyn Storage> =
            Arc::new(FjallStorage::open(&data_dir.join("db"), &engine)?);
        let actors = load_or_draw_actors(storage.as_ref(), identity.partitions)?;
        let namespaces = Namespaces::load(storage.clone())?;
        if namespaces.get(NamespaceName::DEFAULT).is_err() {
            let default = NamespaceName::new(NamespaceName::DEFAULT).expect("valid name");
            namespaces.create(default, NamespaceConfig::default())?;
        }
        let metrics = Arc::new(Metrics::new());
        let options = ObjectStoreOptions {
            durability: match config.storage.durability {
                DurabilityMode::Sync => Durability::Sync,
                DurabilityMode::Buffered => Durability::Buffered,
            },
            batch_max: config.storage.commit_batch_max,
            queue_max: config.storage.commit_queue_max,
        };
        let objects = ObjectStore::start(storage, options, metrics.clone());
        let peer_addr = if config.peer.advertise.is_empty() {
            config.peer.addr.clone()
        } else {
            config.peer.advertise.clone()
        };
        let database = Arc::new(Database::new(DatabaseParts {
            identity,
            objects,
            namespaces,
            actors,
            clock: Arc::new(SystemClock),
            metrics,
            request_timeout: Duration::from_millis(config.limits.request_timeout_ms),
            peer_addr,
        }));
        Ok(Node { database, config, _lock: lock })
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.database
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Flushes everything acknowledged and stops the committer.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.database.close().await
    }
}

fn draw_identity() -> (String, ClusterId) {
    let mut rng = rand::rng();
    (format!("n-{:08x}", rng.random::<u32>()), ClusterId(rng.random()))
}

/// This node's replica incarnation for each partition. An actor is drawn the first time the node
/// holds the partition and kept as long as its data is (DESIGN.md §4).
fn load_or_draw_actors(storage: &dyn Storage, partitions: u16) -> Result<Vec<ActorId>, Error> {
    let mut actors = Vec::with_capacity(partitions as usize);
    let mut drawn = Batch::new();
    let mut rng = rand::rng();
    for partition in 0..partitions {
        let key = [ACTOR_PREFIX, &partition.to_be_bytes()].concat();
        let actor = match storage.get(Space::Meta, &key)? {
            Some(bytes) => {
                let bytes: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                    Error::Startup(format!("corrupt actor record for partition {partition}"))
                })?;
                ActorId(u64::from_be_bytes(bytes))
            }
            None => {
                let actor = ActorId(rng.random_range(1..=u64::MAX));
                drawn.put(Space::Meta, key, actor.0.to_be_bytes().to_vec());
                actor
            }
        };
        actors.push(actor);
    }
    if !drawn.is_empty() {
        storage.commit(drawn, Durability::Sync)?;
    }
    Ok(actors)
}
