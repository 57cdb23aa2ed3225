//! The frame codec: pure functions from frames to bytes and back. No I/O happens here; the TCP
//! code feeds [`decode_frame`] from a socket buffer.
//!
//! Layout of the 24-byte header, all integers big-endian:
//!
//! | bytes | field | |
//! |---|---|---|
//! | 0..4 | magic | `b"CNCD"` |
//! | 4..6 | version | [`PROTOCOL_VERSION`] |
//! | 6 | kind | a [`MessageKind`] number |
//! | 7 | frame type | a [`FrameType`] number: request, response, error response, one-way |
//! | 8..16 | request id | chosen by the requester, echoed in the response; 0 for one-way |
//! | 16..20 | payload length | at most the configured maximum ([`MAX_FRAME_DEFAULT`]) |
//! | 20..24 | CRC32C | over header bytes 0..20 followed by the payload |
//!
//! The checksum covers the header as well as the payload, so a flipped request id or kind is
//! caught, not just a flipped payload byte. Decoding checks magic, version and length as soon as
//! the header is in (an oversize frame is refused before its payload is read), then the checksum,
//! and only then kind and frame type: an unknown kind therefore means an intact frame from a
//! peer that speaks a kind this node does not, never a corrupted byte.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::MessageKind;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"CNCD";

/// The protocol version this build speaks, in every header and in the handshake. Peers must
/// speak the same version.
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 24;

/// Default upper bound on a frame's payload, in bytes (16 MiB).
pub const MAX_FRAME_DEFAULT: u32 = 16 * 1024 * 1024;

/// Where the checksummed part of the header ends and the checksum begins.
const CRC_OFFSET: usize = 20;

/// What a frame is, byte 7 of the header. The numbers are wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    /// Expects a response with the same request id.
    Request = 1,
    /// A handler's successful answer.
    Response = 2,
    /// A refusal or handler failure; the payload is a postcard-encoded `String` reason.
    ErrorResponse = 3,
    /// Fire and forget: no response is sent.
    OneWay = 4,
}

impl FrameType {
    pub fn from_u8(byte: u8) -> Option<FrameType> {
        match byte {
            1 => Some(FrameType::Request),
            2 => Some(FrameType::Response),
            3 => Some(FrameType::ErrorResponse),
            4 => Some(FrameType::OneWay),
            _ => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: MessageKind,
    pub frame_type: FrameType,
    pub request_id: u64,
    pub payload: Bytes,
}

impl Frame {
    /// The frame's bytes, header and payload.
    ///
    /// Panics if the payload is longer than `u32::MAX` bytes: callers check the configured
    /// maximum first, so a longer payload is a bug.
    pub fn encode(&self) -> Bytes {
        encode_raw(RawHeader {
            version: PROTOCOL_VERSION,
            kind: self.kind.as_u8(),
            frame_type: self.frame_type as u8,
            request_id: self.request_id,
            payload: &self.payload,
        })
    }
}

/// Why bytes are not a valid frame. Each one closes the connection it arrived on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}, expected \"CNCD\"")]
    BadMagic([u8; 4]),
    #[error("protocol version {0} is not supported (this node speaks {PROTOCOL_VERSION})")]
    BadVersion(u16),
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: u32, max: u32 },
    #[error("checksum mismatch: header says {expected:08x}, bytes give {actual:08x}")]
    BadChecksum { expected: u32, actual: u32 },
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("unknown frame type {0}")]
    BadFrameType(u8),
    #[error("connection closed in the middle of a frame ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
}

/// Header fields as raw numbers, for [`encode_raw`].
#[derive(Debug, Clone, Copy)]
pub struct RawHeader<'a> {
    pub version: u16,
    pub kind: u8,
    pub frame_type: u8,
    pub request_id: u64,
    pub payload: &'a [u8],
}

/// Encodes a frame from raw header numbers, with a correct checksum. [`Frame::encode`] is the
/// normal way; this one lets tests and tools craft frames this crate would never send (another
/// version, an unknown kind).
///
/// Panics if the payload is longer than `u32::MAX` bytes.
pub fn encode_raw(header: RawHeader<'_>) -> Bytes {
    let payload_len =
        u32::try_from(header.payload.len()).expect("payload length checked by the caller");
    let mut out = BytesMut::with_capacity(HEADER_LEN + header.payload.len());
    out.put_slice(&MAGIC);
    out.put_u16(header.version);
    out.put_u8(header.kind);
    out.put_u8(header.frame_type);
    out.put_u64(header.request_id);
    out.put_u32(payload_len);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..CRC_OFFSET]), header.payload);
    out.put_u32(crc);
    out.put_slice(header.payload);
    out.freeze()
}

/// Takes one frame off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (read more and call again; nothing is
/// consumed), `Ok(Some(frame))` after consuming exactly that frame's bytes, or an error if the
/// bytes can never become a valid frame. The header is checked as soon as it is complete, so an
/// oversize or foreign frame is refused without waiting for its payload.
pub fn decode_frame(
    buf: &mut BytesMut,
    max_payload_bytes: u32,
) -> Result<Option<Frame>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        // Refuse garbage early: a peer that sends a few wrong bytes and waits must not hold the
        // connection until the handshake deadline.
        check_magic_prefix(buf)?;
        return Ok(None);
    };
    let mut fields = header;
    let mut magic = [0u8; 4];
    fields.copy_to_slice(&mut magic);
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let version = fields.get_u16();
    if version != PROTOCOL_VERSION {
        return Err(FrameError::BadVersion(version));
    }
    let kind = fields.get_u8();
    let frame_type = fields.get_u8();
    let request_id = fields.get_u64();
    let payload_len = fields.get_u32();
    let expected_crc = fields.get_u32();
    if payload_len > max_payload_bytes {
        return Err(FrameError::TooLarge { len: payload_len, max: max_payload_bytes });
    }
    let frame_len = HEADER_LEN + payload_len as usize;
    if buf.len() < frame_len {
        return Ok(None);
    }
    let actual_crc =
        crc32c::crc32c_append(crc32c::crc32c(&buf[..CRC_OFFSET]), &buf[HEADER_LEN..frame_len]);
    if actual_crc != expected_crc {
        return Err(FrameError::BadChecksum { expected: expected_crc, actual: actual_crc });
    }
    let kind = MessageKind::from_u8(kind).ok_or(FrameError::UnknownKind(kind))?;
    let frame_type = FrameType::from_u8(frame_type).ok_or(FrameError::BadFrameType(frame_type))?;
    let mut bytes = buf.split_to(frame_len);
    bytes.advance(HEADER_LEN);
    Ok(Some(Frame { kind, frame_type, request_id, payload: bytes.freeze() }))
}

/// How many more bytes the frame at the front of `buf` needs, for reporting truncation. Call it
/// only after [`decode_frame`] returned `Ok(None)`.
pub fn bytes_needed(buf: &[u8]) -> usize {
    match buf.get(16..20) {
        Some(len) => {
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            HEADER_LEN + len as usize
        }
        None => HEADER_LEN,
    }
}

fn check_magic_prefix(buf: &[u8]) -> Result<(), FrameError> {
    let have = buf.len().min(MAGIC.len());
    if buf[..have] == MAGIC[..have] {
        return Ok(());
    }
    let mut magic = [0u8; 4];
    magic[..have].copy_from_slice(&buf[..have]);
    Err(FrameError::BadMagic(magic))
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
