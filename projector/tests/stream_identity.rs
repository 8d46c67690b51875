//! The read model belongs to one stream (DESIGN §5): the stream's identity is recorded with the
//! first committed batch, a sequence gap is an error, the schema version is checked before any
//! DDL, and a stream deleted and created again is refused — at the start and while following —
//! before any of its messages is applied. The store-level tests need no NATS; the others run
//! against a real `nats-server -js`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use inventory_bus::{ensure_stream, publish, stream_state, StreamSettings};
use inventory_projector::identity::payload_sha256;
use inventory_projector::{
    run, Connection, ErrorKind, Incoming, ProjectorError, RunOptions, Status, Store, StoreError,
    StreamIdentity,
};
use inventory_schemas::{
    encode_asset, Asset, AssetStatus, ChainLink, EventType, OutgoingEvent, Provenance,
};
use inventory_testkit::NatsServer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn event(id: u64, name: &str) -> OutgoingEvent {
    let asset = Asset {
        id: format!("{id:012}"),
        provider: "aws".into(),
        kind: "account".into(),
        name: name.into(),
        status: AssetStatus::Active,
        org_path: vec![],
        region_residency: vec![],
        url: None,
        auth_mode: None,
        labels: Default::default(),
        raw: serde_json::json!({ "n": name }),
        provenance: Provenance::default(),
    };
    let at = Utc::now() - chrono::Duration::seconds(1);
    encode_asset(
        EventType::Discovered,
        &asset,
        "/collectors/aws/o-test",
        at,
        &ChainLink::default(),
    )
    .unwrap()
}

fn incoming(seq: u64) -> Incoming {
    let ev = event(seq, &format!("n{seq}"));
    Incoming::decode(seq, ev.subject, Utc::now(), ev.payload.into())
}

fn count(conn: &Connection, sql: &str) -> u64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn events_in(path: &Path) -> Vec<(u64, String)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq, asset_key FROM events ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_gap_is_an_error_and_leaves_the_store_at_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("db.duckdb")).unwrap();
    store.apply(&[incoming(1), incoming(2)]).unwrap();

    // Within one piece.
    let err = store.append(&[incoming(3), incoming(5)]).unwrap_err();
    assert!(
        matches!(err, StoreError::Gap { after: 3, found: 5 }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("events 4 to 4 are missing"),
        "{err}"
    );
    assert_eq!((store.checkpoint(), store.pending()), (2, 0));

    // Across the pieces of one transaction: the whole transaction is abandoned.
    store.append(&[incoming(3)]).unwrap();
    let err = store.append(&[incoming(6), incoming(7)]).unwrap_err();
    assert!(
        matches!(err, StoreError::Gap { after: 3, found: 6 }),
        "{err:?}"
    );
    assert_eq!(ProjectorError::from(err).kind(), ErrorKind::Gap);
    assert_eq!((store.checkpoint(), store.pending()), (2, 0));
    let conn = store.connection().unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM events"), 2);

    // Messages already applied (a resumed consumer) are skipped, not a gap.
    let out = store.apply(&[incoming(2), incoming(3)]).unwrap();
    assert_eq!((out.skipped, out.applied, out.last_seq), (1, 1, 3));
}

#[test]
fn an_empty_store_starts_at_the_first_message_it_gets_then_allows_no_gap() {
    // A stream whose older messages expired (max_age) starts above 1.
    let mut store = Store::open_in_memory().unwrap();
    let created = Utc.timestamp_nanos(1_750_000_000_000_000_001);
    store.bind_stream(created);
    store.apply(&[incoming(7), incoming(8)]).unwrap();
    assert_eq!(store.checkpoint(), 8);
    assert_eq!(store.stream_identity().unwrap().first_seq, 7);
    let err = store.apply(&[incoming(10)]).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Gap {
                after: 8,
                found: 10
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_stream_identity_is_written_with_the_first_commit_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.duckdb");
    let created = Utc.timestamp_nanos(1_750_000_000_123_456_789);
    let first = incoming(1);
    let expected = StreamIdentity {
        created,
        first_seq: 1,
        first_sha256: payload_sha256(&first.payload),
    };
    {
        let mut store = Store::open(&path).unwrap();
        store.bind_stream(created);
        // A first batch rolled back records nothing.
        store.append(&[incoming(1)]).unwrap();
        store.rollback();
        assert_eq!(store.stream_identity(), None);

        store.append(&[first, incoming(2)]).unwrap();
        let reader = store.connection().unwrap();
        let meta = "SELECT count(*) FROM meta WHERE key LIKE 'stream_%'";
        assert_eq!(count(&reader, meta), 0, "visible before the commit");
        store.commit().unwrap();
        assert_eq!(count(&reader, meta), 3);
        assert_eq!(store.stream_identity(), Some(&expected));
        // Binding again changes nothing once recorded.
        store.bind_stream(Utc::now());
        store.apply(&[incoming(3)]).unwrap();
        assert_eq!(count(&reader, meta), 3);
    }
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.stream_identity(), Some(&expected));
    assert_eq!(reopened.checkpoint(), 3);

    // A store fed without a bound stream records none.
    let mut unbound = Store::open_in_memory().unwrap();
    unbound.apply(&[incoming(1)]).unwrap();
    assert_eq!(unbound.stream_identity(), None);
}

