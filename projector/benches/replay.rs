//! `make bench`: replays N realistic events (default 1,000,000 of ≈1 KB over 100,000 assets) from
//! a real JetStream stream into a fresh DuckDB file, and measures a raw ordered consume of the
//! same stream in the same run as the baseline.
//!
//! Knobs: `BENCH_EVENTS`, `BENCH_ASSETS`, `BENCH_ROUNDS` (default 3). Prints one line per
//! measurement with the CPU time it cost (this process, nats-server), the medians and their ratio.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "common/corpus_stream.rs"]
mod corpus_stream;

use std::time::Instant;

use corpus_stream::{median, publish_corpus, raw_consume};
use inventory_bus::{ensure_stream, StreamSettings};
use inventory_projector::store::DEFAULT_MEMORY_MIB;
use inventory_projector::{run, RunOptions, Status, Store};
use inventory_testkit::NatsServer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The allocator of the `inventory` binary, so that the figures are those of the real process.
#[global_allocator]
static GLOBAL: inventory_allocator::MiMalloc = inventory_allocator::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    inventory_allocator::configure();
    let events = env("BENCH_EVENTS", 1_000_000);
    let assets = env("BENCH_ASSETS", 100_000).min(events).max(1);
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();

    // Publish: asset i's v-th version is event v*assets + i (corpus_stream.rs).
    let t0 = Instant::now();
    let bytes = publish_corpus(&js, events, assets).await;
    let publish_s = t0.elapsed().as_secs_f64();
    println!(
        "setup: published {events} events ({:.0} B average) for {assets} assets in {publish_s:.1} s",
        bytes as f64 / events as f64
    );

    // Rounds alternate the baseline (a raw ordered consume of the same stream: no decoding, no
    // storage) and the projector (into a fresh DuckDB file each time); medians are compared, as
    // single runs of either vary by ±15 % on a shared 2-core machine.
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let (mut raw_rates, mut proj_rates) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let cpu = Cpu::start(&nats);
        let raw_s = raw_consume(&stream, events).await;
        raw_rates.push(events as f64 / raw_s);
        println!(
            "round {round}: raw ordered consume:        {events} msgs in {raw_s:.2} s = {:>9.0} msg/s",
            events as f64 / raw_s
        );
        cpu.print(events);
        let cpu = Cpu::start(&nats);
        let (proj_s, close_s) = project(&stream, events, assets).await;
        proj_rates.push(events as f64 / proj_s);
        println!(
            "round {round}: projector replay to DuckDB: {events} events in {proj_s:.2} s = {:>9.0} events/s \
             (then closing the database, its final checkpoint: {close_s:.2} s)",
            events as f64 / proj_s
        );
        cpu.print(events);
    }
    let (raw, proj) = (median(&mut raw_rates), median(&mut proj_rates));
    println!("median raw ordered consume: {raw:>9.0} msg/s");
    println!("median projector replay:    {proj:>9.0} events/s");
    println!(
        "ratio of the medians: projector / raw consume = {:.1} %",
        100.0 * proj / raw
    );
}

/// Seconds for the projector (decode, fold, DuckDB: Arrow appends of history rows; the in-memory
/// current view and versions index) to replay the stream into a fresh file; and, not in that
/// time, to close it.
async fn project(
    stream: &async_nats::jetstream::stream::Stream,
    events: u64,
    assets: u64,
) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.duckdb")).unwrap();
    // DuckDB's memory as `inventory serve` sets it by default (INVENTORY_DUCKDB_MEMORY_MIB).
    store.set_memory_limit(DEFAULT_MEMORY_MIB).unwrap();
    let (tx, _rx) = watch::channel(Status::default());
    let opts = RunOptions {
        stop_when_caught_up: true,
        ..RunOptions::default()
    };
    let t0 = Instant::now();
    let store = run(stream.clone(), store, CancellationToken::new(), tx, opts)
        .await
        .unwrap();
    let proj_s = t0.elapsed().as_secs_f64();
    assert_eq!(store.checkpoint(), events);
    let conn = store.connection().unwrap();
    let (ev_rows, asset_rows): (u64, u64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM assets)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((ev_rows, asset_rows), (events, assets));
    let t0 = Instant::now();
    drop(conn);
    drop(store);
    let close_s = t0.elapsed().as_secs_f64();
    let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
    println!(
        "  files: database {:.0} MiB, version log {:.0} MiB",
        size("bench.duckdb") as f64 / 1048576.0,
        size("bench.duckdb.versions") as f64 / 1048576.0
    );
    (proj_s, close_s)
}

/// CPU time used by this process and by the server since a phase started.
struct Cpu {
    server: Option<u32>,
    at: (f64, f64),
}

impl Cpu {
    fn start(nats: &NatsServer) -> Self {
        let server = nats.pid();
        Self {
            server,
            at: (cpu_seconds(None), cpu_seconds(server)),
        }
    }

    /// Prints the CPU time used since [`Cpu::start`], per message (close included).
    fn print(&self, messages: u64) {
        let own = cpu_seconds(None) - self.at.0;
        let server = cpu_seconds(self.server) - self.at.1;
        let per = |s: f64| s * 1e6 / messages as f64;
        println!(
            "  cpu: this process {own:.1} s ({:.1} µs/msg), nats-server {server:.1} s ({:.1} µs/msg)",
            per(own),
            per(server)
        );
    }
}

/// CPU seconds (user and system) a process has used so far: this one (`None`) or `pid`'s, from
/// `/proc` (0 where there is none). Printed beside the rates, to show where a phase's CPU went
/// (on a shared VM it varies between runs too, with the machine's speed).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // After the command name (in parentheses, which may hold spaces): state is field 3,
    // utime and stime fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(14) + ticks(15)) as f64 / 100.0
}
