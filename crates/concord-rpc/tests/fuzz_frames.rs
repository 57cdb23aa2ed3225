//! A bounded fuzzer of what a peer's bytes meet first: the frame decoder and the handshake's
//! `Hello` payload. Proptest drives it with a fixed number of cases per property (a few
//! seconds in all), so it runs with every `cargo test`, in CI too.
//!
//! Inputs are arbitrary bytes, valid encodings with bytes flipped, cut or appended, and frames
//! whose header fields are arbitrary numbers but whose checksum is right (so decoding gets past
//! the checksum to the kind, the frame type and the length). For every input: no panic, and a
//! decode either fails or yields a value that is valid, shown by encoding it back to exactly the
//! bytes it was decoded from.
//!
//! Every run prints its seed; `CONCORD_TEST_SEED=<seed>` replays it, and proptest keeps failing
//! cases in `proptest-regressions/`.

use bytes::{Bytes, BytesMut};
use concord_rpc::frame::{self, Frame, FrameError, FrameType, RawHeader};
use concord_rpc::handshake::Hello;
use concord_rpc::{MessageKind, PROTOCOL_VERSION};
use concord_types::{ClusterId, NodeId};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};

/// Cases per property.
const CASES: u32 = 3000;
/// The payload limit of the decoder under test: small, so oversize lengths are easy to hit.
const MAX_PAYLOAD: u32 = 4096;

/// A runner with a fixed case budget and a printed, replayable seed.
fn runner(test: &str) -> TestRunner {
    let seed = match std::env::var("CONCORD_TEST_SEED") {
        Ok(value) => value.parse().expect("CONCORD_TEST_SEED must be a u64"),
        Err(_) => rand::random(),
    };
    println!("{test}: seed {seed} (replay with CONCORD_TEST_SEED={seed})");
    TestRunner::new(Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        source_file: Some(file!()),
        ..Config::default()
    })
}

/// Feeds `bytes` to the decoder the way a connection does and checks each outcome: every
/// frame it takes off is exactly the bytes it consumed; an error ends the stream.
fn decode_stream(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut buffer = BytesMut::from(bytes);
    let mut frames = Vec::new();
    loop {
        let before = buffer.clone();
        match frame::decode_frame(&mut buffer, MAX_PAYLOAD)? {
            Some(frame) => {
                let consumed = before.len() - buffer.len();
                assert_eq!(frame.encode(), before[..consumed], "a frame re-encodes to its bytes");
                assert!(frame.payload.len() <= MAX_PAYLOAD as usize);
                frames.push(frame);
            }
            None => {
                assert_eq!(buffer, before, "an incomplete frame consumes nothing");
                assert!(frame::bytes_needed(&buffer) > buffer.len() || buffer.is_empty());
                return Ok(frames);
            }
        }
    }
}

fn any_frame() -> impl Strategy<Value = Frame> {
    let frame_types =
        [FrameType::Request, FrameType::Response, FrameType::ErrorResponse, FrameType::OneWay];
    (
        prop::sample::select(MessageKind::ALL.to_vec()),
        prop::sample::select(frame_types.to_vec()),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(kind, frame_type, request_id, payload)| Frame {
            kind,
            frame_type,
            request_id,
            payload: Bytes::from(payload),
        })
}

/// What is done to a valid encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Cut { at: usize },
    Append(Vec<u8>),
    Splice { at: usize, bytes: Vec<u8> },
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutation: &[Mutation]) -> Vec<u8> {
    for step in mutation {
        let len = bytes.len().max(1);
        match step {
            Mutation::Flip { at, xor } => {
                if let Some(byte) = bytes.get_mut(at % len) {
                    *byte ^= xor;
                }
            }
            Mutation::Cut { at } => bytes.truncate(at % len),
            Mutation::Append(more) => bytes.extend_from_slice(more),
            Mutation::Splice { at, bytes: more } => {
                let at = (at % len).min(bytes.len());
                bytes.splice(at..at, more.iter().copied());
            }
        }
    }
    bytes
}

