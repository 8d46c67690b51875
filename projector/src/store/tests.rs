#![allow(clippy::unwrap_used)]
use super::*;
use chrono::TimeZone;
use inventory_schemas::{
    encode_asset, encode_tombstone, Asset, AssetStatus, ChainLink, EventType, Provenance, Tombstone,
};

fn asset(id: &str, name: &str) -> Asset {
    Asset {
        id: id.into(),
        provider: "aws".into(),
        kind: "account".into(),
        name: name.into(),
        status: AssetStatus::Active,
        org_path: vec![],
        region_residency: vec![],
        url: None,
        auth_mode: None,
        labels: Default::default(),
        raw: serde_json::json!({"n": name}),
        provenance: Provenance::default(),
    }
}

fn incoming(seq: u64, subject: &str, payload: Vec<u8>) -> Incoming {
    let at = Utc.timestamp_opt(1_700_000_000 + seq as i64, 0).unwrap();
    Incoming::decode(seq, subject.into(), at, payload.into())
}

fn upsert(seq: u64, id: &str, name: &str) -> Incoming {
    let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let ev = encode_asset(
        EventType::Changed,
        &asset(id, name),
        "/file/t",
        at,
        &ChainLink::default(),
    )
    .unwrap();
    incoming(seq, &ev.subject, ev.payload)
}

fn tombstone(seq: u64, id: &str) -> Incoming {
    let t = Tombstone {
        id: id.into(),
        provider: "aws".into(),
        kind: "account".into(),
        name: "x".into(),
        reason: "gone".into(),
        last_contenthash: String::new(),
        provenance: Provenance::default(),
    };
    let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    let ev = encode_tombstone(&t, "/file/t", at, &ChainLink::default()).unwrap();
    incoming(seq, &ev.subject, ev.payload)
}

fn data_of(store: &Store, key: &str) -> serde_json::Value {
    let row = store.snapshot().get(key).unwrap();
    row.data.map_or(serde_json::Value::Null, |d| {
        serde_json::from_str(&d).unwrap()
    })
}

#[test]
fn a_batch_appended_in_pieces_commits_once_and_a_rollback_leaves_nothing() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .append(&[upsert(1, "1", "a"), upsert(2, "2", "b")])
        .unwrap();
    store
        .append(&[
            upsert(3, "1", "a2"),
            incoming(4, "inventory.asset.aws.account.1", b"garbage".to_vec()),
        ])
        .unwrap();
    assert_eq!((store.pending(), store.checkpoint()), (4, 0));
    let out = store.commit().unwrap();
    assert_eq!((out.applied, out.rejected, out.last_seq), (3, 1, 4));
    assert_eq!(store.checkpoint(), 4);
    assert_eq!(data_of(&store, "aws/account/1")["name"], "a2");

    // Not committed: gone on rollback, in DuckDB and in the folded states.
    store
        .append(&[upsert(5, "1", "lost"), upsert(6, "3", "c")])
        .unwrap();
    store.rollback();
    assert_eq!((store.pending(), store.checkpoint()), (0, 4));
    let out = store.apply(&[upsert(5, "1", "kept")]).unwrap();
    assert_eq!(out.last_seq, 5);
    assert_eq!(data_of(&store, "aws/account/1")["name"], "kept");
    assert!(store.snapshot().get("aws/account/3").is_none());
    let conn = store.connection().unwrap();
    let events: u64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 4);
}

