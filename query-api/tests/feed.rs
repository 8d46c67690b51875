//! The SSE change feed of a real `serve()` over a real `nats-server -js`: resuming with
//! `Last-Event-ID`, heartbeats, and a slow client dropped with an `end` event.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::{serve, SseClient};
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_query_api::FeedSettings;
use inventory_schemas::{encode_asset, encode_sweep, AssetStatus, ChainLink, EventType};
use inventory_testkit::NatsServer;

/// Publishes events for `n` changes spread over `assets` assets, linking each to its asset's
/// previous event; every fifth publish is preceded by a sweep event (not an asset change).
struct Writer {
    js: jetstream::Context,
    links: std::collections::HashMap<String, ChainLink>,
    version: u64,
    asset_seqs: Vec<u64>,
}

impl Writer {
    async fn new(nats: &NatsServer) -> Self {
        let client = inventory_bus::connect(&NatsConfig {
            url: nats.url(),
            ..NatsConfig::default()
        })
        .await
        .unwrap();
        let js = jetstream::new(client);
        inventory_bus::ensure_stream(&js, &StreamSettings::default())
            .await
            .unwrap();
        Self {
            js,
            links: Default::default(),
            version: 0,
            asset_seqs: Vec::new(),
        }
    }

    async fn publish(&mut self, n: u64, assets: u64) {
        for _ in 0..n {
            self.version += 1;
            let v = self.version;
            if v.is_multiple_of(5) {
                let sweep = inventory_schemas::SweepCompleted {
                    collector: "aws".into(),
                    provider: "aws".into(),
                    scope: "o-1".into(),
                    status: inventory_schemas::SweepStatus::Ok,
                    started_at: chrono::Utc::now(),
                    finished_at: chrono::Utc::now(),
                    duration_ms: 1,
                    counts: Default::default(),
                    error: None,
                    provenance: Default::default(),
                };
                let ev = encode_sweep(&sweep, "/collectors/aws/o-1").unwrap();
                inventory_bus::publish(&self.js, &ev).await.unwrap();
            }
            let mut a = common::asset(
                "aws",
                "account",
                &format!("{:012}", v % assets),
                "acct",
                AssetStatus::Active,
            );
            a.name = format!("acct-v{v}");
            let key = a.key().unwrap().to_string();
            let link = self.links.get(&key).cloned().unwrap_or_default();
            let ty = if link.prevseq == 0 {
                EventType::Discovered
            } else {
                EventType::Changed
            };
            let ev =
                encode_asset(ty, &a, "/collectors/aws/o-1", chrono::Utc::now(), &link).unwrap();
            let seq = inventory_bus::publish(&self.js, &ev).await.unwrap();
            self.links.insert(
                key,
                ChainLink {
                    prevseq: seq,
                    chainhash: ev.chainhash.clone().unwrap(),
                },
            );
            self.asset_seqs.push(seq);
        }
    }
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_what_it_missed() {
    let nats = NatsServer::start();
    let mut w = Writer::new(&nats).await;
    w.publish(12, 5).await;
    let (addr, cancel, _dir) = serve(
        &nats,
        FeedSettings {
            heartbeat: Duration::from_millis(300),
            ..FeedSettings::default()
        },
    )
    .await;

    // From the start of the stream: read 7 changes, then drop the connection.
    let mut c = SseClient::connect(&addr, "/api/v1/changes/stream?since=seq:0", None, None).await;
    let first = c.changes(7, Duration::from_secs(10)).await;
    let ids: Vec<u64> = first.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, w.asset_seqs[..7]);
    for e in &first {
        assert_eq!(
            e.data["seq"].as_u64(),
            e.id,
            "the id is the event's stream sequence"
        );
        assert_eq!(
            e.data["key"].as_str().unwrap().split('/').next(),
            Some("aws")
        );
    }
    drop(c);

    // Missed while away: the 5 not read yet and 9 published meanwhile.
    w.publish(9, 5).await;
    let last = *ids.last().unwrap();
    let mut c = SseClient::connect(&addr, "/api/v1/changes/stream", Some(last), None).await;
    let resumed = c.changes(14, Duration::from_secs(15)).await;
    let ids: Vec<u64> = resumed.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(
        ids,
        w.asset_seqs[7..],
        "exactly the missed changes, in order"
    );

    // Live: a new change arrives; while idle, heartbeats keep the connection busy.
    w.publish(1, 5).await;
    let live = c.changes(1, Duration::from_secs(10)).await;
    assert_eq!(live[0].id, w.asset_seqs.last().copied());
    let started = Instant::now();
    let beat = tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(beat.event, ":", "{beat:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Filters: only type=discovered (the first 5 changes).
    let mut c = SseClient::connect(
        &addr,
        "/api/v1/changes/stream?since=seq:0&type=discovered",
        None,
        None,
    )
    .await;
    let discovered = c.changes(5, Duration::from_secs(10)).await;
    assert!(discovered.iter().all(|e| e.data["type"] == "discovered"));
    let next = tokio::time::timeout(Duration::from_secs(1), c.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.event, ":", "no other change matches: {next:?}");

    // Shutting down ends the feed with an `end` event naming the last id sent.
    cancel.cancel();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next().await {
                Some(e) if e.event == "end" => return Some(e),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .unwrap()
    .expect("an end event before the stream closes");
    assert_eq!(
        end.data["last_event_id"].as_u64(),
        discovered.last().unwrap().id
    );
    assert!(end.data["reason"]
        .as_str()
        .unwrap()
        .contains("shutting down"));
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_with_an_end_event() {
    let nats = NatsServer::start();
    let mut w = Writer::new(&nats).await;
    w.publish(8000, 1000).await;
    let (addr, cancel, _dir) = serve(
        &nats,
        FeedSettings {
            heartbeat: Duration::from_secs(5),
            slow_after: Duration::from_millis(500),
            buffer: 8,
        },
    )
    .await;
    let mut slow = SseClient::connect(
        &addr,
        "/api/v1/changes/stream?since=seq:0",
        None,
        Some(4096),
    )
    .await;
    // Read nothing for a while: the buffers fill and the server gives up on this client.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Meanwhile, another client and the rest of the API are served normally.
    let mut other =
        SseClient::connect(&addr, "/api/v1/changes/stream?since=seq:0", None, None).await;
    assert_eq!(
        other.changes(8000, Duration::from_secs(90)).await.len(),
        8000
    );

    let mut got = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match slow.next().await {
                Some(e) if e.event == "change" => got.push(e.id.unwrap()),
                Some(e) if e.event == "end" => return e,
                Some(_) => {}
                None => panic!("closed without an end event after {} changes", got.len()),
            }
        }
    })
    .await
    .unwrap();
    assert!(got.len() < 8000, "the slow client was not dropped");
    assert_eq!(
        got,
        w.asset_seqs[..got.len()],
        "what it got is a gap-free prefix"
    );
    assert_eq!(end.data["last_event_id"].as_u64(), got.last().copied());
    assert!(
        end.data["reason"].as_str().unwrap().contains("too slowly"),
        "{:?}",
        end.data
    );
    assert!(slow.next().await.is_none(), "the stream closes after end");
    // It resumes where it was dropped.
    let mut again =
        SseClient::connect(&addr, "/api/v1/changes/stream", got.last().copied(), None).await;
    let rest = again
        .changes(8000 - got.len(), Duration::from_secs(90))
        .await;
    assert_eq!(rest.first().unwrap().id, Some(w.asset_seqs[got.len()]));
    cancel.cancel();
}
