//! Property (issue 10): for random streams of discoveries, changes, deletions, re-discoveries,
//! sweeps and undecodable messages, applied in random batches (some appended in pieces, some
//! rolled back and applied again), the in-memory read model at every committed checkpoint equals
//! the pure fold of the stream up to it: every asset's state and document, every asset's
//! versions, every scope's sweep. A snapshot taken earlier still shows its own checkpoint after
//! later commits, and a store reopened from its DuckDB file loads the same model. The newest
//! snapshot's past views (read from the version log) at every earlier checkpoint are that
//! checkpoint's fold too, also once the log is lost and written again from the database.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use inventory_projector::current::{content_fingerprint, Snapshot};
use inventory_projector::fold::{fold, AssetState};
use inventory_projector::history::{self, ChangeQuery};
use inventory_projector::read::{AssetQuery, AssetRow};
use inventory_projector::{Incoming, Store};
use inventory_schemas::{
    encode_asset, encode_sweep, encode_tombstone, Asset, AssetStatus, ChainLink, DataSummary,
    EventType, Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Observe asset `i` with name variant `name`, status variant `status` and team `team`
    /// (its `team` label and its org unit; team 0: no label).
    Put {
        i: usize,
        name: u8,
        status: u8,
        team: u8,
    },
    Delete {
        i: usize,
    },
    Sweep {
        scope: u8,
        ok: bool,
    },
    Garbage,
}

/// How the ops are cut into transactions: after each op, commit (`Commit`), keep appending
/// (`Append`), or roll back what is uncommitted and apply it again (`Retry`).
#[derive(Debug, Clone, Copy)]
enum Cut {
    Commit,
    Append,
    Retry,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..6usize, 0..3u8, 0..3u8, 0..3u8)
            .prop_map(|(i, name, status, team)| Op::Put { i, name, status, team }),
        2 => (0..6usize).prop_map(|i| Op::Delete { i }),
        1 => (0..2u8, any::<bool>()).prop_map(|(scope, ok)| Op::Sweep { scope, ok }),
        1 => Just(Op::Garbage),
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    prop_oneof![4 => Just(Cut::Commit), 4 => Just(Cut::Append), 1 => Just(Cut::Retry)]
}

const IDS: [(&str, &str, &str); 6] = [
    ("aws", "account", "111111111111"),
    ("aws", "account", "222222222222"),
    ("gcp", "project", "proj-a"),
    ("azure", "subscription", "0000-aaaa"),
    ("prometheus", "endpoint", "prom/with/slashes"),
    ("grafana", "endpoint", "g1"),
];

fn at(n: usize) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + n as i64, 0).unwrap()
}

/// The stored message of op `n` (stream sequence `n + 1`).
fn message(n: usize, op: &Op) -> Incoming {
    let seq = n as u64 + 1;
    let (subject, payload) = match *op {
        Op::Put {
            i,
            name,
            status,
            team,
        } => {
            let (provider, kind, id) = IDS[i];
            let a = Asset {
                id: id.into(),
                provider: provider.into(),
                kind: kind.into(),
                name: format!("name-{name}"),
                status: [AssetStatus::Active, AssetStatus::Suspended, AssetStatus::Up]
                    [status as usize],
                org_path: vec!["root".into(), format!("ou{}", team % 2)],
                region_residency: vec![],
                url: None,
                auth_mode: None,
                labels: (team > 0)
                    .then(|| ("team".to_owned(), format!("t{team}")))
                    .into_iter()
                    .collect(),
                raw: serde_json::json!({"i": i, "name": name, "status": status}),
                provenance: Provenance::default(),
            };
            let ev = encode_asset(
                EventType::Changed,
                &a,
                &format!("/collectors/{provider}/s"),
                at(n),
                &ChainLink::default(),
            )
            .unwrap();
            (ev.subject, ev.payload)
        }
        Op::Delete { i } => {
            let (provider, kind, id) = IDS[i];
            let t = Tombstone {
                id: id.into(),
                provider: provider.into(),
                kind: kind.into(),
                name: "gone".into(),
                reason: "absent from a complete sweep".into(),
                last_contenthash: String::new(),
                provenance: Provenance::default(),
            };
            let ev = encode_tombstone(
                &t,
                &format!("/collectors/{provider}/s"),
                at(n),
                &ChainLink::default(),
            )
            .unwrap();
            (ev.subject, ev.payload)
        }
        Op::Sweep { scope, ok } => {
            let s = SweepCompleted {
                collector: "aws".into(),
                provider: "aws".into(),
                scope: format!("o-{scope}"),
                status: if ok {
                    SweepStatus::Ok
                } else {
                    SweepStatus::Failed
                },
                started_at: at(n),
                finished_at: at(n),
                duration_ms: 1,
                counts: SweepCounts::default(),
                error: (!ok).then(|| "boom".to_owned()),
                provenance: Default::default(),
            };
            let ev = encode_sweep(&s, &format!("/collectors/aws/o-{scope}")).unwrap();
            (ev.subject, ev.payload)
        }
        Op::Garbage => ("inventory.asset.aws.account.1".to_owned(), b"{".to_vec()),
    };
    Incoming::decode(seq, subject, at(n), payload.into())
}

