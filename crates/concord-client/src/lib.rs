//! concord-client
