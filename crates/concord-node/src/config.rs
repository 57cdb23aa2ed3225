//! Node configuration: a TOML file, `CONCORD_*` environment variables and command-line flags, in
//! increasing order of precedence. Every key is documented here with its default and unit; the
//! README's config reference is generated from the same list.
//!
//! Environment variables name a key as `CONCORD_<SECTION>_<KEY>` in upper case, for example
//! `CONCORD_STORAGE_DURABILITY=buffered` or `CONCORD_LIMITS_VALUE_BYTES_MAX=65536`. List values
//! (`cluster.join`) are comma-separated.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub http: HttpConfig,
    pub peer: PeerConfig,
    pub cluster: ClusterConfig,
    pub replication: ReplicationConfig,
    pub anti_entropy: AntiEntropyConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub admin: AdminConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name, `[a-z0-9][a-z0-9_-]{0,62}`. Default "": drawn at first start and persisted.
    pub id: String,
    /// Where the node keeps its data and identity. Default `./concord-data`.
    pub data_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { id: String::new(), data_dir: PathBuf::from("./concord-data") }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP API listens on. Default `127.0.0.1:7700`; port 0 picks a free port.
    pub addr: String,
    /// Address other nodes and clients are told to use. Default "": same as `addr`.
    pub advertise: String,
    /// Most client connections served at once; more wait in the accept backlog. Default 4096.
    pub max_connections: usize,
    /// Time allowed for a client to send a request's headers, in ms. Default 10000.
    pub header_read_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:7700".into(),
            advertise: String::new(),
            max_connections: 4096,
            header_read_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerConfig {
    /// Address for node-to-node traffic. Default `127.0.0.1:7701`. (Used once clustering lands.)
    pub addr: String,
    /// Peer address other nodes are told to use. Default "": same as `addr`.
    pub advertise: String,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self { addr: "127.0.0.1:7701".into(), advertise: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Peer addresses of existing members to join. Default empty: start a new cluster.
    pub join: Vec<String>,
    /// Number of partitions Q, a power of two, fixed when the cluster is created. Default 64.
    pub partitions: u16,
    /// Clock offset to a peer beyond which an alarm is raised, in ms. Default 500.
    pub max_clock_offset_ms: u64,
    /// Most bytes per second this node pulls when partitions move to it. Default 134217728.
    pub handoff_rate_bytes: u64,
    /// How long a partition replica that moved away, or a deleted namespace's data, is kept
    /// before it is dropped, in ms. Default 30000.
    pub handoff_drop_delay_ms: u64,
    /// Nice value (0–19) of the threads that scan, encode and decode handoff chunks: above 0,
    /// client work on the same cores runs first. Default 5.
    pub handoff_nice: i32,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            join: Vec::new(),
            partitions: 64,
            max_clock_offset_ms: 500,
            handoff_rate_bytes: 128 << 20,
            handoff_drop_delay_ms: 30_000,
            handoff_nice: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicationConfig {
    /// Most hints this node holds for one replica; writes for it beyond that are not hinted.
    /// Default 1000000.
    pub hints_max_per_target: u64,
    /// Most hints replayed per second once their replica is back. Default 5000.
    pub hint_replay_rate: u64,
    /// How often this node checks whether replicas it holds hints for are back, in ms.
    /// Default 1000.
    pub hint_replay_interval_ms: u64,
    /// How long a read keeps listening, after answering, to the replicas it did not wait for,
    /// to repair the ones that are behind, in ms. Default 200.
    pub read_repair_wait_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            hints_max_per_target: 1_000_000,
            hint_replay_rate: 5_000,
            hint_replay_interval_ms: 1_000,
            read_repair_wait_ms: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AntiEntropyConfig {
    /// Whether replicas compare hash trees and repair differences. Default true.
    pub enabled: bool,
    /// Time between two rounds over every partition replica this node holds, in ms.
    /// Default 30000.
    pub interval_ms: u64,
    /// Pause between two exchanges of a round, in ms; foreground requests go first. Default 20.
    pub pause_ms: u64,
    /// Most differing tree segments repaired by one exchange. Default 256.
    pub max_segments: usize,
    /// Most objects fetched from either side by one exchange. Default 2000.
    pub max_objects: usize,
    /// How long a tombstone is kept at least, in seconds; after that it is purged once every
    /// replica of its partition holds it. A node down for longer must be removed and rebuilt,
    /// not restarted: it refuses to start. Default 864000 (10 days).
    pub tombstone_grace_s: u64,
    /// Time between two sweeps for tombstones past the grace, in ms. Default 600000.
    pub purge_interval_ms: u64,
    /// Start even if this node was down longer than the grace. Safe only when every node of
    /// the cluster was down together, so nothing could be purged meanwhile. Default false.
    pub start_after_grace: bool,
}

impl Default for AntiEntropyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 30_000,
            pause_ms: 20,
            max_segments: 256,
            max_objects: 2000,
            tombstone_grace_s: 864_000,
            purge_interval_ms: 600_000,
            start_after_grace: false,
        }
    }
}