#[test]
fn a_file_of_another_schema_version_or_not_a_read_model_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let older = dir.path().join("older.duckdb");
    {
        let conn = Connection::open(&older).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL); \
             INSERT INTO meta VALUES ('schema_version', '4'); \
             CREATE TABLE events (seq UBIGINT NOT NULL, data VARCHAR NOT NULL); \
             INSERT INTO events VALUES (1, '{}');",
        )
        .unwrap();
    }
    let foreign = dir.path().join("foreign.duckdb");
    {
        let conn = Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE orders (id INTEGER); INSERT INTO orders VALUES (1);")
            .unwrap();
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all\n").unwrap();

    for (path, expected) in [
        (&older, "schema version 4, but this build reads version"),
        (&foreign, "not an asset-inventory read model"),
        (&text, "not a valid DuckDB database"),
    ] {
        let before = std::fs::read(path).unwrap();
        let err = Store::open(path).err().unwrap();
        let line = err.to_string();
        assert!(line.contains(expected), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert_eq!(
            std::fs::read(path).unwrap(),
            before,
            "{} changed",
            path.display()
        );
        assert!(!Path::new(&format!("{}.wal", path.display())).exists());
    }
    // The older file still has no table of the current schema.
    let conn = Connection::open(&older).unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('checkpoint', 'sweeps', 'assets')"
        ),
        0
    );
}

async fn setup(
    settings: &StreamSettings,
) -> (
    NatsServer,
    async_nats::jetstream::Context,
    async_nats::jetstream::stream::Stream,
) {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = ensure_stream(&js, settings).await.unwrap();
    (nats, js, stream)
}

/// Publishes events for assets `ids` (named after `tag`); returns the last sequence.
async fn publish_all(
    js: &async_nats::jetstream::Context,
    ids: std::ops::Range<u64>,
    tag: &str,
) -> u64 {
    let mut last = 0;
    for id in ids {
        last = publish(js, &event(id, &format!("{tag}-{id}")))
            .await
            .unwrap();
    }
    last
}

/// Deletes `INVENTORY` and creates it again, as an administrator could.
async fn recreate(js: &async_nats::jetstream::Context) -> async_nats::jetstream::stream::Stream {
    js.delete_stream(inventory_schemas::STREAM_NAME)
        .await
        .unwrap();
    ensure_stream(js, &StreamSettings::default()).await.unwrap()
}

async fn created(stream: &async_nats::jetstream::stream::Stream) -> DateTime<Utc> {
    let mut s = stream.clone();
    stream_state(&mut s).await.unwrap().created
}

async fn project(
    stream: &async_nats::jetstream::stream::Stream,
    path: &Path,
    opts: RunOptions,
) -> Result<Store, ProjectorError> {
    let (tx, _rx) = watch::channel(Status::default());
    run(
        stream.clone(),
        Store::open(path).unwrap(),
        CancellationToken::new(),
        tx,
        opts,
    )
    .await
}

