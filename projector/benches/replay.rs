//! `make bench`: replays N realistic events (default 1,000,000 of ≈1 KB over 100,000 assets) from
//! a real JetStream stream into a fresh DuckDB file, and measures a raw ordered consume of the
//! same stream in the same run as the baseline.
//!
//! Knobs: `BENCH_EVENTS`, `BENCH_ASSETS`, `BENCH_ROUNDS` (default 3). Prints one line per
//! measurement, the medians and their ratio.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use inventory_bus::{ensure_stream, finish, publish_start, StreamSettings};
use inventory_projector::{run, RunOptions, Status, Store};
use inventory_schemas::{encode_asset, ChainLink, EventType, STREAM_SUBJECTS};
use inventory_testkit::corpus::account;
use inventory_testkit::NatsServer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The allocator of the `inventory` binary, so that the figures are those of the real process.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let events = env("BENCH_EVENTS", 1_000_000);
    let assets = env("BENCH_ASSETS", 100_000).min(events).max(1);
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();

    // Publish: asset i's v-th version is event v*assets + i; sequences are contiguous from 1,
    // so each event's prevseq is known before it is published.
    let t0 = Instant::now();
    let mut links: Vec<ChainLink> = vec![ChainLink::default(); assets as usize];
    let mut pending = std::collections::VecDeque::new();
    let mut bytes = 0u64;
    let base = Utc.timestamp_opt(1_760_000_000, 0).unwrap();
    for n in 0..events {
        let (i, v) = (n % assets, n / assets);
        let ty = if v == 0 {
            EventType::Discovered
        } else {
            EventType::Changed
        };
        let at = base + chrono::Duration::seconds(n as i64);
        let ev = encode_asset(
            ty,
            &account(i, v),
            "/collectors/aws/o-exampleorgid",
            at,
            &links[i as usize],
        )
        .unwrap();
        bytes += ev.payload.len() as u64;
        links[i as usize] = ChainLink {
            prevseq: n + 1,
            chainhash: ev.chainhash.clone().unwrap(),
        };
        pending.push_back((publish_start(&js, &ev).await.unwrap(), ev));
        if pending.len() >= 4096 {
            let (ack, ev) = pending.pop_front().unwrap();
            finish(ack, &ev).await.unwrap();
        }
    }
    for (ack, ev) in pending {
        finish(ack, &ev).await.unwrap();
    }
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
        let raw_s = raw_consume(&stream, events).await;
        raw_rates.push(events as f64 / raw_s);
        println!(
            "round {round}: raw ordered consume:        {events} msgs in {raw_s:.2} s = {:>9.0} msg/s",
            events as f64 / raw_s
        );
        let (proj_s, close_s) = project(&stream, events, assets).await;
        proj_rates.push(events as f64 / proj_s);
        println!(
            "round {round}: projector replay to DuckDB: {events} events in {proj_s:.2} s = {:>9.0} events/s \
             (then closing the database, its final checkpoint: {close_s:.2} s)",
            events as f64 / proj_s
        );
    }
    let (raw, proj) = (median(&mut raw_rates), median(&mut proj_rates));
    println!("median raw ordered consume: {raw:>9.0} msg/s");
    println!("median projector replay:    {proj:>9.0} events/s");
    println!(
        "ratio of the medians: projector / raw consume = {:.1} %",
        100.0 * proj / raw
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds to read every message of the stream with the ordered consumer the projector uses.
async fn raw_consume(stream: &async_nats::jetstream::stream::Stream, events: u64) -> f64 {
    let t0 = Instant::now();
    let mut msgs = Box::pin(
        inventory_bus::follow(stream, STREAM_SUBJECTS, 1)
            .await
            .unwrap(),
    );
    let mut n = 0u64;
    while let Some(m) = msgs.next().await {
        m.unwrap();
        n += 1;
        if n == events {
            break;
        }
    }
    t0.elapsed().as_secs_f64()
}

/// Seconds for the projector (decode, fold, DuckDB: Arrow appends of history rows, one `next_seq`
/// update per batch) to replay the stream into a fresh file; and, not in that time, to close it.
async fn project(
    stream: &async_nats::jetstream::stream::Stream,
    events: u64,
    assets: u64,
) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("bench.duckdb")).unwrap();
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
    (proj_s, t0.elapsed().as_secs_f64())
}