/// A scope's newest sweep as the model shows it: (seq, status, newest ok time, runs).
type SweepView = (u64, String, Option<DateTime<Utc>>, u64);

/// Asserts that an asset's row is this state and document.
fn assert_row(row: Option<AssetRow>, state: &AssetState, data: Option<&str>, what: &str) {
    let row = row.unwrap_or_else(|| panic!("{what}: missing"));
    assert_eq!(row.state, *state, "{what}: state");
    assert_eq!(row.data.as_deref(), data, "{what}: data");
}

/// A version as the index shows it: (seq, content fingerprint, tombstone, name, status).
type VersionView = (u64, u64, bool, String, String);

/// What the model must hold at one checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
struct Expected {
    seq: u64,
    /// Every asset's folded state and last known document.
    assets: BTreeMap<String, (AssetState, Option<String>)>,
    /// Every asset's versions.
    versions: BTreeMap<String, Vec<VersionView>>,
    /// Each scope's newest sweep.
    sweeps: BTreeMap<String, SweepView>,
}

impl Expected {
    /// The pure fold of one more message.
    fn apply(&mut self, inc: &Incoming) {
        self.seq = inc.seq;
        let Ok(ev) = &inc.decoded else { return };
        match &ev.data {
            DataSummary::Sweep(s) => {
                let prev = self.sweeps.get(&ev.source).cloned();
                let ok = if s.status == SweepStatus::Ok {
                    Some(s.finished_at)
                } else {
                    prev.as_ref().and_then(|p| p.2)
                };
                let runs = prev.map_or(0, |p| p.3) + 1;
                self.sweeps.insert(
                    ev.source.clone(),
                    (inc.seq, s.status.as_str().to_owned(), ok, runs),
                );
            }
            _ => {
                let key = ev.asset_key().unwrap().to_owned();
                let prev = self.assets.get(&key);
                let state = fold(prev.map(|p| &p.0), inc.seq, ev).unwrap();
                let data = if state.data_seq == Some(inc.seq) {
                    Some(ev.data_text(&inc.payload).to_owned())
                } else {
                    prev.and_then(|p| p.1.clone())
                };
                self.versions.entry(key.clone()).or_default().push((
                    inc.seq,
                    content_fingerprint(&state.contenthash),
                    state.deleted_at.is_some(),
                    state.name.clone(),
                    state.status.clone(),
                ));
                self.assets.insert(key, (state, data));
            }
        }
    }

