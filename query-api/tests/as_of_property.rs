//! Property: for random sequences of discovered/changed/deleted events (and undecodable
//! messages), the API's `as_of=seq:N` view at every N equals the pure fold of the stream's first N
//! messages — the listing and every single-asset read.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{asset, json, Fixture};
use inventory_projector::fold::{fold, AssetState};
use inventory_schemas::{decode_summary, AssetStatus};
use proptest::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone)]
enum Op {
    /// Observe asset `i` with name variant `name`, status variant `status`.
    Put {
        i: usize,
        name: u8,
        status: u8,
    },
    Delete {
        i: usize,
    },
    Garbage,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..5usize, 0..3u8, 0..3u8).prop_map(|(i, name, status)| Op::Put { i, name, status }),
        2 => (0..5usize).prop_map(|i| Op::Delete { i }),
        1 => Just(Op::Garbage),
    ]
}

const IDS: [(&str, &str, &str); 5] = [
    ("aws", "account", "111111111111"),
    ("aws", "account", "222222222222"),
    ("gcp", "project", "proj-a"),
    ("azure", "subscription", "0000-aaaa"),
    ("prometheus", "endpoint", "prom/with/slashes"),
];

/// The expected view at every prefix: the pure fold of the messages, with each live asset's
/// data (the newest asset document folded).
fn folded_prefixes(log: &[Vec<u8>]) -> Vec<BTreeMap<String, (AssetState, Value)>> {
    let mut states: BTreeMap<String, (AssetState, Value)> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, payload) in log.iter().enumerate() {
        let seq = i as u64 + 1;
        if let Ok(ev) = decode_summary(payload) {
            if let Some(key) = ev.asset_key().map(str::to_owned) {
                let prev = states.get(&key).map(|(s, _)| s);
                let state = fold(prev, seq, &ev).unwrap();
                let data = if state.data_seq == Some(seq) {
                    serde_json::from_str(ev.data_text(payload)).unwrap()
                } else {
                    states
                        .get(&key)
                        .map(|(_, d)| d.clone())
                        .unwrap_or(Value::Null)
                };
                states.insert(key, (state, data));
            }
        }
        out.push(states.clone());
    }
    out
}

fn check(doc: &Value, state: &AssetState, data: &Value, at: u64) {
    let key = &state.key;
    assert_eq!(doc["key"], *key);
    assert_eq!(doc["name"], state.name, "{key} at {at}");
    assert_eq!(doc["status"], state.status, "{key} at {at}");
    assert_eq!(doc["version"], state.version, "{key} at {at}");
    assert_eq!(doc["contenthash"], state.contenthash, "{key} at {at}");
    assert_eq!(doc["chainhash"], state.chainhash, "{key} at {at}");
    assert_eq!(doc["id"], state.native_id, "{key} at {at}");
    // The read model keeps microseconds (DuckDB TIMESTAMP).
    let us = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    let first_seen = state.first_seen.timestamp_micros();
    let last_changed = state.last_changed.timestamp_micros();
    assert_eq!(us(&doc["first_seen"]), first_seen, "{key} at {at}");
    assert_eq!(us(&doc["last_changed"]), last_changed, "{key} at {at}");
    assert_eq!(
        doc["deleted_at"].is_null(),
        state.deleted_at.is_none(),
        "{key} at {at}"
    );
    assert_eq!(doc["data"], *data, "{key} at {at}");
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut f = Fixture::new();
    let mut assets: Vec<_> = IDS
        .iter()
        .map(|(p, k, id)| asset(p, k, id, "x", AssetStatus::Active))
        .collect();
    let t0 = chrono::Utc::now();
    for (n, op) in ops.iter().enumerate() {
        let at = t0 + chrono::Duration::seconds(n as i64);
        match *op {
            Op::Put { i, name, status } => {
                let a = &mut assets[i];
                a.name = format!("name-{name}");
                a.status =
                    [AssetStatus::Active, AssetStatus::Suspended, AssetStatus::Up][status as usize];
                let a = a.clone();
                f.put_at(&a, at);
            }
            Op::Delete { i } => {
                let a = assets[i].clone();
                f.delete(&a);
            }
            Op::Garbage => f.reject(),
        }
    }
    let expected = folded_prefixes(&f.log);
    let client = f.client();
    rt.block_on(async {
        for (i, want) in expected.iter().enumerate() {
            let at = i as u64 + 1;
            let (status, _, page) = json(
                client
                    .get(format!("/api/v1/assets?as_of=seq:{at}&limit=1000"))
                    .send()
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{page}");
            let live: Vec<&(AssetState, Value)> = want
                .values()
                .filter(|(s, _)| s.deleted_at.is_none())
                .collect();
            let items = page["items"].as_array().unwrap();
            assert_eq!(
                items.len(),
                live.len(),
                "as_of seq:{at}: {page} vs {:?}",
                live.iter().map(|(s, _)| &s.key).collect::<Vec<_>>()
            );
            for (doc, (state, data)) in items.iter().zip(&live) {
                check(doc, state, data, at);
            }
            // Every key, deleted ones included, by its own route.
            for (p, k, id) in IDS {
                let key = format!("{p}/{k}/{id}");
                let encoded = key.replace('/', "%2F");
                let (status, _, doc) = json(
                    client
                        .get(format!("/api/v1/assets/{encoded}?as_of=seq:{at}"))
                        .send()
                        .await,
                )
                .await;
                match want.get(&key) {
                    Some((state, data)) => {
                        assert_eq!(status, 200, "{key} at {at}: {doc}");
                        check(&doc, state, data, at);
                    }
                    None => assert_eq!(status, 404, "{key} at {at}: {doc}"),
                }
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    })]

    #[test]
    fn as_of_at_every_point_equals_the_fold_of_the_prefix(ops in prop::collection::vec(op(), 1..30)) {
        run(ops);
    }
}
