//! concord-meta
