//! Crash durability: with `storage.durability = "sync"`, every write the server acknowledged is
//! present, with its value, after the server is killed with SIGKILL at a random moment and
//! restarted on the same data dir.
//!
//! Each cycle runs concurrent writers (unique keys, random value sizes, plus one read-modify-write
//! counter per writer) and kills the server once a randomly drawn number of writes has been
//! acknowledged, while writes are still in flight. After the restart every acknowledged write of
//! every cycle so far must read back exactly, and no counter may have gone backwards.
//!
//! `CONCORD_CRASH_CYCLES` sets the number of cycles (default 20); `CONCORD_TEST_SEED` replays a
//! run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use concord_testkit::{ServerOptions, TestServer, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;

const WRITERS: usize = 16;

/// What the writers got acknowledged.
#[derive(Default)]
struct Acked {
    /// key → value of every acknowledged unique-key write.
    values: BTreeMap<String, Vec<u8>>,
    /// writer → highest acknowledged counter value.
    counters: BTreeMap<usize, u64>,
}

fn value_for(seed: u64, key: &str, len: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ xxh(key.as_bytes()));
    (0..len).map(|_| rng.random()).collect()
}

/// A small stable hash so values are a pure function of (seed, key).
fn xxh(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

struct Writer {
    id: usize,
    cycle: usize,
    seed: u64,
    endpoint: String,
    client: reqwest::Client,
    acked: Arc<Mutex<Acked>>,
    acked_count: Arc<AtomicUsize>,
    /// Woken on every acknowledgement, so the test waits for progress without spinning.
    progress: Arc<Notify>,
    stop: Arc<AtomicBool>,
}

impl Writer {
    /// Writes until the server dies (the first transport error) or `stop` is set.
    async fn run(self) {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ ((self.cycle as u64) << 32) ^ self.id as u64);
        let mut counter = self.acked.lock().unwrap().counters.get(&self.id).copied().unwrap_or(0);
        for i in 0.. {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let ok = if i % 4 == 3 {
                self.bump_counter(&mut counter).await
            } else {
                let key = format!("c{:02}-w{:02}-{i:06}", self.cycle, self.id);
                let value = value_for(self.seed, &key, rng.random_range(1..4096));
                self.put_unique(key, value).await
            };
            if !ok {
                return;
            }
        }
    }

    async fn put_unique(&self, key: String, value: Vec<u8>) -> bool {
        let url = format!("{}/v1/kv/default/{key}", self.endpoint);
        match self.client.put(&url).body(value.clone()).send().await {
            Ok(response) if response.status() == 204 => {
                self.acked.lock().unwrap().values.insert(key, value);
                self.acked_count.fetch_add(1, Ordering::SeqCst);
                self.progress.notify_one();
                true
            }
            Ok(response) => panic!("unexpected status {} for {url}", response.status()),
            Err(_) => false,
        }
    }

    /// Read-modify-write of this writer's counter key with the read's context.
    async fn bump_counter(&self, counter: &mut u64) -> bool {
        let url = format!("{}/v1/kv/default/counter-w{:02}", self.endpoint, self.id);
        let Ok(read) = self.client.get(&url).send().await else { return false };
        let context = read.headers().get("concord-context").cloned();
        let next = *counter + 1;
        let mut put = self.client.put(&url).body(next.to_string());
        if let Some(context) = context {
            put = put.header("concord-context", context);
        }
        match put.send().await {
            Ok(response) if response.status() == 204 => {
                *counter = next;
                self.acked.lock().unwrap().counters.insert(self.id, next);
                self.acked_count.fetch_add(1, Ordering::SeqCst);
                self.progress.notify_one();
                true
            }
            Ok(response) => panic!("unexpected status {} for {url}", response.status()),
            Err(_) => false,
        }
    }
}

/// Reads back every acknowledged write; returns the failures.
async fn verify(client: &reqwest::Client, endpoint: &str, acked: &Acked) -> Vec<String> {
    let mut failures = Vec::new();
    for (key, value) in &acked.values {
        let url = format!("{endpoint}/v1/kv/default/{key}");
        let response = client.get(&url).send().await.expect("server is up for verification");
        let status = response.status();
        let body = response.bytes().await.expect("reading the body");
        if status != 200 || body.as_ref() != value.as_slice() {
            failures.push(format!(
                "{key}: status {status}, {} bytes (want {})",
                body.len(),
                value.len()
            ));
        }
    }
    for (writer, acked_counter) in &acked.counters {
        let url = format!("{endpoint}/v1/kv/default/counter-w{writer:02}");
        let response = client.get(&url).send().await.expect("server is up for verification");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let stored: Option<u64> = if status == 200 { text.parse().ok() } else { None };
        if stored.is_none_or(|s| s < *acked_counter) {
            failures.push(format!(
                "counter-w{writer:02}: status {status} {text:?}, acked {acked_counter}"
            ));
        }
    }
    failures
}

/// Runs the cycles; see the file doc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_writes_survive_kill_9() {
    let seed = seed("acked_writes_survive_kill_9");
    let cycles: usize =
        std::env::var("CONCORD_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_concord"));
    let options =
        ServerOptions::new(dir.path().join("node")).env("CONCORD_STORAGE_DURABILITY", "sync");
    let mut server = TestServer::start(binary, options).expect("server starts");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));

    for cycle in 0..cycles {
        let kill_after = rng.random_range(20..400);
        println!(
            "cycle {cycle}: {WRITERS} writers, SIGKILL after {kill_after} more acknowledged writes"
        );
        let acked_count = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                tokio::spawn(
                    Writer {
                        id,
                        cycle,
                        seed,
                        endpoint: server.endpoint.clone(),
                        client: client.clone(),
                        acked: acked.clone(),
                        acked_count: acked_count.clone(),
                        progress: progress.clone(),
                        stop: stop.clone(),
                    }
                    .run(),
                )
            })
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while acked_count.load(Ordering::SeqCst) < kill_after {
            let woken = tokio::time::timeout_at(deadline, progress.notified()).await;
            assert!(woken.is_ok(), "writers made no progress; log:\n{}", server.log_tail());
        }
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.expect("writer task panicked");
        }
        server.restart().expect("server restarts after SIGKILL");
        let snapshot = {
            let acked = acked.lock().unwrap();
            Acked { values: acked.values.clone(), counters: acked.counters.clone() }
        };
        println!(
            "cycle {cycle}: restarted, verifying {} writes and {} counters",
            snapshot.values.len(),
            snapshot.counters.len()
        );
        let failures = verify(&client, &server.endpoint, &snapshot).await;
        assert!(
            failures.is_empty(),
            "seed {seed}, cycle {cycle}: {} acknowledged writes lost or wrong:\n{}\nserver log:\n{}",
            failures.len(),
            failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
            server.log_tail()
        );
    }
}
