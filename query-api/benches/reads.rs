//! `make bench-reads`: latency of the history reads over a large read model (issue 4: a filtered
//! `as_of` page and a `diff` between two dates answer in ≤ 150 ms at p99).
//!
//! Builds a read model of `BENCH_EVENTS` events (default 1,000,000: 100,000 AWS accounts × 10
//! versions, 5 % of them deleted in their last version) by applying real encoded events through
//! the projector's store (as recorded over ~11.5 days, one event a second), then times requests
//! through the whole HTTP stack (poem's test client: routing, parameters, queries, JSON) —
//! `BENCH_REQUESTS` (default 200) of each kind, each with a different point, filter or cursor.
//! Prints p50/p95/p99/max per kind.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use inventory_projector::{Incoming, ReadPool, Status, Store};
use inventory_query_api::{AppState, TokenSet};
use inventory_schemas::{encode_asset, encode_tombstone, ChainLink, EventType, Tombstone};
use inventory_testkit::corpus::account;
use poem::test::TestClient;
use tokio::sync::watch;

#[global_allocator]
static GLOBAL: inventory_allocator::MiMalloc = inventory_allocator::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what:<58} n={:<4} p50 {:>7.1} ms  p95 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.95),
        percentile(&times, 0.99),
        percentile(&times, 1.0),
    );
}