    /// Asserts that `snap` is exactly this checkpoint.
    fn check(&self, snap: &Snapshot, what: &str) {
        assert_eq!(snap.seq(), self.seq, "{what}: checkpoint");
        assert_eq!(snap.asset_count(), self.assets.len(), "{what}: asset count");
        let versions = snap.versions();
        for (key, (state, data)) in &self.assets {
            assert_row(
                snap.get(key),
                state,
                data.as_deref(),
                &format!("{what}: {key}"),
            );
            let got: Vec<VersionView> = versions
                .of(key)
                .iter()
                .map(|v| {
                    let (name, status) = (versions.name(v), versions.status(v));
                    (
                        v.seq,
                        v.content,
                        v.deleted,
                        name.to_owned(),
                        status.to_owned(),
                    )
                })
                .collect();
            assert_eq!(got, self.versions[key], "{what}: versions of {key}");
        }
        let listed = snap.list(&AssetQuery {
            include_deleted: true,
            limit: 100,
            ..AssetQuery::default()
        });
        let keys: Vec<&str> = listed.iter().map(|r| r.key()).collect();
        let expected: Vec<&str> = self.assets.keys().map(String::as_str).collect();
        assert_eq!(keys, expected, "{what}: listing");
        let live: Vec<String> = snap
            .list(&AssetQuery {
                limit: 100,
                ..AssetQuery::default()
            })
            .iter()
            .map(|r| r.key().to_owned())
            .collect();
        let want: Vec<String> = self
            .assets
            .iter()
            .filter(|(_, (s, _))| s.deleted_at.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(live, want, "{what}: live listing");
        let sweeps: BTreeMap<String, SweepView> = snap
            .sweeps()
            .into_iter()
            .map(|s| (s.source, (s.seq, s.status, s.last_ok_at, s.runs)))
            .collect();
        assert_eq!(sweeps, self.sweeps, "{what}: sweeps");
    }
}

impl Expected {
    /// Asserts that `snap`'s past views at this checkpoint are exactly it.
    fn check_past(&self, snap: &Snapshot, what: &str) {
        let what = format!("{what}: past view at {}", self.seq);
        for (key, (state, data)) in &self.assets {
            let row = history::get_asset_at(snap, key, self.seq).unwrap();
            assert_row(row, state, data.as_deref(), &format!("{what}: {key}"));
            let seqs: Vec<u64> = history::history(snap, key, None, 1000)
                .unwrap()
                .iter()
                .map(|v| v.seq)
                .filter(|s| *s <= self.seq)
                .collect();
            let want: Vec<u64> = self.versions[key].iter().rev().map(|v| v.0).collect();
            assert_eq!(seqs, want, "{what}: history of {key}");
        }
        // Past listings, also filtered on the past name and status (case-insensitive name).
        let filters = [(None, None), (Some("active"), None), (None, Some("NAME-1"))];
        for (include_deleted, (status, name)) in [false, true]
            .into_iter()
            .flat_map(|d| filters.map(|f| (d, f)))
        {
            let q = AssetQuery {
                include_deleted,
                status: status.map(str::to_owned),
                name_contains: name.map(str::to_owned),
                limit: 100,
                ..AssetQuery::default()
            };
            let listed = history::list_assets_at(snap, &q, self.seq).unwrap();
            let got: Vec<(&str, &AssetState)> =
                listed.iter().map(|r| (r.key(), &r.state)).collect();
            let want: Vec<(&str, &AssetState)> = self
                .assets
                .iter()
                .filter(|(_, (s, _))| include_deleted || s.deleted_at.is_none())
                .filter(|(_, (s, _))| status.is_none_or(|st| s.status == st))
                .filter(|(_, (s, _))| name.is_none_or(|n| s.name.contains(&n.to_lowercase())))
                .map(|(k, (s, _))| (k.as_str(), s))
                .collect();
            assert_eq!(got, want, "{what}: listing {q:?}");
        }
        self.check_past_tags(snap, &what);
        let changes: Vec<u64> = history::changes(
            snap,
            &ChangeQuery {
                until: Some(self.seq),
                limit: 1000,
                ..ChangeQuery::default()
            },
        )
        .unwrap()
        .iter()
        .map(|v| v.seq)
        .collect();
        let mut want: Vec<u64> = self.versions.values().flatten().map(|v| v.0).collect();
        want.sort_unstable();
        assert_eq!(changes, want, "{what}: changes");
    }
}

/// An asset's tags as its document states them, independently of the model: the org path's
/// prefixes and the labels as `key:value`.
fn doc_tags(data: Option<&str>) -> (Vec<String>, Vec<String>) {
    let doc: serde_json::Value = data
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let mut prefixes = Vec::new();
    for seg in doc["org_path"].as_array().into_iter().flatten() {
        let seg = seg.as_str().unwrap();
        prefixes.push(match prefixes.last() {
            Some(p) => format!("{p}/{seg}"),
            None => seg.to_owned(),
        });
    }
    let labels = doc["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}:{}", v.as_str().unwrap()))
        .collect();
    (prefixes, labels)
}

/// A past asset as facets see it: (provider, kind, status, org prefixes, labels).
type TaggedView = (String, String, String, Vec<String>, Vec<String>);