/// `storage.durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// fsync before acknowledging; concurrent writes share one fsync.
    #[default]
    Sync,
    /// Acknowledge once the OS has the bytes: survives a process crash, not power loss.
    Buffered,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `sync` (default) or `buffered`.
    pub durability: DurabilityMode,
    /// Most writes committed together under one fsync. Default 1024.
    pub commit_batch_max: usize,
    /// Most writes waiting for the committer before writers are held back. Default 8192.
    pub commit_queue_max: usize,
    /// Most handoff and anti-entropy objects merged in one bulk commit; more wait for a later
    /// one. Bulk and client commits take turns, so this bounds how much bulk work a client
    /// write can wait behind. Default 1024.
    pub commit_bulk_max: usize,
    /// Memtable size at which the engine flushes to a table file, in bytes. Default 67108864
    /// (fjall's own): fewer, larger flushes leave less compaction behind a write burst such as
    /// a handoff (see README, "Cluster benchmarks"). Fixed when the data dir is created.
    pub memtable_bytes: u64,
    /// Threads for engine flushes and compactions; 0 = one per core, up to 4. Default 4: fjall
    /// keeps its first worker for flushes and, while every other worker is busy, that worker
    /// hands compaction requests back to the queue in a busy loop; with the two workers of a
    /// 2-core machine it burned a core for the length of every compaction.
    pub background_threads: usize,
    /// Memory for the engine's cache of table blocks, in bytes. Default 33554432 (32 MiB,
    /// fjall's own); fjall suggests a fifth to a quarter of the memory left to the node.
    pub block_cache_bytes: u64,
    /// Step in which table files being written by a flush or a compaction are written back to
    /// disk as they grow, in bytes; 0 leaves each table to the engine's one fsync at its end,
    /// which puts the whole table in front of the next journal fsync. Default 1048576 (1 MiB).
    pub table_writeback_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            durability: DurabilityMode::Sync,
            commit_batch_max: 1024,
            commit_queue_max: 8192,
            commit_bulk_max: 1024,
            memtable_bytes: 64 << 20,
            background_threads: 4,
            block_cache_bytes: 32 << 20,
            table_writeback_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest value accepted, in bytes. Default 1048576 (1 MiB).
    pub value_bytes_max: usize,
    /// Deadline of a request (receiving its body and running it), in ms. Default 10000.
    pub request_timeout_ms: u64,
    /// Most keys one list page returns. Default 1000.
    pub list_limit_max: usize,
    /// Most concurrent versions (siblings) a write may leave on a key; a write beyond it is
    /// refused with 409 until a client resolves them. Default 15: fifteen values of 1 MiB is
    /// the largest object that fits a 16 MiB peer message. `value_bytes_max` × `siblings_max`
    /// must fit one (see [`Config::largest_object_bytes`]).
    ///
    /// The bound is on what one write leaves, checked on the coordinator's own state. Merges
    /// are not bounded: replicas that took concurrent blind writes while apart each stay
    /// within it, and their merge (anti-entropy, read repair, handoff, a hint) keeps every
    /// write, so a key can hold up to about that many siblings per coordinator. Such a key
    /// refuses every write that would add a sibling until a client writes with a read's
    /// context. While it is larger than a peer message it cannot be sent: the send fails with
    /// a non-transient error naming the size (`RpcError::TooLarge`, or a remote error for a
    /// reply), never a tight retry; a handoff move holding it is reported in
    /// `GET /v1/cluster` (`moves.failing`, an alarm) and retried with backoff, and
    /// anti-entropy logs the failed exchange, until the key is resolved.
    pub siblings_max: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            value_bytes_max: 1 << 20,
            request_timeout_ms: 10_000,
            list_limit_max: 1000,
            siblings_max: 15,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Serve `/v1/admin/faults`. Default false; for tests and game days only.
    pub enable_fault_injection: bool,
}

