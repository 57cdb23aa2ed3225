//! concord-membership: SWIM failure detection and clock-offset measurement (DESIGN.md §6).
//!
//! Layout:
//! - [`Swim`] (`swim.rs`): the pure SWIM state machine on foca, with [`SwimConfig`];
//! - [`SwimId`] (`identity.rs`): a node's identity in SWIM, its `NodeId` and a generation;
//! - [`ClockSample`], [`OffsetEstimator`] (`clock.rs`): clock offset and delay arithmetic.
//!
//! Must not decide ring ownership: liveness only steers requests.

mod clock;
mod config;
mod error;
mod identity;
mod swim;

pub use clock::{ClockSample, OFFSET_WINDOW_SAMPLES, OffsetEstimator, answer_time_probe};
pub use config::{MembershipConfig, SwimConfig};
pub use error::Error;
pub use identity::SwimId;
pub use swim::{Liveness, Output, Swim, SwimTimer};

#[cfg(test)]
mod swim_sim_tests;
#[cfg(test)]
mod swim_tests;