impl Expected {
    /// Asserts that the facets and the label and org path filters of `snap`'s past views at this
    /// checkpoint are its fold's (the tags of each asset's document then).
    fn check_past_tags(&self, snap: &Snapshot, what: &str) {
        let filters: [(&[&str], Option<&str>); 5] = [
            (&[], None),
            (&["team:t1"], None),
            (&["team:t2"], Some("root")),
            (&[], Some("root/ou1")),
            (&[], Some("root/ou")),
        ];
        for (include_deleted, (labels, org_path)) in [false, true]
            .into_iter()
            .flat_map(|d| filters.map(|f| (d, f)))
        {
            let q = AssetQuery {
                include_deleted,
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                org_path: org_path.map(str::to_owned),
                limit: 100,
                ..AssetQuery::default()
            };
            let want: Vec<(&str, TaggedView)> = self
                .assets
                .iter()
                .filter(|(_, (s, _))| include_deleted || s.deleted_at.is_none())
                .filter_map(|(k, (s, data))| {
                    let (prefixes, doc_labels) = doc_tags(data.as_deref());
                    let pass = labels.iter().all(|l| doc_labels.iter().any(|x| x == l))
                        && org_path.is_none_or(|p| prefixes.iter().any(|x| x == p));
                    pass.then(|| {
                        let view = (s.provider.clone(), s.kind.clone(), s.status.clone());
                        (k.as_str(), (view.0, view.1, view.2, prefixes, doc_labels))
                    })
                })
                .collect();
            let mut got: Vec<TaggedView> = Vec::new();
            history::tagged_assets_at(snap, &q, self.seq, |p, k, s, t| {
                got.push((
                    p.to_owned(),
                    k.to_owned(),
                    s.to_owned(),
                    t.org_prefixes.iter().map(|x| x.to_string()).collect(),
                    t.labels.iter().map(|x| x.to_string()).collect(),
                ));
            })
            .unwrap();
            // In no particular order (facets count them).
            let mut want_tagged: Vec<TaggedView> = want.iter().map(|(_, t)| t.clone()).collect();
            want_tagged.sort();
            got.sort();
            assert_eq!(got, want_tagged, "{what}: facets {q:?}");
            let listed = history::list_assets_at(snap, &q, self.seq).unwrap();
            let keys: Vec<&str> = listed.iter().map(|r| r.key()).collect();
            let want_keys: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
            assert_eq!(keys, want_keys, "{what}: listing {q:?}");
            // Pages of one, each after the last key of the one before: the same assets.
            let mut paged: Vec<String> = Vec::new();
            loop {
                let page = history::list_assets_at(
                    snap,
                    &AssetQuery {
                        limit: 1,
                        after: paged.last().cloned(),
                        ..q.clone()
                    },
                    self.seq,
                )
                .unwrap();
                let Some(row) = page.first() else { break };
                assert_eq!(page.len(), 1, "{what}: a page of one");
                paged.push(row.key().to_owned());
            }
            assert_eq!(paged, want_keys, "{what}: paged {q:?}");
        }
    }
}

fn run(ops: Vec<(Op, Cut)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.duckdb");
    let mut store = Store::open(&path).unwrap();
    let mut committed = Expected::default();
    let mut pending = committed.clone();
    let mut uncommitted: Vec<Incoming> = Vec::new();
    let mut held: Vec<(std::sync::Arc<Snapshot>, Expected)> = Vec::new();
    let live = store.live();
    for (n, (op, cut)) in ops.iter().enumerate() {
        let inc = message(n, op);
        pending.apply(&inc);
        store.append(std::slice::from_ref(&inc)).unwrap();
        uncommitted.push(inc);
        match cut {
            Cut::Append => {
                // Nothing of an open transaction is visible.
                committed.check(&live.load(), &format!("open after op {n}"));
                continue;
            }
            Cut::Retry => {
                store.rollback();
                committed.check(&live.load(), &format!("rolled back after op {n}"));
                store.append(&uncommitted).unwrap();
            }
            Cut::Commit => {}
        }
        store.commit().unwrap();
        uncommitted.clear();
        committed = pending.clone();
        let snap = live.load();
        committed.check(&snap, &format!("commit after op {n}"));
        held.push((snap, committed.clone()));
    }
    store.commit().unwrap();
    committed = pending;
    committed.check(&live.load(), "final");
    // Earlier snapshots are untouched by later commits (versions included), and the newest
    // one's past views are each earlier checkpoint.
    let newest = live.load();
    for (snap, expected) in &held {
        expected.check(snap, &format!("held snapshot at {}", expected.seq));
        expected.check_past(&newest, "newest snapshot");
    }
    drop(store);
    let reopened = Store::open(&path).unwrap();
    committed.check(&reopened.live().load(), "reopened");
    drop(reopened);
    // A lost version log is written again from the database.
    std::fs::remove_file(inventory_projector::version_log::log_path(&path)).unwrap();
    let restored = Store::open(&path).unwrap();
    let snap = restored.live().load();
    committed.check(&snap, "log restored");
    // Past tags are not known after opening until a past view reads them: the first pass reads
    // documents, the second answers from what it learnt.
    for pass in ["log restored", "log restored, tags learnt"] {
        for (_, expected) in &held {
            expected.check_past(&snap, pass);
        }
    }
    // What the first pass read, it learnt: every version a past view answered with.
    let versions = snap.versions();
    for (_, expected) in &held {
        for key in expected.assets.keys() {
            let v = versions.at(key, expected.seq).unwrap();
            assert!(versions.tags(&v).is_some(), "tags of {key} at {}", v.seq);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_current_view_is_the_fold_at_every_committed_checkpoint(
        ops in prop::collection::vec((op(), cut()), 1..60)
    ) {
        run(ops);
    }
}
