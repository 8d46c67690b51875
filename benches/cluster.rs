//! `make bench-cluster` (issue 13): sweep and replay throughput with the `INVENTORY` stream at 3
//! replicas on a 3-node JetStream cluster (testkit's `NatsCluster`) versus 1 replica on a single
//! `nats-server -js`, measured in the same run, the two alternating round by round.
//!
//! Each round, for R1 then R3, into a fresh stream:
//! - sweep: the real `inventory collect file` binary declaring `BENCH_ASSETS` (default 10,000)
//!   accounts (it creates the stream with `INVENTORY_STREAM_REPLICAS`): the first sweep writes
//!   one `discovered` per asset, the second renames 10 % of them (one `changed` each);
//! - replay: the stream is deleted, `BENCH_EVENTS` (default 200,000) realistic events are
//!   published into a fresh one (`publish_corpus`, 4,096 in flight; timed too), then the real
//!   `inventory project` binary replays the whole stream into a fresh DuckDB file.
//!
//! Knobs: `BENCH_ASSETS`, `BENCH_EVENTS`, `BENCH_CORPUS_ASSETS` (default 20,000), `BENCH_ROUNDS`
//! (default 3). Prints one line per measurement, then the medians and the ratios R3/R1.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../projector/benches/common/corpus_stream.rs"]
mod corpus_stream;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use corpus_stream::{median, publish_corpus};
use inventory_bus::{ensure_stream, StreamSettings};
use inventory_testkit::cluster::NatsCluster;
use inventory_testkit::corpus::estate;
use inventory_testkit::NatsServer;

const STREAM: &str = "INVENTORY";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One of the two set-ups: where the binary connects, where this process connects, replicas.
struct Target {
    name: &'static str,
    /// `NATS_URL` of the `inventory` binary (the cluster's: all three nodes).
    binary_url: String,
    /// This process's own client (node 0 of the cluster).
    js: async_nats::jetstream::Context,
    replicas: usize,
}

/// The figures of one round of one target.
#[derive(Default)]
struct Figures {
    sweep1_s: f64,
    sweep1_events: u64,
    sweep2_s: f64,
    sweep2_events: u64,
    publish_s: f64,
    replay_s: f64,
}

/// Runs `inventory <args>` against `target` to completion; seconds. Fails on a non-zero exit.
fn inventory(target: &Target, args: &[&OsStr]) -> f64 {
    let t0 = Instant::now();
    let out = common::inventory(&target.binary_url)
        .env("INVENTORY_STREAM_REPLICAS", target.replicas.to_string())
        .args(args)
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}: inventory {args:?}: {}",
        target.name,
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

async fn delete_stream(js: &async_nats::jetstream::Context) {
    // Absent on the first round: nothing to delete.
    let _ = js.delete_stream(STREAM).await;
}

async fn last_seq(js: &async_nats::jetstream::Context) -> u64 {
    let mut stream = js.get_stream(STREAM).await.unwrap();
    stream.info().await.unwrap().state.last_sequence
}

/// `inventory collect file --file FILE`.
fn collect(file: &Path) -> [&OsStr; 4] {
    [
        OsStr::new("collect"),
        OsStr::new("file"),
        OsStr::new("--file"),
        file.as_os_str(),
    ]
}

