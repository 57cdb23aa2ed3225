//! `concord-client`: a Rust client of Concord's HTTP API v1 (`docs/api.md`), used by the CLI,
//! the load generator and the end-to-end tests.
//!
//! ```no_run
//! # async fn demo() -> concord_client::Result<()> {
//! use concord_client::{Client, GetOptions, GetResult, WriteOptions};
//!
//! let client = Client::new("http://127.0.0.1:7700")?;
//! client.put("carts", b"user/42", b"[]".to_vec(), Some("application/json"), None,
//!     WriteOptions::default()).await?;
//! if let GetResult::Value { value, context, .. } =
//!     client.get("carts", b"user/42", GetOptions::default()).await?
//! {
//!     // Write back with the context to replace what was read.
//!     client.put("carts", b"user/42", value, None, Some(&context), WriteOptions::default())
//!         .await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - [`client`]: [`Client`], one keep-alive connection pool and one method per API call.
//! - [`kv`]: key options and results ([`GetResult`], [`Envelope`], [`WriteResult`],
//!   [`ListPage`]).
//! - [`namespace`]: [`NamespaceConfig`], [`NamespaceView`], [`NamespaceDeletion`], [`Quorum`].
//! - [`cluster`]: [`ClusterStatus`], [`Ring`], [`MembershipChange`], [`FaultRules`].
//! - [`error`]: [`Error`], the one error type.
//! - [`path`]: percent-encoding of keys into paths.
//! - [`startup`]: the line a server prints once it serves, written and parsed.
//!
//! This crate speaks the JSON contract only: it must not depend on server crates, so a change
//! in the server's internal types cannot silently change what clients send.

mod binary;
pub mod client;
pub mod cluster;
pub mod error;
pub mod kv;
pub mod namespace;
pub mod path;
pub mod startup;

pub use client::{CONTEXT_HEADER, Client, ClientConfig, REPLICAS_HEADER};
pub use cluster::{
    AntiEntropy, ClusterStatus, FailingMove, FaultRules, MembershipChange, Moves, NodeStatus,
    PartitionReplicas, PartitionTrees, ReplicaTree, Ring,
};
pub use error::{Error, Result};
pub use kv::{
    DEFAULT_CONTENT_TYPE, DeleteResult, Envelope, GetOptions, GetResult, ListPage, PutResult,
    Replicas, SiblingValue, WriteOptions, WriteResult,
};
pub use namespace::{
    ConflictPolicy, Consistency, NamespaceConfig, NamespaceDeletion, NamespaceView, Quorum,
};
