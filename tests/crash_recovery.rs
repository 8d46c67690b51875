//! Killing the API (SIGKILL) in the middle of ingesting the stream and starting it again gives a
//! read model identical to one built from scratch: no duplicate, no missing event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use inventory_bus::{ensure_stream, finish, publish_start, StreamSettings};
use inventory_schemas::{
    encode_asset, encode_tombstone, Asset, AssetStatus, ChainLink, EventType, Provenance, Tombstone,
};
use inventory_testkit::{free_port, NatsServer};

const ASSETS: u64 = 5_000;
const EVENTS: u64 = 120_000;

fn asset(i: u64, v: u64) -> Asset {
    Asset {
        id: format!("{:012}", 200_000_000_000 + i),
        provider: ["aws", "gcp", "azure"][(i % 3) as usize].into(),
        kind: ["account", "project", "subscription"][(i % 3) as usize].into(),
        name: format!("asset-{i}-v{v}"),
        status: AssetStatus::Active,
        org_path: vec!["root".into(), format!("ou-{}", i % 7)],
        region_residency: vec![],
        url: None,
        auth_mode: None,
        labels: [("v".to_owned(), v.to_string())].into(),
        raw: serde_json::json!({"padding": "x".repeat(300), "i": i}),
        provenance: Provenance::default(),
    }
}

/// Publishes EVENTS events over ASSETS assets (every 10th version of some assets a tombstone),
/// plus one malformed message, and returns the stream's last sequence.
async fn fill(nats_url: &str) -> u64 {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let mut links = vec![ChainLink::default(); ASSETS as usize];
    let mut pending = VecDeque::new();
    let base = Utc.timestamp_opt(1_750_000_000, 0).unwrap();
    let mut seq = 0;
    for n in 0..EVENTS {
        let (i, v) = (n % ASSETS, n / ASSETS);
        let at = base + chrono::Duration::seconds(n as i64);
        let link = &links[i as usize];
        let ev = if v % 10 == 9 && i.is_multiple_of(4) {
            let a = asset(i, v);
            let t = Tombstone {
                id: a.id,
                provider: a.provider,
                kind: a.kind,
                name: a.name,
                reason: "test".into(),
                last_contenthash: String::new(),
                provenance: Provenance::default(),
            };
            encode_tombstone(&t, "/file/test", at, link).unwrap()
        } else {
            let ty = if v == 0 || (v.is_multiple_of(10) && i.is_multiple_of(4)) {
                EventType::Discovered
            } else {
                EventType::Changed
            };
            encode_asset(ty, &asset(i, v), "/file/test", at, link).unwrap()
        };
        seq += 1;
        links[i as usize] = ChainLink {
            prevseq: seq,
            chainhash: ev.chainhash.clone().unwrap(),
        };
        pending.push_back((publish_start(&js, &ev).await.unwrap(), ev));
        if pending.len() >= 2048 {
            let (ack, ev) = pending.pop_front().unwrap();
            finish(ack, &ev).await.unwrap();
        }
        if n == EVENTS / 2 {
            for (ack, ev) in pending.drain(..) {
                finish(ack, &ev).await.unwrap();
            }
            js.publish(
                "inventory.asset.aws.account.broken",
                "{\"not\": \"a cloudevent\"}".into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
            seq += 1;
        }
    }
    for (ack, ev) in pending {
        finish(ack, &ev).await.unwrap();
    }
    seq
}

/// A child process killed (SIGKILL) when dropped, so that a failing assertion leaves no
/// `inventory serve` running.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `inventory serve` committing small batches, so that progress (and a kill) lands mid-ingest.
fn serve_in_small_batches(nats_url: &str, db: &std::path::Path, port: u16) -> Serve {
    let child = common::inventory(nats_url)
        .env("INVENTORY_PROJECTOR_BATCH", "2000")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn inventory serve");
    Serve(child)
}

async fn applied_seq(port: u16) -> Option<u64> {
    let (_, body) = common::get(&format!("http://127.0.0.1:{port}/metrics")).await?;
    common::metric(&body, "inventory_projector_applied_seq").map(|v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_ingest_then_restart_equals_a_fresh_build() {
    let nats = NatsServer::start();
    let last = fill(&nats.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("api.duckdb");

    // Kill twice while the projector is part-way through.
    let mut kills = Vec::new();
    for target in [last / 4, last / 2] {
        let port = free_port();
        let mut child = serve_in_small_batches(&nats.url(), &db, port);
        let at = common::wait_for(Duration::from_secs(120), "ingest progress", || async {
            applied_seq(port).await.filter(|&s| s > target)
        })
        .await;
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        assert!(
            at < last,
            "the kill must land mid-ingest (applied {at} of {last})"
        );
        kills.push(at);
    }

    // Restart and let it catch up; then stop it cleanly to release the file.
    let port = free_port();
    let mut child = serve_in_small_batches(&nats.url(), &db, port);
    common::wait_for(
        Duration::from_secs(180),
        "catch-up after restart",
        || async {
            let ready = common::get(&format!("http://127.0.0.1:{port}/readyz"))
                .await
                .is_some_and(|(s, _)| s == 200);
            (ready && applied_seq(port).await == Some(last)).then_some(())
        },
    )
    .await;
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status();
    child.0.wait().unwrap();

    // A fresh projection of the same stream.
    let fresh = dir.path().join("fresh.duckdb");
    let (code, err) = common::run(&nats.url(), &["project", "--db", fresh.to_str().unwrap()]);
    assert_eq!(code, 0, "inventory project failed: {err}");

    let recovered = common::dump_read_model(&db);
    let rebuilt = common::dump_read_model(&fresh);
    assert_eq!(
        recovered.iter().filter(|r| r.starts_with('{')).count(),
        rebuilt.iter().filter(|r| r.starts_with('{')).count()
    );
    assert!(
        recovered == rebuilt,
        "read models differ after kills at {kills:?}"
    );
    let conn = duckdb::Connection::open(&db).unwrap();
    let (events, distinct, rejected): (u64, u64, u64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT seq), (SELECT count(*) FROM rejected) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((events, distinct, rejected), (last - 1, last - 1, 1));
}