async fn round(target: &Target, dir: &Path, assets: usize, events: u64, corpus: u64) -> Figures {
    let mut f = Figures::default();
    let file = dir.join(format!("estate-{}.yaml", target.name));

    // Sweeps into a fresh stream, which the binary creates at `replicas`.
    delete_stream(&target.js).await;
    std::fs::write(&file, estate(assets, 0)).unwrap();
    f.sweep1_s = inventory(target, &collect(&file));
    f.sweep1_events = last_seq(&target.js).await;
    assert_eq!(f.sweep1_events, assets as u64 + 1, "discovered + sweep");
    std::fs::write(&file, estate(assets, assets / 10)).unwrap();
    f.sweep2_s = inventory(target, &collect(&file));
    f.sweep2_events = last_seq(&target.js).await - f.sweep1_events;
    assert_eq!(f.sweep2_events, (assets / 10) as u64 + 1, "changed + sweep");
    let info = target
        .js
        .get_stream(STREAM)
        .await
        .unwrap()
        .cached_info()
        .clone();
    assert_eq!(
        info.config.num_replicas, target.replicas,
        "the stream's replicas"
    );

    // Replay of a larger corpus, in a fresh stream (its chain links assume seq 1 onwards).
    delete_stream(&target.js).await;
    ensure_stream(
        &target.js,
        &StreamSettings {
            replicas: target.replicas,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    publish_corpus(&target.js, events, corpus).await;
    f.publish_s = t0.elapsed().as_secs_f64();
    assert_eq!(last_seq(&target.js).await, events);
    let db = dir.join(format!("replay-{}.duckdb", target.name));
    let _ = std::fs::remove_file(&db);
    let _ = std::fs::remove_file(db.with_extension("duckdb.wal"));
    f.replay_s = inventory(
        target,
        &[OsStr::new("project"), OsStr::new("--db"), db.as_os_str()],
    );
    let applied: u64 = duckdb::Connection::open(&db)
        .unwrap()
        .query_row("SELECT last_seq FROM checkpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        applied, events,
        "{}: the replay reached the end",
        target.name
    );
    std::fs::remove_file(&db).unwrap();
    f
}

fn print(round: u64, name: &str, f: &Figures, events: u64) {
    println!(
        "round {round} {name}: sweep 1 (discovered) {:>6} events in {:>6.2} s = {:>7.0} ev/s | sweep 2 (10 % renamed) {:>5} events in {:>5.2} s = {:>6.0} ev/s | publish {events} in {:>6.2} s = {:>7.0} ev/s | replay (inventory project) {events} in {:>6.2} s = {:>7.0} ev/s",
        f.sweep1_events,
        f.sweep1_s,
        f.sweep1_events as f64 / f.sweep1_s,
        f.sweep2_events,
        f.sweep2_s,
        f.sweep2_events as f64 / f.sweep2_s,
        f.publish_s,
        events as f64 / f.publish_s,
        f.replay_s,
        events as f64 / f.replay_s,
    );
}

#[tokio::main]
async fn main() {
    let assets = env("BENCH_ASSETS", 10_000).max(10) as usize;
    let events = env("BENCH_EVENTS", 200_000).max(1);
    let corpus = env("BENCH_CORPUS_ASSETS", 20_000).clamp(1, events);
    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let started = Instant::now();

    let single = NatsServer::start();
    let cluster = tokio::task::block_in_place(NatsCluster::start);
    let connect = |url: String| async move {
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(Duration::from_secs(10)))
            .connect(url)
            .await
            .unwrap();
        async_nats::jetstream::new(client)
    };
    let targets = [
        Target {
            name: "R1",
            binary_url: single.url(),
            js: connect(single.url()).await,
            replicas: 1,
        },
        Target {
            name: "R3",
            binary_url: cluster.urls(),
            js: connect(cluster.url(0)).await,
            replicas: 3,
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    println!(
        "{assets} declared assets per sweep ({} renamed by the second), replay of {events} events over {corpus} assets, {rounds} rounds, R1 and R3 alternating",
        assets / 10
    );

    let mut all: [Vec<Figures>; 2] = [Vec::new(), Vec::new()];
    for r in 1..=rounds {
        for (t, target) in targets.iter().enumerate() {
            let f = round(target, dir.path(), assets, events, corpus).await;
            print(r, target.name, &f, events);
            all[t].push(f);
        }
    }

    // Medians of each figure per target, and R3/R1.
    type Rate = fn(&Figures, u64) -> f64;
    let figures: [(&str, Rate); 7] = [
        ("sweep 1 wall time (s)", |f, _| f.sweep1_s),
        ("sweep 1 events/s", |f, _| {
            f.sweep1_events as f64 / f.sweep1_s
        }),
        ("sweep 2 wall time (s)", |f, _| f.sweep2_s),
        ("sweep 2 events/s", |f, _| {
            f.sweep2_events as f64 / f.sweep2_s
        }),
        ("publish events/s", |f, e| e as f64 / f.publish_s),
        ("replay wall time (s)", |f, _| f.replay_s),
        ("replay events/s", |f, e| e as f64 / f.replay_s),
    ];
    println!("{:<24} {:>11} {:>11} {:>7}", "median", "R1", "R3", "R3/R1");
    for (name, rate) in figures {
        let mut m = [0.0; 2];
        for t in 0..2 {
            let mut v: Vec<f64> = all[t].iter().map(|f| rate(f, events)).collect();
            m[t] = median(&mut v);
        }
        println!(
            "{name:<24} {:>11.2} {:>11.2} {:>7.2}",
            m[0],
            m[1],
            m[1] / m[0]
        );
    }
    println!("whole bench: {:.0} s", started.elapsed().as_secs_f64());
}
