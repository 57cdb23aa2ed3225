//! Unit and property tests of the frame codec.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

const MAX: u32 = 1024;

fn frame(kind: MessageKind, frame_type: FrameType, request_id: u64, payload: &[u8]) -> Frame {
    Frame { kind, frame_type, request_id, payload: Bytes::copy_from_slice(payload) }
}

fn decode_all(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
    decode_frame(&mut BytesMut::from(bytes), MAX)
}

fn any_kind() -> impl Strategy<Value = MessageKind> {
    prop::sample::select(MessageKind::ALL.to_vec())
}

fn any_frame_type() -> impl Strategy<Value = FrameType> {
    prop::sample::select(vec![
        FrameType::Request,
        FrameType::Response,
        FrameType::ErrorResponse,
        FrameType::OneWay,
    ])
}

fn any_frame() -> impl Strategy<Value = Frame> {
    (any_kind(), any_frame_type(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..256))
        .prop_map(|(kind, frame_type, id, payload)| frame(kind, frame_type, id, &payload))
}

/// The header layout is wire format; this pins it byte by byte.
#[test]
fn header_layout_is_pinned() {
    let bytes =
        frame(MessageKind::RaftVote, FrameType::Response, 0x0102_0304_0506_0708, b"xy").encode();
    assert_eq!(&bytes[0..4], b"CNCD");
    assert_eq!(&bytes[4..6], &[0, 1]);
    assert_eq!(bytes[6], 11);
    assert_eq!(bytes[7], 2);
    assert_eq!(&bytes[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&bytes[16..20], &[0, 0, 0, 2]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..20]), b"xy");
    assert_eq!(&bytes[20..24], &crc.to_be_bytes());
    assert_eq!(&bytes[24..], b"xy");
}

#[test]
fn two_frames_in_one_buffer_decode_in_order() {
    let first = frame(MessageKind::Swim, FrameType::OneWay, 0, b"one");
    let second = frame(MessageKind::Join, FrameType::Request, 7, b"");
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&first.encode());
    buf.extend_from_slice(&second.encode());
    assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(first)));
    assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(second)));
    assert_eq!(decode_frame(&mut buf, MAX), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn oversize_length_is_refused_from_the_header_alone() {
    let bytes = frame(MessageKind::ReplicaWrite, FrameType::Request, 1, &[0; 8]).encode();
    let mut header = BytesMut::from(&bytes[..HEADER_LEN]);
    assert_eq!(decode_frame(&mut header, 7), Err(FrameError::TooLarge { len: 8, max: 7 }));
}

#[test]
fn garbage_is_refused_before_a_whole_header_arrives() {
    assert!(matches!(decode_all(b"GE"), Err(FrameError::BadMagic(_))));
    assert_eq!(decode_all(b"CN"), Ok(None));
}

#[test]
fn another_version_is_refused() {
    let bytes = encode_raw(RawHeader {
        version: PROTOCOL_VERSION + 1,
        kind: MessageKind::Hello.as_u8(),
        frame_type: FrameType::Request as u8,
        request_id: 0,
        payload: b"",
    });
    assert_eq!(decode_all(&bytes), Err(FrameError::BadVersion(PROTOCOL_VERSION + 1)));
}

#[test]
fn an_intact_frame_of_an_unknown_kind_is_refused_as_unknown() {
    let bytes = encode_raw(RawHeader {
        version: PROTOCOL_VERSION,
        kind: 99,
        frame_type: FrameType::Request as u8,
        request_id: 3,
        payload: b"future",
    });
    assert_eq!(decode_all(&bytes), Err(FrameError::UnknownKind(99)));
}

#[test]
fn an_unknown_frame_type_is_refused() {
    let bytes = encode_raw(RawHeader {
        version: PROTOCOL_VERSION,
        kind: MessageKind::Swim.as_u8(),
        frame_type: 0,
        request_id: 0,
        payload: b"",
    });
    assert_eq!(decode_all(&bytes), Err(FrameError::BadFrameType(0)));
}

#[test]
fn bytes_needed_reports_the_whole_frame_once_the_length_is_known() {
    let bytes = frame(MessageKind::Swim, FrameType::OneWay, 0, &[1; 10]).encode();
    assert_eq!(bytes_needed(&bytes[..3]), HEADER_LEN);
    assert_eq!(bytes_needed(&bytes[..HEADER_LEN]), HEADER_LEN + 10);
}

proptest! {
    #[test]
    fn any_frame_round_trips(frame in any_frame()) {
        let bytes = frame.encode();
        prop_assert_eq!(bytes.len(), HEADER_LEN + frame.payload.len());
        prop_assert_eq!(decode_all(&bytes), Ok(Some(frame)));
    }

    /// A frame split anywhere decodes once all its bytes are in, and never before.
    #[test]
    fn a_frame_arriving_in_pieces_decodes_when_complete(frame in any_frame(), cut in 0usize..1000) {
        let bytes = frame.encode();
        let cut = cut % bytes.len();
        let mut buf = BytesMut::from(&bytes[..cut]);
        prop_assert_eq!(decode_frame(&mut buf, MAX), Ok(None));
        prop_assert_eq!(buf.len(), cut);
        buf.extend_from_slice(&bytes[cut..]);
        prop_assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(frame)));
    }

    /// Changing any byte of a frame is detected: decoding fails or waits for more bytes (a
    /// grown length), and never yields a frame.
    #[test]
    fn any_corrupted_byte_is_detected(
        frame in any_frame(),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = frame.encode().to_vec();
        let position = position.index(bytes.len());
        bytes[position] ^= flip;
        let decoded = decode_all(&bytes);
        prop_assert!(!matches!(decoded, Ok(Some(_))), "corruption at {} undetected: {:?}", position, decoded);
    }

    /// Arbitrary bytes never panic the decoder, with or without a valid magic and version in
    /// front (so that the later checks are reached too), and whatever it yields it consumed
    /// exactly.
    #[test]
    fn arbitrary_bytes_never_panic(
        valid_prefix in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut bytes = Vec::new();
        if valid_prefix {
            bytes.extend_from_slice(&MAGIC);
            bytes.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        }
        bytes.extend_from_slice(&tail);
        let mut buf = BytesMut::from(&bytes[..]);
        if let Ok(Some(frame)) = decode_frame(&mut buf, MAX) {
            prop_assert_eq!(buf.len(), bytes.len() - HEADER_LEN - frame.payload.len());
        }
    }
}
