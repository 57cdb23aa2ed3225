//! The composition root: builds a [`Node`] from a [`Config`], owns its background work, and
//! exposes the [`Database`] service, the API boundary every front end (HTTP today, RESP and the
//! console later) calls.
//!
//! Layout:
//! - [`config`]: the TOML configuration, its defaults and `CONCORD_*` environment overrides.
//! - [`identity`]: the node id, cluster id and partition count persisted in the data dir.
//! - [`namespaces`]: the pre-cluster namespace registry, imported into the metadata when a
//!   data dir from a single-node release founds a cluster.
//! - [`database`]: [`Database`], get/put/delete/list and namespace and cluster views.
//! - `node`: startup (join or bootstrap) and shutdown; `tasks`: the background tasks, stopped
//!   and waited for at shutdown; `peers`: routing peer messages; `downtime`: a node down
//!   longer than the tombstone grace refuses to start; [`departure`]: a node that left or was
//!   removed stops, and does not start again on its old data dir.
//! - [`metrics`]: the Prometheus registry the node and its front ends record into.
//!
//! This crate wires protocol pieces together; it must not contain protocol logic itself (that
//! lives in `concord-types`, `concord-ring`, `concord-storage`, `concord-rpc`,
//! `concord-membership`, `concord-meta` and `concord-replica`).

pub mod config;
pub mod database;
pub mod departure;
pub mod identity;
pub mod metrics;
pub mod namespaces;

mod downtime;
mod error;
mod node;
mod peers;
mod storage_metrics;
mod tasks;

pub use config::Config;
pub use database::{
    AntiEntropyView, ClusterView, Database, DeletionView, FailingMoveView, ListPage, MovesView,
    NodeView, PartitionView, ReadOptions, ReadOutcome, ReplicaCount, ReplicaTreeView, RingView,
    Value, WriteOptions, WriteOutcome,
};
pub use error::Error;
pub use identity::Identity;
pub use metrics::Metrics;
pub use namespaces::NamespaceView;
pub use node::Node;
