//! `inventory project` refuses a database built from another stream — here `INVENTORY` deleted
//! and created again — with one line naming the file, both streams and the way out, and leaves
//! the file as it was; `inventory replay` always writes a new file, bound to the current stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ops::Range;

use chrono::{DateTime, SecondsFormat, Utc};
use inventory_bus::{ensure_stream, publish, stream_state, StreamSettings};
use inventory_schemas::{
    encode_asset, Asset, AssetStatus, ChainLink, EventType, Provenance, STREAM_NAME,
};
use inventory_testkit::NatsServer;

async fn publish_all(js: &async_nats::jetstream::Context, ids: Range<u64>, tag: &str) {
    for id in ids {
        let asset = Asset {
            id: format!("{id:012}"),
            provider: "aws".into(),
            kind: "account".into(),
            name: format!("{tag}-{id}"),
            status: AssetStatus::Active,
            org_path: vec![],
            region_residency: vec![],
            url: None,
            auth_mode: None,
            labels: Default::default(),
            raw: serde_json::json!({ "id": id }),
            provenance: Provenance::default(),
        };
        let ev = encode_asset(
            EventType::Discovered,
            &asset,
            "/collectors/aws/o-1",
            Utc::now(),
            &ChainLink::default(),
        )
        .unwrap();
        publish(js, &ev).await.unwrap();
    }
}

async fn created(js: &async_nats::jetstream::Context) -> DateTime<Utc> {
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    stream_state(&mut stream).await.unwrap().created
}

#[tokio::test]
async fn project_refuses_a_database_of_a_recreated_stream_in_one_line() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    publish_all(&js, 1..4, "old").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("analyst.duckdb");
    let db_arg = db.to_str().unwrap();
    let (code, stderr) = common::run(&nats.url(), &["project", "--db", db_arg]);
    assert_eq!(code, 0, "{stderr}");
    let old_created = created(&js).await;
    let before = std::fs::read(&db).unwrap();

    js.delete_stream(STREAM_NAME).await.unwrap();
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    publish_all(&js, 11..16, "new").await;
    let new_created = created(&js).await;

    let (code, stderr) = common::run(&nats.url(), &["project", "--db", db_arg]);
    assert_ne!(code, 0, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    for part in [
        format!("error: {db_arg} belongs to another stream"),
        format!(
            "built from stream {STREAM_NAME} created {}",
            rfc(old_created)
        ),
        format!(
            "the stream is now {STREAM_NAME} created {}",
            rfc(new_created)
        ),
        format!("Delete {db_arg} (or pass another --db)"),
    ] {
        assert!(line.contains(&part), "{part:?} missing from: {line}");
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "the refused file changed"
    );

    // The way out works: a new file is built from the current stream.
    let fresh = dir.path().join("fresh.duckdb");
    let (code, stderr) = common::run(&nats.url(), &["project", "--db", fresh.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        common::dump_read_model(&fresh)
            .iter()
            .filter(|r| r.contains("new-"))
            .count(),
        5 * 2,
        "the 5 new events and assets"
    );

    // A replay writes a new file of the current stream, which `project` then accepts.
    let replayed = dir.path().join("replay.duckdb");
    let replayed_arg = replayed.to_str().unwrap();
    let (code, stderr) = common::run(
        &nats.url(),
        &["replay", "--until", "seq:3", "--db", replayed_arg],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = common::run(&nats.url(), &["project", "--db", replayed_arg]);
    assert_eq!(code, 0, "{stderr}");
}