fn build(dir: &std::path::Path, events: u64, assets: u64) -> (Store, DateTime<Utc>) {
    let base = Utc.timestamp_opt(1_760_000_000, 0).unwrap();
    let mut store = Store::open(&dir.join("reads.duckdb")).unwrap();
    store.set_bulk(true).unwrap();
    let mut links = vec![ChainLink::default(); assets as usize];
    let versions = events.div_ceil(assets);
    let mut chunk = Vec::with_capacity(1024);
    let started = Instant::now();
    for n in 0..events {
        let (i, v) = (n % assets, n / assets);
        let at = base + chrono::Duration::seconds(n as i64);
        let a = account(i, v);
        let ev = if v + 1 == versions && i.is_multiple_of(20) {
            let t = Tombstone {
                id: a.id.clone(),
                provider: a.provider.clone(),
                kind: a.kind.clone(),
                name: a.name.clone(),
                reason: "absent from a complete sweep".into(),
                last_contenthash: String::new(),
                provenance: a.provenance.clone(),
            };
            encode_tombstone(&t, "/collectors/aws/o-exampleorgid", at, &links[i as usize])
        } else {
            let ty = if v == 0 {
                EventType::Discovered
            } else {
                EventType::Changed
            };
            encode_asset(
                ty,
                &a,
                "/collectors/aws/o-exampleorgid",
                at,
                &links[i as usize],
            )
        }
        .unwrap();
        links[i as usize] = ChainLink {
            prevseq: n + 1,
            chainhash: ev.chainhash.clone().unwrap(),
        };
        chunk.push(Incoming::decode(
            n + 1,
            ev.subject,
            at,
            Bytes::from(ev.payload),
        ));
        if chunk.len() == 1024 {
            store.append(&chunk).unwrap();
            chunk.clear();
        }
        if (n + 1).is_multiple_of(2 * 122_880) {
            store.append(&chunk).unwrap();
            chunk.clear();
            store.commit().unwrap();
        }
    }
    store.append(&chunk).unwrap();
    store.commit().unwrap();
    store.set_bulk(false).unwrap();
    println!(
        "setup: read model of {events} events for {assets} assets built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (store, base)
}

async fn time_get<E: poem::Endpoint>(client: &TestClient<E>, url: &str) -> Duration {
    let t = Instant::now();
    let resp = client.get(url).send().await;
    let status = resp.0.status();
    let body = resp.0.into_body().into_bytes().await.unwrap();
    let took = t.elapsed();
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    took
}

#[tokio::main]
async fn main() {
    inventory_allocator::configure();
    let events = env("BENCH_EVENTS", 1_000_000);
    let assets = env("BENCH_ASSETS", 100_000).min(events).max(1);
    let requests = env("BENCH_REQUESTS", 200);
    let dir = tempfile::tempdir().unwrap();
    let (store, base) = build(dir.path(), events, assets);
    let pool = ReadPool::new(&store).unwrap();
    let (_tx, rx) = watch::channel(Status {
        caught_up: true,
        applied_seq: events,
        ..Status::default()
    });
    let client = TestClient::new(inventory_query_api::app(AppState::new(
        pool,
        rx,
        TokenSet::default(),
    )));
    let time_at = |fraction: f64| {
        let t = base + chrono::Duration::seconds((events as f64 * fraction) as i64);
        t.to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    // Warm-up: the first query of each kind loads the database pages.
    time_get(&client, &format!("/api/v1/assets?as_of={}", time_at(0.5))).await;

    let names = ["payments", "search", "ml", "edge"];
    let mut as_of = Vec::new();
    for r in 0..requests {
        let url = format!(
            "/api/v1/assets?provider=aws&kind=account&status=active&name={}&limit=100&as_of={}",
            names[(r % 4) as usize],
            time_at(0.1 + 0.8 * (r as f64 / requests as f64))
        );
        as_of.push(time_get(&client, &url).await);
    }
    report(
        "as_of page (date, provider+kind+status+name, 100 items)",
        as_of,
    );

    let mut paged = Vec::new();
    for r in 0..requests {
        let after = format!("aws/account/{:012}", 100_000_000_000 + (r * 997) % assets);
        let url = format!(
            "/api/v1/assets?provider=aws&limit=100&as_of=seq:{}&cursor={}",
            events / 2 + r,
            inventory_query_api::cursor::encode(&after)
        );
        paged.push(time_get(&client, &url).await);
    }
    report("as_of page (seq, provider, deep cursor, 100 items)", paged);

    let mut diffs = Vec::new();
    for r in 0..requests {
        let from = time_at(0.05 + 0.4 * (r as f64 / requests as f64));
        let to = time_at(0.55 + 0.4 * (r as f64 / requests as f64));
        let url = format!("/api/v1/diff?from={from}&to={to}&limit=100");
        diffs.push(time_get(&client, &url).await);
    }
    report(
        "diff between two dates (whole estate, totals + 100 items)",
        diffs,
    );
    // The same diffs' read-model half alone (no HTTP, no JSON): what the answer costs to find.
    let mut found = Vec::new();
    for r in 0..requests {
        let span = events as f64 * 0.4 * (r as f64 / requests as f64);
        let (from, to) = (
            (events as f64 * 0.05 + span) as u64,
            (events as f64 * 0.55 + span) as u64,
        );
        let q = inventory_projector::read::AssetQuery {
            limit: 101,
            ..Default::default()
        };
        let t = Instant::now();
        let snap = store.live().load();
        let (rows, _) = inventory_projector::history::diff(&snap, &q, from, to).unwrap();
        found.push(t.elapsed());
        assert!(!rows.is_empty());
    }
    report(
        "diff (read model only: totals + 101 rows, no HTTP/JSON)",
        found,
    );

    let mut history = Vec::new();
    for r in 0..requests {
        let key = format!("aws/account/{:012}", 100_000_000_000 + (r * 7919) % assets);
        history.push(time_get(&client, &format!("/api/v1/assets/{key}/history")).await);
    }
    report("history of one asset (all its versions)", history);

    let mut changes = Vec::new();
    for r in 0..requests {
        let url = format!(
            "/api/v1/changes?since=seq:{}&type=deleted&limit=100",
            (events * r) / requests / 2
        );
        changes.push(time_get(&client, &url).await);
    }
    report("changes window (type filter, 100 items)", changes);

    let mut current = Vec::new();
    for r in 0..requests {
        let url = format!(
            "/api/v1/assets?provider=aws&name={}&limit=100",
            names[(r % 4) as usize]
        );
        current.push(time_get(&client, &url).await);
    }
    report(
        "current view page (baseline: provider+name, 100 items)",
        current,
    );
}
