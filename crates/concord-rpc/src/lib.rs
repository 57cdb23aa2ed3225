//! Node-to-node transport: the message kinds, the wire codec, the [`Transport`] trait and its
//! TCP implementation (connection pools, deadlines, bounded everything), and fault injection.
//!
//! This crate knows the wire format and nothing above it. The crates that own the messages
//! (meta, membership, replica) define their types and say, per type, which kind it travels as
//! and what it is answered with ([`Rpc`], [`OneWay`]); each layer registers an endpoint per
//! type with the node's [`Router`], and callers use the typed [`Calls`]. It must not know about
//! HTTP or about what messages mean.
//!
//! # Layout
//!
//! - [`frame`]: the pure frame codec ([`frame::decode_frame`], [`Frame::encode`],
//!   [`FrameError`]).
//! - [`MessageKind`] (`kind.rs`): every node-to-node message, with its wire number.
//! - `codec.rs`: [`encode`] / [`decode`] of payloads (postcard).
//! - `message.rs`: [`Payload`] (how a value is written and read back), [`Rpc`] (a request's
//!   kind and reply type), [`OneWay`], and [`Encoded`] (a payload still in bytes, typed).
//! - `endpoint.rs`: the handlers layers register: [`Endpoint`], [`EncodedEndpoint`] (bulk
//!   messages that decode and encode themselves off the async workers), [`OneWayEndpoint`].
//! - `router.rs`: [`Router`], the [`Handler`] made of the registered endpoints: decodes (a
//!   refusal names the kind and type), dispatches, encodes; an unknown kind is answered with an
//!   error; a kind registered twice panics at start-up.
//! - `calls.rs`: [`Calls`], typed calls on any [`Transport`]: `call_rpc::<R>` pairs a request
//!   with its reply type at compile time.
//! - [`handshake`]: the `Hello` exchange as pure decisions.
//! - [`Local`]: this node's id and (possibly not yet known) cluster id.
//! - [`Transport`] and [`Handler`] (`transport.rs`): the seams upper crates use.
//! - `tcp/`: [`TcpTransport`] (dialing, pools, multiplexing) and [`RpcServer`] (listening).
//! - [`Faults`] (`faults.rs`) and [`RpcMetrics`] (`metrics.rs`).
//!
//! # Frames
//!
//! A frame is a 24-byte header and a payload. Header, big-endian: magic `b"CNCD"` (4) |
//! protocol version u16 | kind u8 | frame type u8 (request, response, error response,
//! one-way) | request id u64 | payload length u32 | CRC32C u32 over header bytes 0..20 and the
//! payload. Payloads are at most [`MAX_FRAME_DEFAULT`] (16 MiB) unless configured otherwise;
//! the limit is checked from the header, before the payload is read. Requests on one connection
//! are matched to responses by request id, so many are in flight at once.
//!
//! # Handshake
//!
//! The dialer's first frame is a `Hello` request `{protocol_version, cluster_id, node_id}`,
//! where `cluster_id` is `None` for a node that is joining. The listener answers with its own
//! `Hello`, or with an error frame carrying the reason, and closes. Versions must match; cluster
//! ids must match when both are known. A connection on which either side has no cluster id may
//! carry only `Join` (and `Hello`): anything else closes it. The dialer checks the listener's
//! answer the same way, and that the listener is the node it meant to reach. A joining node
//! calls a seed with [`Transport::call_addr`], which returns the seed's node id and cluster id;
//! it then records the cluster with [`Local::set_cluster_id`], and later connections are joined.
//!
//! # Bad input
//!
//! Garbage, bad magic, another version, a bad checksum, an oversize length, an unknown kind or
//! frame type, a truncated frame, a refused handshake, a message not allowed before joining, or
//! no handshake within the deadline: each closes that connection and increments
//! `concord_rpc_rejected_connections_total{reason}`. It is logged at most once a minute per
//! source address, with the count of refusals not logged since: at info for a connection that
//! never said a valid hello, at warn for another cluster or version, or a protocol breach after
//! the handshake. Every payload type validates itself as it decodes ([`decode`]), so no invalid
//! name, id or state gets past decoding. Nothing a peer sends panics the node or holds resources
//! beyond its own connection's bounded share.
//!
//! # Faults
//!
//! [`Faults`] holds this node's [`FaultRules`], shared by its server and transport; they act on
//! this node's side only. A call or one-way message to a node in `drop_to` is not sent (the
//! call fails with `Timeout` at its deadline, as over a cut cable), and no response is sent to
//! it. A request or message arriving from a node in `drop_from` is discarded unanswered, and a
//! response from it is ignored. `delay_ms[x]` holds every frame to `x` back that long before it
//! is written. `clock_offset_ms` is stored for the layers that read the clock. Handshakes are
//! not subject to rules: a cut link shows up on the messages that use it.
//!
//! # Limits
//!
//! Pools of [`TransportConfig::pool_size`] connections per peer (default 2), 256 requests in
//! flight per connection on each side, a deadline on every call, connect and handshake
//! timeouts, bounded one-way queues that drop (and count) when full, a bounded number of
//! inbound connections ([`ServerLimits`]), a write timeout on every socket, and reconnect
//! backoff capped at [`TransportConfig::backoff_max`].

mod calls;
mod codec;
mod config;
mod endpoint;
mod error;
mod faults;
pub mod frame;
pub mod handshake;
mod kind;
mod local;
mod message;
mod metrics;
mod router;
mod tcp;
mod transport;

pub use calls::{AddrReply, Calls};

pub use codec::{decode, encode};
pub use config::{ServerLimits, TransportConfig};
pub use endpoint::{EncodedEndpoint, Endpoint, OneWayEndpoint};
pub use error::RpcError;
pub use faults::{FaultRules, Faults};
pub use frame::{Frame, FrameError, FrameType, MAX_FRAME_DEFAULT, PROTOCOL_VERSION};
pub use kind::MessageKind;
pub use local::{ClusterIdConflict, Local};
pub use message::{Encoded, OneWay, Payload, Rpc};
pub use metrics::{DropReason, RejectReason, RpcMetrics, call_outcome};
pub use router::Router;
pub use tcp::{RpcServer, TcpTransport};
pub use transport::{BoxFuture, Handler, Transport};
