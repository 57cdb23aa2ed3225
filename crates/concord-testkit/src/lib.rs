//! concord-testkit
