//! concord-node
