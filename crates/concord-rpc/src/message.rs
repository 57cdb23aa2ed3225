//! What a message is at this layer: a [`Payload`] (how it is written and read back), and for a
//! request its kind and reply type ([`Rpc`]), for a one-way message its kind ([`OneWay`]).
//! [`Encoded`] is a payload still in bytes that remembers its type, for the bulk messages whose
//! encoding or decoding is left to a background lane.
//!
//! The layers that own the messages (meta, membership, replica) implement [`Rpc`] or
//! [`OneWay`] next to each message type; the [`crate::Router`] and the typed calls
//! ([`crate::Calls`]) are then the only places that turn them into bytes and back, so a request
//! and its reply are paired at compile time and no caller encodes by hand.

use std::fmt;
use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::short_type_name;
use crate::{MessageKind, RpcError};

/// A value that travels as a frame's payload. Every serde type is one, encoded with postcard
/// ([`crate::encode`], [`crate::decode`]: validated as it decodes, refusals naming the type and
/// field). A type implements it by hand only when it must say more than postcard keeps
/// (postcard drops a refusal's message: `concord-meta`'s `JoinRequest` checks its addresses
/// after decoding and says what is wrong) or when its bytes are another codec's (a SWIM packet
/// is foca's).
pub trait Payload: Sized + Send + 'static {
    /// The bytes of this value.
    fn to_payload(&self) -> Bytes;
    /// The value these bytes encode, validated, or why not.
    fn from_payload(payload: Bytes) -> Result<Self, RpcError>;
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {
    fn to_payload(&self) -> Bytes {
        crate::encode(self)
    }

    fn from_payload(payload: Bytes) -> Result<Self, RpcError> {
        crate::decode(&payload)
    }
}

/// A request: the kind it travels as and the type of its answer.
///
/// ```
/// use concord_rpc::{MessageKind, Rpc};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct ReadRequest {
///     key: Vec<u8>,
/// }
///
/// #[derive(Serialize, Deserialize)]
/// struct ReadReply {
///     value: Option<Vec<u8>>,
/// }
///
/// impl Rpc for ReadRequest {
///     const KIND: MessageKind = MessageKind::ReplicaRead;
///     type Reply = ReadReply;
/// }
/// ```
pub trait Rpc: Payload {
    const KIND: MessageKind;
    type Reply: Payload;
}

/// A one-way message: the kind it travels as. It has no answer and may be lost.
pub trait OneWay: Payload {
    const KIND: MessageKind;
}

/// A payload of type `T` still in bytes: a value encoded ahead (once for many recipients, or in
/// a background lane), or one received and not yet decoded (so that a large one is decoded off
/// the async workers). The type stays attached, so the bytes cannot be sent as, or decoded into,
/// another message.
pub struct Encoded<T> {
    bytes: Bytes,
    of: PhantomData<fn() -> T>,
}

impl<T: Payload> Encoded<T> {
    /// Encodes `value`.
    pub fn new(value: &T) -> Self {
        Encoded::received(value.to_payload())
    }

    /// Decodes the value, validated.
    pub fn decode(&self) -> Result<T, RpcError> {
        T::from_payload(self.bytes.clone())
    }
}

impl<R: Rpc> Encoded<R> {
    /// Decodes a request that arrived from a peer; the refusal is the answer the peer gets, and
    /// names the kind and the type: ``bad ReplicaHint payload for HintRequest: invalid value in
    /// HintRequest at field `[0]` ``. The [`crate::Router`] decodes every request with this.
    pub fn decode_request(&self) -> Result<R, String> {
        self.decode().map_err(|e| {
            let why = match e {
                RpcError::Decode(why) => why,
                other => other.to_string(),
            };
            format!("bad {:?} payload for {}: {why}", R::KIND, short_type_name::<R>())
        })
    }
}

impl<T> Encoded<T> {
    /// Bytes that arrived (or were produced) as a `T`; only this crate attaches a type to bytes.
    pub(crate) fn received(bytes: Bytes) -> Self {
        Encoded { bytes, of: PhantomData }
    }

    /// The encoded length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes, to put in a frame.
    pub(crate) fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl<T> Clone for Encoded<T> {
    fn clone(&self) -> Self {
        Encoded::received(self.bytes.clone())
    }
}

impl<T> fmt::Debug for Encoded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded<{}>({} bytes)", short_type_name::<T>(), self.bytes.len())
    }
}
