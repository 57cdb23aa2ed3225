//! concord-storage