/// What a stored object takes beyond its values, per sibling, at most: its dot, hybrid
/// timestamp, content type (up to 256 bytes) and their encoding.
pub const SIBLING_OVERHEAD_BYTES: u64 = 512;
/// Room for an object's version vector: 3,000 actors at 20 encoded bytes each, and more.
pub const VECTOR_BYTES: u64 = 64 << 10;
/// Room, in a peer message, for what surrounds one object (message fields, names, the key).
pub const ENVELOPE_BYTES: u64 = 64 << 10;
/// The largest peer message, in bytes: the transport's fixed frame bound.
pub const FRAME_BYTES: u64 = concord_rpc::MAX_FRAME_DEFAULT as u64;

impl Config {
    /// The largest object these limits let a key hold, encoded: `siblings_max` values of
    /// `value_bytes_max` with their overhead, the longest key and its version vector. It must
    /// fit one peer message, with its envelope, to be replicated, hinted or handed off.
    pub fn largest_object_bytes(&self) -> u64 {
        let siblings = self.limits.siblings_max as u64;
        let value = self.limits.value_bytes_max as u64;
        siblings.saturating_mul(value.saturating_add(SIBLING_OVERHEAD_BYTES))
            + concord_types::Key::MAX_BYTES as u64
            + VECTOR_BYTES
    }

    /// Refuses limits whose largest object does not fit a peer message with its envelope,
    /// naming the keys, the figure and the most siblings that would fit.
    fn check_largest_object(&self) -> Result<(), Error> {
        let room = FRAME_BYTES - ENVELOPE_BYTES;
        let largest = self.largest_object_bytes();
        if largest <= room {
            return Ok(());
        }
        let per_sibling = self.limits.value_bytes_max as u64 + SIBLING_OVERHEAD_BYTES;
        let fits = (room - concord_types::Key::MAX_BYTES as u64 - VECTOR_BYTES) / per_sibling;
        Err(Error::Startup(format!(
            "invalid configuration: limits.value_bytes_max ({}) × limits.siblings_max ({}) \
             allows an object of {largest} bytes (with the key, versions and {SIBLING_OVERHEAD_BYTES} \
             bytes per sibling), more than the {room} bytes a peer message ({FRAME_BYTES} bytes) \
             has room for: such a key could not be replicated, hinted or handed off. Lower one \
             of them (with this value_bytes_max, siblings_max may be at most {fits})",
            self.limits.value_bytes_max, self.limits.siblings_max,
        )))
    }