/// Arbitrary bytes: never a panic; whatever decodes is a frame that re-encodes to its bytes.
#[test]
fn arbitrary_bytes_never_panic_the_frame_decoder() {
    let mut runner = runner("arbitrary_bytes_never_panic_the_frame_decoder");
    let garbage = prop::collection::vec(any::<u8>(), 0..512);
    // Garbage that starts like a frame gets past the magic check.
    let prefixed = prop::collection::vec(any::<u8>(), 0..512).prop_map(|tail| {
        let mut bytes = frame::MAGIC.to_vec();
        bytes.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        bytes.extend(tail);
        bytes
    });
    let result = runner.run(&prop_oneof![garbage, prefixed], |bytes| {
        let _ = decode_stream(&bytes);
        Ok(())
    });
    result.unwrap();
}

/// Valid streams of frames, mutated: no panic; an untouched stream decodes to its frames.
#[test]
fn mutated_frame_streams_decode_or_fail_cleanly() {
    let mut runner = runner("mutated_frame_streams_decode_or_fail_cleanly");
    let input =
        (prop::collection::vec(any_frame(), 1..4), prop::collection::vec(any_mutation(), 0..3));
    let result = runner.run(&input, |(frames, mutation)| {
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.encode().to_vec()).collect();
        let mutated = mutate(stream.clone(), &mutation);
        let decoded = decode_stream(&mutated);
        if mutated == stream {
            prop_assert_eq!(decoded.unwrap(), frames);
        }
        Ok(())
    });
    result.unwrap();
}

/// Headers of arbitrary numbers with a correct checksum: decoding reaches the kind, frame type
/// and length checks, and refuses exactly the unknown ones.
#[test]
fn checksummed_frames_with_arbitrary_headers_are_judged_by_their_fields() {
    let mut runner = runner("checksummed_frames_with_arbitrary_headers_are_judged_by_their_fields");
    let input = (
        prop_oneof![Just(PROTOCOL_VERSION), any::<u16>()],
        any::<u8>(),
        any::<u8>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..64),
    );
    let result = runner.run(&input, |(version, kind, frame_type, request_id, payload)| {
        let header = RawHeader { version, kind, frame_type, request_id, payload: &payload };
        let bytes = frame::encode_raw(header);
        let decoded = decode_stream(&bytes);
        let known =
            MessageKind::from_u8(kind).is_some() && FrameType::from_u8(frame_type).is_some();
        match decoded {
            Ok(frames) => {
                prop_assert!(version == PROTOCOL_VERSION && known);
                prop_assert_eq!(frames.len(), 1);
                prop_assert_eq!(frames[0].kind.as_u8(), kind);
            }
            Err(FrameError::BadVersion(v)) => prop_assert_eq!(v, version),
            Err(FrameError::UnknownKind(k)) => prop_assert_eq!(k, kind),
            Err(FrameError::BadFrameType(t)) => prop_assert_eq!(t, frame_type),
            Err(other) => prop_assert!(false, "unexpected refusal {}", other),
        }
        Ok(())
    });
    result.unwrap();
}

/// A decoded `Hello` is a valid one: its node id passes `NodeId::new`, and it encodes back to
/// the bytes it came from.
fn check_hello(bytes: &[u8]) {
    if let Ok(hello) = concord_rpc::decode::<Hello>(bytes) {
        assert!(NodeId::new(hello.node_id.as_str()).is_ok(), "{hello:?}");
        assert_eq!(concord_rpc::encode(&hello), bytes, "a Hello re-encodes to its bytes");
    }
}

/// The handshake payload, the first thing decoded from any peer: arbitrary bytes and mutated
/// valid hellos (names of any length and alphabet included).
#[test]
fn hello_payloads_decode_only_to_valid_hellos() {
    let mut runner = runner("hello_payloads_decode_only_to_valid_hellos");
    let name = prop_oneof![
        "[a-z0-9][a-z0-9_-]{0,62}",
        ".{0,80}",
        (64usize..400).prop_map(|n| "n".repeat(n)),
    ];
    let hello = (any::<u16>(), any::<Option<u128>>(), name);
    let mutated = (hello, prop::collection::vec(any_mutation(), 0..3)).prop_map(
        |((version, cluster, name), mutation)| {
            let valid = concord_rpc::encode(&(version, cluster.map(ClusterId), name)).to_vec();
            mutate(valid, &mutation)
        },
    );
    let input = prop_oneof![mutated, prop::collection::vec(any::<u8>(), 0..128)];
    let result = runner.run(&input, |bytes| {
        check_hello(&bytes);
        Ok(())
    });
    result.unwrap();
}
