//! concord-membership
