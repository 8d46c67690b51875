//! Fixtures: a real DuckDB store in a temporary directory, filled by applying real encoded events,
//! and the API over it.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use inventory_projector::{Incoming, ReadPool, Status, Store};
use inventory_query_api::{AppState, TokenSet};
use inventory_schemas::{
    encode_asset, encode_sweep, encode_tombstone, Asset, AssetStatus, ChainLink, EventType,
    OutgoingEvent, Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone,
};
use poem::test::TestClient;
use poem::Endpoint;
use serde_json::Value;
use tokio::sync::watch;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub pool: ReadPool,
    pub status_tx: watch::Sender<Status>,
    pub status_rx: watch::Receiver<Status>,
    seq: u64,
    chains: HashMap<String, ChainLink>,
    /// Every message applied, by sequence (index = seq - 1).
    pub log: Vec<Vec<u8>>,
}

pub fn asset(provider: &str, kind: &str, id: &str, name: &str, status: AssetStatus) -> Asset {
    Asset {
        id: id.into(),
        provider: provider.into(),
        kind: kind.into(),
        name: name.into(),
        status,
        org_path: vec!["r-root".into(), "ou-prod".into()],
        region_residency: vec![],
        url: (kind == "endpoint").then(|| format!("http://{id}.example:9090/")),
        auth_mode: None,
        labels: [("team".to_owned(), "sre".to_owned())].into(),
        raw: serde_json::json!({ "native": id }),
        provenance: Provenance {
            collector: provider.into(),
            collector_version: "0.1.0".into(),
            api: "test".into(),
            ..Provenance::default()
        },
    }
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("api.duckdb")).unwrap();
        let pool = ReadPool::new(store.connection().unwrap());
        let (status_tx, status_rx) = watch::channel(Status {
            caught_up: true,
            ..Status::default()
        });
        Self {
            _dir: dir,
            store,
            pool,
            status_tx,
            status_rx,
            seq: 0,
            chains: HashMap::new(),
            log: Vec::new(),
        }
    }

    pub fn state(&self, tokens: TokenSet) -> AppState {
        AppState::new(self.pool.clone(), self.status_rx.clone(), tokens)
    }

    pub fn client(&self) -> TestClient<impl Endpoint> {
        TestClient::new(inventory_query_api::app(self.state(TokenSet::default())))
    }

    fn apply(&mut self, out: &OutgoingEvent) -> u64 {
        self.seq += 1;
        let inc = Incoming::decode(
            self.seq,
            out.subject.clone(),
            Utc::now(),
            Bytes::from(out.payload.clone()),
        );
        let outcome = self.store.apply(&[inc]).unwrap();
        assert_eq!(outcome.applied, 1, "event not applied: {outcome:?}");
        self.log.push(out.payload.clone());
        if let (Some(key), Some(chain)) = (&out.key, &out.chainhash) {
            self.chains.insert(
                key.clone(),
                ChainLink {
                    prevseq: self.seq,
                    chainhash: chain.clone(),
                },
            );
        }
        self.seq
    }

    /// Publishes `asset` (discovered the first time, changed afterwards) observed at `at`.
    pub fn put_at(&mut self, asset: &Asset, at: DateTime<Utc>) -> u64 {
        let key = asset.key().unwrap().to_string();
        let prev = self.chains.get(&key).cloned();
        let ty = if prev.is_some() {
            EventType::Changed
        } else {
            EventType::Discovered
        };
        let source = format!("/collectors/{}/test", asset.provider);
        let out = encode_asset(ty, asset, &source, at, &prev.unwrap_or_default()).unwrap();
        self.apply(&out)
    }

    pub fn put(&mut self, asset: &Asset) -> u64 {
        self.put_at(asset, Utc::now())
    }

    /// Records a tombstone for `asset`.
    pub fn delete(&mut self, asset: &Asset) -> u64 {
        let key = asset.key().unwrap().to_string();
        let prev = self.chains.get(&key).cloned().unwrap_or_default();
        let t = Tombstone {
            id: asset.id.clone(),
            provider: asset.provider.clone(),
            kind: asset.kind.clone(),
            name: asset.name.clone(),
            reason: "absent from complete sweep".into(),
            last_contenthash: String::new(),
            provenance: asset.provenance.clone(),
        };
        let source = format!("/collectors/{}/test", asset.provider);
        let out = encode_tombstone(&t, &source, Utc::now(), &prev).unwrap();
        self.apply(&out)
    }

    /// Records a sweep of `provider`/`scope` that finished `ago` before now.
    pub fn sweep(
        &mut self,
        provider: &str,
        scope: &str,
        status: SweepStatus,
        ago: Duration,
    ) -> u64 {
        let finished = Utc::now() - ago;
        let s = SweepCompleted {
            collector: provider.into(),
            provider: provider.into(),
            scope: scope.into(),
            status,
            started_at: finished - Duration::seconds(2),
            finished_at: finished,
            duration_ms: 2000,
            counts: SweepCounts {
                seen: 3,
                unchanged: 3,
                ..SweepCounts::default()
            },
            error: (status != SweepStatus::Ok).then(|| "AccessDenied".to_owned()),
            provenance: Provenance::default(),
        };
        let out = encode_sweep(&s, &format!("/collectors/{provider}/{scope}")).unwrap();
        self.apply(&out)
    }

    /// Applies a message that does not decode (it goes to the rejected table).
    pub fn reject(&mut self) {
        self.seq += 1;
        let inc = Incoming::decode(
            self.seq,
            "inventory.asset.aws.account.x".into(),
            Utc::now(),
            Bytes::from_static(b"not a cloudevent"),
        );
        self.store.apply(&[inc]).unwrap();
        self.log.push(b"not a cloudevent".to_vec());
    }
}

/// The body of a response as JSON, with its status and content type.
pub async fn json(resp: poem::test::TestResponse) -> (u16, String, Value) {
    let status = resp.0.status().as_u16();
    let ct = resp.0.content_type().unwrap_or_default().to_owned();
    let body = resp.0.into_body().into_string().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, ct, v)
}

/// Asserts a problem+json answer with `status`, returning its detail.
pub async fn problem(resp: poem::test::TestResponse, status: u16) -> Value {
    let (got, ct, body) = json(resp).await;
    assert_eq!(got, status, "{body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}: {body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{body}"
    );
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    body
}

/// Keys of a page.
pub fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}
