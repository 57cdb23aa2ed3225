//! Property tests: histories of a correct register are always accepted; the same history
//! with one read changed to a value that cannot have been current is always rejected; on tiny
//! random histories the search agrees with brute force ([`super::oracle`]). Each case is one
//! seed that drives the generator, printed on failure; `CONCORD_TEST_SEED=<seed> cargo test
//! -p concord-testkit --lib seeded_` replays it.

use std::time::Instant;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::generate::{self, Shape};
use super::oracle;
use super::*;

fn accepts_a_correct_history(seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = Shape::small(&mut rng);
    let history = generate::history(&mut rng, &shape);
    let report = check(&history, CheckOptions::default()).map_err(|e| format!("{e}"))?;
    if report.linearizable() != report.keys.len() {
        return Err(format!("seed {seed} ({shape:?}): {report}\nhistory: {history:#?}"));
    }
    Ok(())
}

fn rejects_an_impossible_read(seed: u64) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = Shape::small(&mut rng);
    let mut history = generate::history(&mut rng, &shape);
    let Some((i, value, never)) = generate::corrupt(&mut rng, &mut history) else {
        return Ok(());
    };
    let report = check(&history, CheckOptions::default()).map_err(|e| format!("{e}"))?;
    let key = report.keys.iter().find(|k| k.key == history[i].key).expect("the read's key");
    match key.verdict {
        Verdict::NotLinearizable(_) => Ok(()),
        _ => Err(format!(
            "seed {seed} ({shape:?}): op {i} changed to read {value:?} ({never:?}), yet {report}\n\
             history: {history:#?}"
        )),
    }
}

/// The search's verdict on a tiny random history against brute force: `Ok(linearizable)`.
fn agrees_with_brute_force(seed: u64) -> Result<bool, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let history = oracle::random_history(&mut rng, 7);
    let expected = oracle::linearizable(&history);
    let report = check(&history, CheckOptions::default()).map_err(|e| format!("{e}"))?;
    let found = match &report.keys[0].verdict {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable(_) => false,
        Verdict::Undecided => return Err(format!("seed {seed}: undecided on a tiny history")),
    };
    if found != expected {
        return Err(format!(
            "seed {seed}: brute force says linearizable={expected}, the search {report}\n\
             history: {history:#?}"
        ));
    }
    Ok(expected)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Tiny random histories (most not linearizable): the search and brute force agree.
    #[test]
    fn the_search_agrees_with_brute_force(seed in any::<u64>()) {
        agrees_with_brute_force(seed).map_err(TestCaseError::fail)?;
    }

    /// Histories produced by a sequential register, with overlapping intervals, failed ops and
    /// unknown ops that took effect late or never, are linearizable.
    #[test]
    fn histories_of_a_correct_register_are_accepted(seed in any::<u64>()) {
        accepts_a_correct_history(seed).map_err(TestCaseError::fail)?;
    }

    /// One read changed to a value never current during it: never written, written only after
    /// it, or overwritten before it began.
    #[test]
    fn a_read_of_a_value_never_current_is_rejected(seed in any::<u64>()) {
        rejects_an_impossible_read(seed).map_err(TestCaseError::fail)?;
    }
}

/// The three properties from one printed seed: the seed itself is the first case, then cases
/// drawn from it. A failing case, here or in the proptests above, prints its seed; run
/// `CONCORD_TEST_SEED=<that seed>` to replay it first.
#[test]
fn seeded_histories_are_judged_as_by_construction_and_by_brute_force() {
    let seed = crate::seed("seeded_histories_are_judged_as_by_construction_and_by_brute_force");
    let mut seeds = StdRng::seed_from_u64(seed);
    let cases: Vec<u64> = std::iter::once(seed).chain((1..512).map(|_| seeds.random())).collect();
    for &case in &cases[..64] {
        accepts_a_correct_history(case).unwrap();
        rejects_an_impossible_read(case).unwrap();
    }
    let mut linearizable = 0;
    for &case in &cases {
        linearizable += usize::from(agrees_with_brute_force(case).unwrap());
    }
    println!("{linearizable} of 512 tiny random histories were linearizable");
    assert!((1..512).contains(&linearizable), "the tiny histories should be of both kinds");
}

/// The size a chaos run produces: 2,000 ops of 10 clients over 5 keys, with unknown and failed
/// outcomes. Prints the time the check took (not asserted: a debug build on a shared machine).
#[test]
fn two_thousand_ops_over_five_keys_are_checked_quickly() {
    let seed = crate::seed("two_thousand_ops_over_five_keys_are_checked_quickly");
    let mut rng = StdRng::seed_from_u64(seed);
    let shape =
        Shape { clients: 10, keys: 5, ops_per_client: 200, unknown_percent: 3, failed_percent: 3 };
    let history = generate::history(&mut rng, &shape);
    let started = Instant::now();
    let report = check(&history, CheckOptions::default()).unwrap();
    let steps: u64 = report.keys.iter().map(|k| k.spent.steps).sum();
    println!(
        "checked {} ops over {} keys in {:?} ({steps} steps): {}",
        history.len(),
        report.keys.len(),
        started.elapsed(),
        report.summary()
    );
    assert_eq!(report.linearizable(), 5, "{report}");
}
