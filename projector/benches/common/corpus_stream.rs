//! Shared by the benchmarks that need a large real stream (`projector/benches/replay.rs`,
//! `benches/evidence.rs`, `benches/http.rs`): publishes the realistic corpus with real chain links, and measures a
//! raw ordered consume of it (the baseline every stream reader is compared with).
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use inventory_bus::{finish, publish_start};
use inventory_schemas::{encode_asset, ChainLink, EventType, STREAM_SUBJECTS};
use inventory_testkit::corpus::account;

/// Publishes `events` events for `assets` AWS accounts (asset i's v-th version is event
/// v*assets + i; sequences are contiguous from 1, so each event's prevseq is known before it is
/// published), 4,096 in flight. Returns the payload bytes published.
pub async fn publish_corpus(js: &async_nats::jetstream::Context, events: u64, assets: u64) -> u64 {
    publish_corpus_links(js, events, assets).await.0
}

/// [`publish_corpus`], also returning each asset's last chain link (index i: asset i), so that a
/// caller can publish further versions (`account(i, v)` with v beyond the corpus) that extend
/// the chains (`benches/http.rs` ingests while it measures the API).
pub async fn publish_corpus_links(
    js: &async_nats::jetstream::Context,
    events: u64,
    assets: u64,
) -> (u64, Vec<ChainLink>) {
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
        pending.push_back((publish_start(js, &ev).await.unwrap(), ev));
        if pending.len() >= 4096 {
            let (ack, ev) = pending.pop_front().unwrap();
            finish(ack, &ev).await.unwrap();
        }
    }
    for (ack, ev) in pending {
        finish(ack, &ev).await.unwrap();
    }
    (bytes, links)
}

/// Seconds to read every message of the stream with the ordered consumer the projector uses.
pub async fn raw_consume(stream: &async_nats::jetstream::stream::Stream, events: u64) -> f64 {
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

/// The median of some rates.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