    /// Loads the file (if any) and applies the `CONCORD_*` variables found in `env`.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Error> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Startup(format!("cannot read config {}: {e}", path.display()))
                })?;
                text.parse::<toml::Table>().map_err(|e| {
                    Error::Startup(format!("config {} is not valid TOML: {e}", path.display()))
                })?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| Error::Startup(format!("invalid configuration: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |m: &str| Err(Error::Startup(format!("invalid configuration: {m}")));
        if !self.cluster.partitions.is_power_of_two() || self.cluster.partitions > 4096 {
            return fail("cluster.partitions must be a power of two up to 4096");
        }
        if self.limits.value_bytes_max == 0 || self.limits.value_bytes_max > 64 << 20 {
            return fail("limits.value_bytes_max must be between 1 and 67108864");
        }
        if self.limits.request_timeout_ms == 0 || self.limits.list_limit_max == 0 {
            return fail("limits.request_timeout_ms and limits.list_limit_max must be positive");
        }
        if self.storage.commit_batch_max == 0
            || self.storage.commit_queue_max == 0
            || self.storage.commit_bulk_max == 0
        {
            return fail(
                "storage.commit_batch_max, storage.commit_queue_max and storage.commit_bulk_max \
                 must be positive",
            );
        }
        if self.storage.memtable_bytes < 1 << 20 {
            return fail("storage.memtable_bytes must be at least 1048576");
        }
        let writeback = self.storage.table_writeback_bytes;
        if writeback != 0 && writeback < 64 << 10 {
            return fail("storage.table_writeback_bytes must be 0 (off) or at least 65536");
        }
        if self.storage.block_cache_bytes < 1 << 20 {
            return fail("storage.block_cache_bytes must be at least 1048576");
        }
        if self.http.max_connections == 0 {
            return fail("http.max_connections must be positive");
        }
        if self.limits.siblings_max == 0 || self.limits.siblings_max > 4096 {
            return fail("limits.siblings_max must be between 1 and 4096");
        }
        self.check_largest_object()?;
        if self.replication.hint_replay_rate == 0 || self.replication.hint_replay_interval_ms == 0 {
            return fail(
                "replication.hint_replay_rate and replication.hint_replay_interval_ms must be \
                 positive",
            );
        }
        let ae = &self.anti_entropy;
        if ae.interval_ms == 0 || ae.max_segments == 0 || ae.max_objects == 0 {
            return fail("anti_entropy.interval_ms, max_segments and max_objects must be positive");
        }
        if ae.tombstone_grace_s == 0 || ae.purge_interval_ms == 0 {
            return fail("anti_entropy.tombstone_grace_s and purge_interval_ms must be positive");
        }
        if self.cluster.handoff_rate_bytes < 1 << 20 {
            return fail("cluster.handoff_rate_bytes must be at least 1048576");
        }
        if !(0..=19).contains(&self.cluster.handoff_nice) {
            return fail("cluster.handoff_nice must be between 0 and 19");
        }
        Ok(())
    }

    /// Every key as `(section.key, CONCORD_SECTION_KEY, default)`, for documentation.
    pub fn keys() -> Vec<(String, String, String)> {
        let defaults = toml::Table::try_from(Config::default()).expect("config serializes");
        let mut out = Vec::new();
        for (section, values) in &defaults {
            let toml::Value::Table(values) = values else { continue };
            for (key, value) in values {
                out.push((format!("{section}.{key}"), env_name(section, key), value.to_string()));
            }
        }
        out
    }
}

fn env_name(section: &str, key: &str) -> String {
    format!("CONCORD_{}_{}", section.to_uppercase(), key.to_uppercase())
}

/// Overrides table entries from `CONCORD_<SECTION>_<KEY>` variables. The type of each value is
/// taken from the default config, so `CONCORD_LIMITS_VALUE_BYTES_MAX=10` becomes an integer.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), Error> {
    let defaults = toml::Table::try_from(Config::default()).expect("config serializes");
    let env: std::collections::HashMap<String, String> = env.into_iter().collect();
    for (section, values) in &defaults {
        let toml::Value::Table(values) = values else { continue };
        for (key, default) in values {
            let name = env_name(section, key);
            let Some(raw) = env.get(&name) else { continue };
            let value = parse_like(default, raw)
                .ok_or_else(|| Error::Startup(format!("{name}={raw:?} is not a valid value")))?;
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(entry) = entry else {
                return Err(Error::Startup(format!("config: [{section}] must be a table")));
            };
            entry.insert(key.clone(), value);
        }
    }
    Ok(())
}

