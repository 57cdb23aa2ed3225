//! The composition root: builds a [`Node`] from a [`Config`], owns its background work, and
//! exposes the [`Database`] service, the API boundary every front end (HTTP today, RESP and the
//! console later) calls.
//!
//! Layout:
//! - [`config`]: the TOML configuration, its defaults and `CONCORD_*` environment overrides.
//! - [`identity`]: the node id, cluster id and partition count persisted in the data dir.
//! - [`namespaces`]: the namespace registry (persisted in the meta space).
//! - [`database`]: [`Database`], get/put/delete/list and namespace and cluster views.
//! - [`metrics`]: the Prometheus registry the node and its front ends record into.
//!
//! This crate wires protocol pieces together; it must not contain protocol logic itself (that
//! lives in `concord-types`, `concord-ring`, `concord-storage` and, later, `concord-replica`).

pub mod config;
pub mod database;
pub mod identity;
pub mod metrics;
pub mod namespaces;

mod error;
mod node;

pub use config::Config;
pub use database::{
    Database, ListPage, ReadOptions, ReadOutcome, ReplicaCount, Value, WriteOptions, WriteOutcome,
};
pub use error::Error;
pub use identity::Identity;
pub use metrics::Metrics;
pub use namespaces::NamespaceView;
pub use node::Node;