#[test]
fn messages_not_valid_for_their_subject_are_rejected_with_their_reason_and_never_applied() {
    let mut store = Store::open_in_memory().unwrap();
    store.apply(&[upsert(1, "1", "a")]).unwrap();
    // A valid event of asset 1, stored on asset 2's subject; a tombstone of asset 1 stored on
    // a Prometheus endpoint's subject.
    let forged = upsert(2, "1", "owned");
    let cross = incoming(2, "inventory.asset.aws.account.2", forged.payload.to_vec());
    let tomb = tombstone(3, "1");
    let cross_tomb = incoming(
        3,
        "inventory.asset.prometheus.endpoint.forged",
        tomb.payload.to_vec(),
    );
    let out = store.apply(&[cross, cross_tomb]).unwrap();
    assert_eq!((out.applied, out.rejected, out.last_seq), (0, 2, 3));
    let a = store.snapshot().get("aws/account/1").unwrap().state;
    assert_eq!((a.name.as_str(), a.deleted_at, a.version), ("a", None, 1));
    assert!(store.snapshot().get("aws/account/2").is_none());
    let conn = store.connection().unwrap();
    let rejected = crate::read::list_rejected(&conn, 0, 10, None).unwrap();
    assert_eq!(rejected.len(), 2);
    assert!(rejected
        .iter()
        .all(|r| r.reason_code == "subject_mismatch" && r.reason.contains("aws/account/1")));
    assert_eq!(
        crate::read::rejected_by_reason(&conn).unwrap(),
        [("subject_mismatch".to_owned(), 2)]
    );
    assert_eq!(
        crate::read::list_rejected(&conn, 2, 10, Some("subject_mismatch"))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_version_log_is_cut_to_the_last_commit_and_written_again_when_it_is_not_this_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.duckdb");
    let log = log_path(&path);
    let past = |store: &Store| {
        let snap = store.live().load();
        let row = crate::history::get_asset_at(&snap, "aws/account/1", 2).unwrap();
        let data = row.unwrap().data.unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&data).unwrap()["name"],
            "b"
        );
        let gone = crate::history::get_asset_at(&snap, "aws/account/1", 3).unwrap();
        assert!(gone.unwrap().state.deleted_at.is_some());
    };
    let end = {
        let mut store = Store::open(&path).unwrap();
        store
            .apply(&[upsert(1, "1", "a"), upsert(2, "1", "b")])
            .unwrap();
        store.apply(&[tombstone(3, "1")]).unwrap();
        past(&store);
        let end = std::fs::metadata(&log).unwrap().len();
        // A batch that never commits leaves nothing in the log (its records are written on
        // the log's own thread, maybe not yet: the rollback waits for them, then cuts).
        store.append(&[upsert(4, "2", "lost")]).unwrap();
        store.rollback();
        assert_eq!(std::fs::metadata(&log).unwrap().len(), end);
        end
    };
    // A crash after the records of an uncommitted batch were written: cut off on open.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"records of a batch that never committed");
    std::fs::write(&log, &bytes).unwrap();
    past(&Store::open(&path).unwrap());
    assert_eq!(std::fs::metadata(&log).unwrap().len(), end);
    // Another database's log, a cut one, or none: written again from `events`.
    for broken in [vec![7u8; end as usize], bytes[..10].to_vec(), Vec::new()] {
        std::fs::write(&log, broken).unwrap();
        past(&Store::open(&path).unwrap());
        assert_eq!(std::fs::read(&log).unwrap(), bytes[..end as usize]);
    }
    std::fs::remove_file(&log).unwrap();
    past(&Store::open(&path).unwrap());
    // The log moves and goes with the database.
    let moved = dir.path().join("n.duckdb");
    move_files(&path, &moved).unwrap();
    assert!(!log.exists());
    past(&Store::open(&moved).unwrap());
    remove_files(&moved).unwrap();
    assert!(!log_path(&moved).exists());
}

#[test]
fn a_tombstone_keeps_the_last_known_data_within_and_across_batches() {
    let mut store = Store::open_in_memory().unwrap();
    store
        .apply(&[upsert(1, "1", "a"), tombstone(2, "1"), tombstone(3, "9")])
        .unwrap();
    store.apply(&[upsert(4, "2", "b")]).unwrap();
    store.apply(&[tombstone(5, "2")]).unwrap();
    assert_eq!(data_of(&store, "aws/account/1")["name"], "a");
    assert_eq!(data_of(&store, "aws/account/2")["name"], "b");
    assert_eq!(data_of(&store, "aws/account/9"), serde_json::Value::Null);
    // States survive a reopen (data_seq is stored).
    let conn = store.connection().unwrap();
    let reopened = Store::init(conn, None).unwrap();
    assert_eq!(reopened.assets["aws/account/2"].state.data_seq, Some(4));
    assert_eq!(reopened.assets, store.assets);
    assert_eq!(reopened.sweeps, store.sweeps);
}

/// How `events.data` is compressed in the database at `path`, once checkpointed.
fn data_compression(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CHECKPOINT").unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT compression FROM pragma_storage_info('events') \
             WHERE column_name = 'data' AND segment_type = 'VARCHAR' ORDER BY 1",
        )
        .unwrap();
    let found = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    found
}

#[test]
fn documents_are_stored_with_zstd_and_a_file_of_the_older_format_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.duckdb");
    let mut store = Store::open(&new).unwrap();
    store
        .apply(&[
            upsert(1, "1", "a"),
            upsert(2, "2", "b"),
            upsert(3, "1", "c"),
        ])
        .unwrap();
    drop(store);
    assert_eq!(data_compression(&new), ["ZSTD"]);

    // A database created before the format changed (DuckDB's default format, documents
    // declared FSST): it opens, grows and keeps its own format.
    let old = dir.path().join("old.duckdb");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(&SCHEMA.replace(
            "data         VARCHAR   NOT NULL USING COMPRESSION zstd",
            "data         VARCHAR   NOT NULL USING COMPRESSION fsst",
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO meta VALUES ('schema_version', ?)",
            [SCHEMA_VERSION.to_string()],
        )
        .unwrap();
    }
    let mut store = Store::open(&old).unwrap();
    store
        .apply(&[upsert(1, "1", "a"), upsert(2, "2", "b")])
        .unwrap();
    drop(store);
    let mut store = Store::open(&old).unwrap();
    assert_eq!(store.checkpoint(), 2);
    store.apply(&[upsert(3, "1", "c")]).unwrap();
    assert_eq!(data_of(&store, "aws/account/1")["name"], "c");
    drop(store);
    assert_eq!(data_compression(&old), ["FSST"]);
}
