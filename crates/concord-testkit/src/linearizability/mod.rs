//! A linearizability checker for the keys of strong namespaces (issue 22): a recorded history
//! of reads, writes, deletes and compare-and-sets in, one verdict per key out.
//!
//! # The method
//!
//! A history is linearizable if each operation can be given one instant between its start and
//! its end at which it takes effect, so that the operations in the order of those instants are
//! a legal run of the sequential object (Herlihy & Wing 1990). Finding such an order is the
//! search of Wing & Gong ("Testing and verifying concurrent objects", 1993), with the cache of
//! Lowe ("Testing for linearizability", 2017): configurations already explored, as (set of
//! operations linearized, model state), are never explored again. Knossos (Jepsen) and
//! Porcupine (Athalye) check etcd and others the same way; [`wgl`] is our own implementation of
//! it, generic over the [`wgl::Model`].
//!
//! - Linearizability is compositional: a history is linearizable iff each object's
//!   sub-history is. Each key is checked alone, which keeps every search small.
//! - An operation that *failed* did not happen and is dropped. One whose outcome is *unknown*
//!   (a timeout, a 503 on a write) may have happened at any point after its start, even after
//!   the client moved on, or never: it has no end, and the search may place it anywhere after
//!   its start or leave it out. An unknown read observed nothing and is dropped.
//! - Unknown ops make Lowe's cache weak (k unknown writes pending: 2^k sets of them placed).
//!   The cache therefore holds, per (required ops placed, state), the sets of unknown ops
//!   placed, and a configuration is cut off when one with a subset of its unknown ops was
//!   explored; and the model folds the values no op observed into one state. A burst of 30
//!   unknown writes then costs thousands of steps, not billions ([`wgl`], [`register`]).
//! - The search is bounded per key, in steps and in cache memory ([`CheckOptions`]). When
//!   either runs out the key is [`Verdict::Undecided`], with what it spent: never a hang,
//!   never a false pass.
//! - A key that is not linearizable gets a [`Violation`] saying which operation no order could
//!   place, the order that got furthest in real time, the value the key then held, and why
//!   each operation that could have gone next did not fit.
//!
//! # The model, and why compare-and-set by revision is checked by value
//!
//! The server gives a read the value and its `mod_revision` (the Raft log index of the write
//! that last changed the key) and makes a write conditional on that revision (`If-Match`,
//! 412 when it differs) or on the key's absence (`If-None-Match: *`). A model that tracked
//! revisions would have to predict the log index each write gets, which the history does not
//! determine (every write of every key of the group, and no-op entries, take indices). So the
//! workload writes a value no other op of the key writes (client id and counter); then a
//! value names exactly one write, and "the key's mod revision is `r`", where `r` came from a
//! read of `v`, holds exactly when "the key holds `v`". A CAS the client built from a read of
//! `(v, r)` is recorded as `Cas { expect: v }`, and the model is a plain register of
//! `Option<value>` (`None`: no key) under read, write, delete and compare-and-set by value.
//! The checker refuses a history that writes a value twice on a key
//! ([`HistoryError::ValueWrittenTwice`]), since the equivalence would not hold.
//!
//! Revisions are still used as evidence, never as state ([`register`]): every value must have
//! been reported at one revision and every revision for one write (else
//! [`Violation::RevisionConflict`]); a write must carry a higher revision than the value it
//! replaces, when both are known, because log indices grow along the true order of writes;
//! and a 412 that reported the key's revision reads the value written at that revision.
//!
//! # Limits
//!
//! - What costs the search is unknown ops that *did* take effect and were seen: each is a
//!   choice the search cannot fold away. At the rates a chaos run sees (a few percent) 2,000
//!   ops check in milliseconds; with 30% of ops unknown and half of those applied late, some
//!   keys come out undecided. So a server should answer a definite refusal (a 503 given
//!   before anything was proposed) distinctly from a timeout, and the workload should record
//!   it as failed.
//! - Checked per key only: a list by prefix, and transactions over several keys, need a model
//!   of their own.
//! - A delete's revision is checked only for clashes, not for order; a 412 on a missing key
//!   carries no value to check.
//!
//! # Layout
//!
//! - [`op`]: [`Op`], [`Call`], [`Outcome`], [`Return`]: one recorded operation.
//! - [`wgl`]: the search, over any sequential model; pure and bounded.
//! - [`register`]: the register model and the revisions the server reported.
//! - [`check`](mod@check): [`check()`], partitioning by key, [`Report`] with per-key verdicts,
//!   explanations and the summary `linearizable=K undecided=U violations=V`.
//!
//! The chaos runner records and checks register histories through
//! [`crate::chaos::register`].

pub mod check;
pub mod op;
pub mod register;
pub mod wgl;

pub use check::{CheckOptions, HistoryError, KeyVerdict, Report, Verdict, Violation, check};
pub use op::{Call, Op, Outcome, Return, Revision, Value};

#[cfg(test)]
mod generate;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