fn until_caught_up() -> RunOptions {
    RunOptions {
        stop_when_caught_up: true,
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn a_recreated_stream_is_refused_at_the_start_and_the_file_is_left_as_it_was() {
    let (_nats, js, stream) = setup(&StreamSettings::default()).await;
    publish_all(&js, 1..4, "old").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.duckdb");
    let store = project(&stream, &path, until_caught_up()).await.unwrap();
    let first = inventory_bus::message_at(&stream, 1)
        .await
        .unwrap()
        .unwrap();
    let old_created = created(&stream).await;
    assert_eq!(
        store.stream_identity(),
        Some(&StreamIdentity {
            created: old_created,
            first_seq: 1,
            first_sha256: payload_sha256(&first.payload),
        })
    );
    drop(store);
    let before = events_in(&path);
    assert_eq!(before.len(), 3);

    let stream = recreate(&js).await;
    publish_all(&js, 11..16, "new").await;
    let new_created = created(&stream).await;
    assert_ne!(new_created, old_created);
    let err = project(&stream, &path, until_caught_up())
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::StreamChanged, "{err}");
    let line = err.to_string();
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    assert!(line.contains(&rfc(old_created)), "{line}");
    assert!(line.contains(&rfc(new_created)), "{line}");
    assert!(line.contains("deleted and created again"), "{line}");
    assert_eq!(events_in(&path), before);
    assert_eq!(Store::open(&path).unwrap().checkpoint(), 3);

    // A new file is built from the new stream.
    let fresh = project(&stream, &dir.path().join("new.duckdb"), until_caught_up())
        .await
        .unwrap();
    assert_eq!(fresh.checkpoint(), 5);
    assert_eq!(fresh.stream_identity().unwrap().created, new_created);
}

/// Follows a stream of 3 events, then recreates it with `new` events; returns the run's error
/// and the status it left.
async fn recreate_while_following(
    new: u64,
    tip_refresh: Duration,
) -> (ProjectorError, Status, Vec<(u64, String)>) {
    let (_nats, js, stream) = setup(&StreamSettings::default()).await;
    publish_all(&js, 1..4, "old").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.duckdb");
    let (tx, mut rx) = watch::channel(Status::default());
    let task = tokio::spawn(run(
        stream.clone(),
        Store::open(&path).unwrap(),
        CancellationToken::new(),
        tx,
        RunOptions {
            tip_refresh,
            ..RunOptions::default()
        },
    ));
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| s.applied_seq == 3))
        .await
        .unwrap()
        .unwrap();
    recreate(&js).await;
    publish_all(&js, 11..11 + new, "new").await;
    let err = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the projector did not notice the recreated stream")
        .unwrap()
        .err()
        .unwrap();
    let status = rx.borrow().clone();
    (err, status, events_in(&path))
}

#[tokio::test]
async fn a_stream_recreated_while_following_is_caught_by_the_new_consumer_before_anything_applies()
{
    // More new events than old: without the check, sequences 4..=6 of the new stream would be
    // applied on top of the old state. The tip refresh is out of the way.
    let (err, status, events) = recreate_while_following(6, Duration::from_secs(3600)).await;
    assert_eq!(err.kind(), ErrorKind::StreamChanged, "{err}");
    assert_eq!(
        status.stream_changed.as_deref(),
        Some(err.to_string().as_str())
    );
    assert_eq!(status.applied_seq, 3);
    let old: Vec<(u64, String)> = (1..4)
        .map(|i| (i, format!("aws/account/{i:012}")))
        .collect();
    assert_eq!(events, old, "only the old stream's events");
}

#[tokio::test]
async fn a_stream_recreated_shorter_is_caught_when_the_tip_is_refreshed() {
    // One new event: the recreated consumer waits for sequence 4, which never comes.
    let (err, status, events) = recreate_while_following(1, Duration::from_millis(100)).await;
    assert_eq!(err.kind(), ErrorKind::StreamChanged, "{err}");
    assert!(status.stream_changed.is_some());
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn retention_starts_an_empty_read_model_late_and_a_lost_range_is_a_gap() {
    let settings = StreamSettings {
        max_age: Duration::from_secs(3),
        ..StreamSettings::default()
    };
    let (_nats, js, stream) = setup(&settings).await;
    publish_all(&js, 1..4, "early").await;
    let dir = tempfile::tempdir().unwrap();
    let behind = dir.path().join("behind.duckdb");
    let store = project(
        &stream,
        &behind,
        RunOptions {
            stop_at: Some(1),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(store.checkpoint(), 1);
    drop(store);

    // Sequences 1..=3 expire.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = stream.clone();
        if stream_state(&mut s).await.unwrap().first_seq > 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "messages never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publish_all(&js, 4..6, "late").await;

    // An empty read model starts at the stream's first sequence.
    let fresh = tokio::time::timeout(
        Duration::from_secs(3),
        project(&stream, &dir.path().join("fresh.duckdb"), until_caught_up()),
    )
    .await
    .expect("sequences 4..=5 expired before the projector read them: a slow machine")
    .unwrap();
    assert_eq!(fresh.checkpoint(), 5);
    assert_eq!(fresh.stream_identity().unwrap().first_seq, 4);

    // The one at sequence 1 would skip 2..=3: an error, not a skip.
    let err = tokio::time::timeout(
        Duration::from_secs(3),
        project(&stream, &behind, until_caught_up()),
    )
    .await
    .expect("sequences 4..=5 expired before the projector read them: a slow machine")
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::Gap, "{err}");
    assert!(
        matches!(
            err,
            ProjectorError::Store(StoreError::Gap { after: 1, found: 4 })
        ),
        "{err:?}"
    );
    assert_eq!(Store::open(&behind).unwrap().checkpoint(), 1);
}
