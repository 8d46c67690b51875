//! Writes events to a test stream the way collectors do (conditional publish, proper chain
//! links), and raw messages the way a tamperer would (plain JetStream publish, no headers).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use async_nats::jetstream;
use chrono::Utc;
use inventory_schemas::{
    encode_asset, encode_sweep, encode_tombstone, Asset, AssetStatus, ChainLink, EventType,
    OutgoingEvent, Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone,
};

pub const SOURCE: &str = "/file/test";

/// An AWS account asset.
pub fn asset(id: &str, name: &str) -> Asset {
    Asset {
        id: id.into(),
        provider: "aws".into(),
        kind: "account".into(),
        name: name.into(),
        status: AssetStatus::Active,
        org_path: vec!["r-root".into()],
        region_residency: vec![],
        url: None,
        auth_mode: None,
        labels: Default::default(),
        raw: serde_json::json!({"Id": id}),
        provenance: Provenance {
            collector: "test".into(),
            collector_version: "0".into(),
            api: "test".into(),
            ..Provenance::default()
        },
    }
}

/// A GCP project asset.
pub fn project(id: &str, name: &str) -> Asset {
    Asset {
        provider: "gcp".into(),
        kind: "project".into(),
        ..asset(id, name)
    }
}

pub fn subject_of(a: &Asset) -> String {
    a.key().unwrap().subject()
}

/// A writer that links every event to the previous one of its asset, as collectors do.
pub struct Writer {
    pub js: jetstream::Context,
    /// NATS subject → the link for its next event.
    pub last: HashMap<String, ChainLink>,
    /// NATS subject → whether the asset is deleted.
    deleted: HashMap<String, bool>,
    sweeps: u64,
}

impl Writer {
    /// Connects and creates the INVENTORY stream as the binary does.
    pub async fn connect(url: &str) -> Self {
        let client = async_nats::connect(url).await.unwrap();
        let js = jetstream::new(client);
        inventory_bus::ensure_stream(&js, &inventory_bus::StreamSettings::default())
            .await
            .unwrap();
        Self {
            js,
            last: HashMap::new(),
            deleted: HashMap::new(),
            sweeps: 0,
        }
    }

    /// The event a collector would publish for `a` now.
    pub fn event_for(&self, a: &Asset) -> OutgoingEvent {
        let subject = subject_of(a);
        let (ty, link) = match self.last.get(&subject) {
            Some(l) if !self.deleted.get(&subject).copied().unwrap_or(false) => {
                (EventType::Changed, l.clone())
            }
            Some(l) => (EventType::Discovered, l.clone()),
            None => (EventType::Discovered, ChainLink::default()),
        };
        encode_asset(ty, a, SOURCE, Utc::now(), &link).unwrap()
    }

    fn record(&mut self, ev: &OutgoingEvent, seq: u64, deleted: bool) {
        self.last.insert(
            ev.subject.clone(),
            ChainLink {
                prevseq: seq,
                chainhash: ev.chainhash.clone().unwrap_or_default(),
            },
        );
        self.deleted.insert(ev.subject.clone(), deleted);
    }

    /// Publishes `a`'s discovered/changed event with the real publisher; returns its sequence.
    pub async fn upsert(&mut self, a: &Asset) -> u64 {
        let ev = self.event_for(a);
        let seq = inventory_bus::publish(&self.js, &ev).await.unwrap();
        self.record(&ev, seq, false);
        seq
    }

    /// Publishes one event for each asset (distinct assets), many in flight at once.
    pub async fn upsert_many(&mut self, assets: &[Asset]) -> Vec<u64> {
        let mut seqs = Vec::with_capacity(assets.len());
        for chunk in assets.chunks(2000) {
            let events: Vec<OutgoingEvent> = chunk.iter().map(|a| self.event_for(a)).collect();
            let mut acks = Vec::with_capacity(events.len());
            for ev in &events {
                acks.push(inventory_bus::publish_start(&self.js, ev).await.unwrap());
            }
            for (ack, ev) in acks.into_iter().zip(&events) {
                let seq = inventory_bus::finish(ack, ev).await.unwrap();
                self.record(ev, seq, false);
                seqs.push(seq);
            }
        }
        seqs
    }

    /// Publishes a tombstone for `a`.
    pub async fn delete(&mut self, a: &Asset) -> u64 {
        let subject = subject_of(a);
        let link = self.last[&subject].clone();
        let t = Tombstone {
            id: a.id.clone(),
            provider: a.provider.clone(),
            kind: a.kind.clone(),
            name: a.name.clone(),
            reason: "absent from complete sweep of test".into(),
            last_contenthash: inventory_schemas::hash::asset_content_hash(a).unwrap(),
            provenance: a.provenance.clone(),
        };
        let ev = encode_tombstone(&t, SOURCE, Utc::now(), &link).unwrap();
        let seq = inventory_bus::publish(&self.js, &ev).await.unwrap();
        self.record(&ev, seq, true);
        seq
    }

    /// Publishes a sweep.completed event.
    pub async fn sweep(&mut self) -> u64 {
        self.sweeps += 1;
        let now = Utc::now();
        // The sweep of the declared-assets scope `SOURCE` writes for (`/file/test`).
        let s = SweepCompleted {
            collector: "file".into(),
            provider: "file".into(),
            scope: "test".into(),
            status: SweepStatus::Ok,
            started_at: now,
            finished_at: now,
            duration_ms: 1,
            counts: SweepCounts::default(),
            error: None,
            provenance: Provenance::default(),
        };
        let ev = encode_sweep(&s, SOURCE).unwrap();
        inventory_bus::publish(&self.js, &ev).await.unwrap()
    }

    /// A plain JetStream publish: no `Nats-Msg-Id`, no expected-last-subject-sequence.
    pub async fn publish_raw(&self, subject: &str, payload: Vec<u8>) -> u64 {
        self.js
            .publish(subject.to_owned(), payload.into())
            .await
            .unwrap()
            .await
            .unwrap()
            .sequence
    }
}
