//! A bounded fuzzer of the decoders of what clients put in headers and query strings: the
//! `Concord-Context` token (through its public `decode` only, so its format may change without
//! this file) and the query-string parser with every typed accessor (issue 19, defect 2).
//! Proptest drives it with a fixed number of cases, so it runs with every `cargo test`.
//!
//! For every input: no panic, and whatever is accepted is valid. A context decodes to a version
//! vector in canonical form (actors sorted and distinct, counters above 0); a parsed query holds
//! only allowed names, once each, and its numbers and timeouts are in range. Every run prints
//! its seed; `CONCORD_TEST_SEED=<seed>` replays it.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestRunner};

use crate::context;
use crate::query::Query;

/// Cases per property.
const CASES: u32 = 4000;

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

/// The one call into the context module: the token decoder a request header meets, then the
/// node's opening of the bytes (MAC check and entries) as a write does it.
fn decode_context(token: &str) {
    let Ok(bytes) = context::decode(token) else { return };
    assert!(!bytes.is_empty(), "{token:?}");
    let key = concord_types::Key::new(b"k".to_vec()).expect("a valid key");
    let sealer = concord_types::ContextKey::new([3; 32]);
    if let Ok(vv) = sealer.open(concord_types::NamespaceId(1), &key, &bytes) {
        let entries: Vec<_> = vv.iter().collect();
        assert!(entries.iter().all(|(_, counter)| *counter > 0), "{token:?}: {entries:?}");
        assert!(entries.windows(2).all(|w| w[0].0 < w[1].0), "{token:?}: {entries:?}");
    }
}

const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding, written here so the fuzzer does not share the decoder's code.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(URL_SAFE[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Tokens of the shape the server issues today (a format byte, then postcard), with their
/// entries and bytes arbitrary, then base64url: the decoder's deeper paths get exercised.
fn token_like() -> impl Strategy<Value = String> {
    let entries = prop::collection::vec((any::<u64>(), any::<u64>()), 0..20);
    (any::<u8>(), entries, prop::collection::vec(any::<u8>(), 0..8), 0..4usize).prop_map(
        |(format, entries, junk, cut)| {
            let mut bytes = vec![format % 3];
            bytes.extend(postcard::to_allocvec(&entries).expect("a Vec encodes"));
            bytes.extend(junk);
            bytes.truncate(bytes.len().saturating_sub(cut));
            base64url(&bytes)
        },
    )
}

#[test]
fn context_tokens_decode_only_to_canonical_version_vectors() {
    let mut runner = runner("context_tokens_decode_only_to_canonical_version_vectors");
    let tokens = prop_oneof![
        token_like(),
        "[A-Za-z0-9_=+/ -]{0,200}",
        any::<String>(),
        (16_000usize..17_000).prop_map(|n| "A".repeat(n)),
    ];
    runner
        .run(&tokens, |token| {
            decode_context(&token);
            Ok(())
        })
        .unwrap();
}

/// The parameter names the routes accept, with near misses.
const NAMES: [&str; 10] =
    ["w", "r", "strict", "timeout_ms", "prefix", "after", "limit", "W", "limit%00", "tim%65out_ms"];

fn query_string() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[0-9]{0,25}",
        Just("one".to_string()),
        Just("quorum".to_string()),
        Just("true".to_string()),
        "(%[0-9A-Fa-f]{2}|%[^&]{0,2}|[^&=]){0,12}",
    ];
    let pair = (prop::sample::select(NAMES.to_vec()), prop::option::of(value)).prop_map(
        |(name, value)| match value {
            Some(value) => format!("{name}={value}"),
            None => name.to_string(),
        },
    );
    prop_oneof![
        prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&")),
        any::<String>(),
    ]
}

#[test]
fn query_strings_parse_to_allowed_in_range_values_only() {
    let mut runner = runner("query_strings_parse_to_allowed_in_range_values_only");
    let allowed = ["w", "r", "strict", "timeout_ms", "prefix", "after", "limit"];
    runner
        .run(&query_string(), |query| {
            let Ok(parsed) = Query::parse(Some(&query), &allowed) else { return Ok(()) };
            for name in allowed {
                let _ = parsed.bytes(name);
                let _ = parsed.text(name);
                let _ = parsed.flag(name);
                if let Ok(Some(quorum)) = parsed.quorum(name) {
                    prop_assert!(quorum.check(concord_types::namespace::REPLICAS_MAX).is_ok());
                }
                if let Ok(Some(n)) = parsed.number(name, 1, 1000) {
                    prop_assert!((1..=1000).contains(&n));
                }
            }
            if let Ok(Some(timeout)) = parsed.timeout() {
                prop_assert!(timeout.as_millis() >= 1 && timeout.as_millis() <= 60_000);
            }
            Ok(())
        })
        .unwrap();
}