fn parse_like(default: &toml::Value, raw: &str) -> Option<toml::Value> {
    Some(match default {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().ok()?),
        toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().ok()?),
        toml::Value::Array(_) => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.http.addr, "127.0.0.1:7700");
        assert_eq!(config.node.data_dir, PathBuf::from("./concord-data"));
    }

    #[test]
    fn environment_overrides_file_and_takes_typed_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("concord.toml");
        std::fs::write(&path, "[storage]\ndurability = \"sync\"\n[limits]\nvalue_bytes_max = 5\n")
            .unwrap();
        let config = Config::load(
            Some(&path),
            env(&[
                ("CONCORD_STORAGE_DURABILITY", "buffered"),
                ("CONCORD_CLUSTER_JOIN", "a:1, b:2"),
                ("CONCORD_ADMIN_ENABLE_FAULT_INJECTION", "true"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.storage.durability, DurabilityMode::Buffered);
        assert_eq!(config.limits.value_bytes_max, 5);
        assert_eq!(config.cluster.join, vec!["a:1".to_string(), "b:2".to_string()]);
        assert!(config.admin.enable_fault_injection);
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let err = Config::load(None, env(&[("CONCORD_LIMITS_VALUE_BYTES_MAX", "lots")]));
        assert!(err.unwrap_err().to_string().contains("CONCORD_LIMITS_VALUE_BYTES_MAX"));
        let err = Config::load(None, env(&[("CONCORD_CLUSTER_PARTITIONS", "48")]));
        assert!(err.unwrap_err().to_string().contains("power of two"));
        let err = Config::load(None, env(&[("CONCORD_STORAGE_BLOCK_CACHE_BYTES", "4096")]));
        assert!(err.unwrap_err().to_string().contains("storage.block_cache_bytes"));
        let err = Config::load(None, env(&[("CONCORD_STORAGE_TABLE_WRITEBACK_BYTES", "4096")]));
        assert!(err.unwrap_err().to_string().contains("storage.table_writeback_bytes"));
        let off = Config::load(None, env(&[("CONCORD_STORAGE_TABLE_WRITEBACK_BYTES", "0")]));
        assert_eq!(off.unwrap().storage.table_writeback_bytes, 0);
        let err = Config::load(None, env(&[("CONCORD_CLUSTER_HANDOFF_NICE", "-5")]));
        assert!(err.unwrap_err().to_string().contains("cluster.handoff_nice"));
    }

    /// The largest object the limits allow must fit a peer message with its envelope: the
    /// defaults do; 64 siblings of 1 MiB, or one 64 MiB value, do not, and the error names both
    /// keys, the figure and what would fit.
    #[test]
    fn limits_whose_largest_object_exceeds_a_peer_message_are_refused() {
        let defaults = Config::default();
        assert!(defaults.validate().is_ok());
        assert!(defaults.largest_object_bytes() + ENVELOPE_BYTES <= FRAME_BYTES);

        let err = Config::load(None, env(&[("CONCORD_LIMITS_SIBLINGS_MAX", "64")]));
        let err = err.unwrap_err().to_string();
        for needle in ["limits.value_bytes_max (1048576)", "limits.siblings_max (64)", "at most 15"]
        {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        let figure = 64 * (1048576 + SIBLING_OVERHEAD_BYTES) + 1024 + VECTOR_BYTES;
        assert!(err.contains(&format!("an object of {figure} bytes")), "{err}");

        let err = Config::load(
            None,
            env(&[
                ("CONCORD_LIMITS_VALUE_BYTES_MAX", "67108864"),
                ("CONCORD_LIMITS_SIBLINGS_MAX", "1"),
            ]),
        );
        assert!(err.unwrap_err().to_string().contains("siblings_max may be at most 0"));

        // At the edge: the most siblings that fit pass, one more does not.
        let mut config = Config::default();
        config.limits.value_bytes_max = 64 << 10;
        let room = FRAME_BYTES - ENVELOPE_BYTES - 1024 - VECTOR_BYTES;
        let fits = (room / ((64 << 10) + SIBLING_OVERHEAD_BYTES)) as usize;
        config.limits.siblings_max = fits;
        assert!(config.validate().is_ok(), "{fits} siblings of 64 KiB");
        config.limits.siblings_max = fits + 1;
        assert!(config.validate().is_err(), "{} siblings of 64 KiB", fits + 1);
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("concord.toml");
        std::fs::write(&path, "[storage]\ndurabilty = \"sync\"\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(err.contains("durabilty"), "{err}");
    }

    #[test]
    fn every_key_has_an_environment_name() {
        let keys = Config::keys();
        assert!(keys.iter().any(|(k, e, d)| k == "storage.durability"
            && e == "CONCORD_STORAGE_DURABILITY"
            && d == "\"sync\""));
        assert!(keys.len() >= 15);
    }
}
