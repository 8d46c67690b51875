//! Property: for random sequences of discovered/changed/deleted events written to a real
//! `nats-server -js`, `inventory replay --until seq:N` writes exactly the fold of the first N
//! messages (every asset's state, deleted ones included, and the history rows up to N) — the same
//! rows the API's `as_of` serves (query-api/tests/as_of_property.rs checks the API against the
//! same fold).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::collections::BTreeMap;

use inventory_projector::fold::{fold, AssetState};
use inventory_schemas::{decode_summary, AssetStatus};
use inventory_testkit::NatsServer;
use proptest::prelude::*;
use stream::{asset, project, Writer};

#[derive(Debug, Clone)]
enum Op {
    Put { i: usize, name: u8, suspended: bool },
    Delete { i: usize },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..3u8, any::<bool>())
            .prop_map(|(i, name, suspended)| Op::Put { i, name, suspended }),
        2 => (0..4usize).prop_map(|i| Op::Delete { i }),
        1 => Just(Op::Sweep),
    ]
}

/// (key, name, status, version, deleted) of the fold of the first `n` messages.
type Row = (String, String, String, u64, bool);

fn fold_prefix(log: &[Vec<u8>], n: usize) -> Vec<Row> {
    let mut states: BTreeMap<String, AssetState> = BTreeMap::new();
    for (i, payload) in log.iter().take(n).enumerate() {
        let ev = decode_summary(payload).unwrap();
        if let Some(key) = ev.asset_key().map(str::to_owned) {
            let state = fold(states.get(&key), i as u64 + 1, &ev).unwrap();
            states.insert(key, state);
        }
    }
    states
        .into_values()
        .map(|s| (s.key, s.name, s.status, s.version, s.deleted_at.is_some()))
        .collect()
}

fn replayed(db: &std::path::Path) -> (Vec<Row>, Vec<u64>) {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT asset_key, name, status, version, deleted_at IS NOT NULL FROM assets \
             ORDER BY asset_key",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut stmt = conn.prepare("SELECT seq FROM events ORDER BY seq").unwrap();
    let seqs = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (rows, seqs)
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nats = NatsServer::start();
    let log = rt.block_on(async {
        let mut w = Writer::connect(&nats.url()).await;
        let mut seen = [false; 4];
        let mut published = 0u64;
        let mut assets = [
            asset("111111111111", "a"),
            asset("222222222222", "b"),
            project("proj-a", "p"),
            project("proj-b", "q"),
        ];
        for op in &ops {
            match *op {
                Op::Put { i, name, suspended } => {
                    assets[i].name = format!("name-{name}");
                    assets[i].status = if suspended {
                        AssetStatus::Suspended
                    } else {
                        AssetStatus::Active
                    };
                    w.upsert(&assets[i].clone()).await;
                    seen[i] = true;
                    published += 1;
                }
                // A collector only deletes what it has seen.
                Op::Delete { i } if seen[i] => {
                    w.delete(&assets[i].clone()).await;
                    published += 1;
                }
                Op::Delete { .. } => {}
                Op::Sweep => {
                    w.sweep().await;
                    published += 1;
                }
            }
        }
        // The stream as stored, in order.
        let stream = w.js.get_stream("INVENTORY").await.unwrap();
        let mut log = Vec::new();
        for seq in 1..=published {
            log.push(stream.get_raw_message(seq).await.unwrap().payload.to_vec());
        }
        log
    });
    let dir = tempfile::tempdir().unwrap();
    // Every point for short sequences, a few spread out otherwise.
    let n = log.len();
    if n == 0 {
        return;
    }
    let mut points: Vec<usize> = if n <= 6 {
        (1..=n).collect()
    } else {
        vec![1, n / 3, n / 2, n - 1, n]
    };
    points.dedup();
    for at in points {
        let db = dir.path().join(format!("at-{at}.duckdb"));
        let out = common::inventory(&nats.url())
            .args(["replay", "--until", &format!("seq:{at}"), "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "replay --until {at}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (rows, seqs) = replayed(&db);
        assert_eq!(
            rows,
            fold_prefix(&log, at),
            "replay --until {at} of {ops:?}"
        );
        assert_eq!(seqs, (1..=at as u64).collect::<Vec<_>>());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        ..ProptestConfig::default()
    })]

    #[test]
    fn replay_until_equals_the_fold_of_the_prefix(ops in prop::collection::vec(op(), 1..25)) {
        run(ops);
    }
}
