//! CloudEvents 1.0 (structured JSON) encoding and decoding of inventory events.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use cloudevents::event::ExtensionValue;
use cloudevents::{EventBuilder, EventBuilderV10};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::asset::{Asset, SweepCompleted, Tombstone};
use crate::hash::{
    asset_content_hash, asset_event_id, chain_hash, sweep_event_id, tombstone_content_hash,
};
use crate::key::{sweep_subject, AssetKey};
use crate::SchemaError;

pub use crate::envelope::decode;

/// `Content-Type` of every message on the stream (NATS binding, structured mode).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// `datacontenttype` of every event.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// The four event types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Discovered,
    Changed,
    Deleted,
    SweepCompleted,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        Self::Discovered,
        Self::Changed,
        Self::Deleted,
        Self::SweepCompleted,
    ];

    /// The CloudEvents `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discovered => "io.companyos.inventory.asset.discovered.v1",
            Self::Changed => "io.companyos.inventory.asset.changed.v1",
            Self::Deleted => "io.companyos.inventory.asset.deleted.v1",
            Self::SweepCompleted => "io.companyos.inventory.sweep.completed.v1",
        }
    }

    /// The short name used in APIs and tables (`discovered`, `changed`, `deleted`, `sweep`).
    pub fn short(self) -> &'static str {
        match self {
            Self::Discovered => "discovered",
            Self::Changed => "changed",
            Self::Deleted => "deleted",
            Self::SweepCompleted => "sweep",
        }
    }

    /// Parses a short name (`discovered`, `changed`, `deleted`, `sweep`).
    pub fn from_short(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.short() == s)
    }

    /// Whether this is an asset event (not a sweep).
    pub fn is_asset(self) -> bool {
        !matches!(self, Self::SweepCompleted)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = SchemaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| SchemaError::UnknownType(s.to_owned()))
    }
}

/// The typed `data` of a decoded event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// `discovered` and `changed`.
    Asset(Asset),
    /// `deleted`.
    Tombstone(Tombstone),
    /// `sweep.completed`.
    Sweep(SweepCompleted),
}

/// A decoded and validated inventory event.
#[derive(Debug, Clone)]
pub struct InventoryEvent {
    pub id: String,
    pub ty: EventType,
    pub source: String,
    /// The asset key for asset events; the scope for sweeps.
    pub subject: Option<String>,
    /// When the collector observed it.
    pub time: DateTime<Utc>,
    pub contenthash: Option<String>,
    pub prevseq: Option<u64>,
    pub chainhash: Option<String>,
    pub traceparent: Option<String>,
    pub data: EventData,
    /// The `data` member exactly as received (a JSON object).
    pub data_raw: Box<RawValue>,
}

impl PartialEq for InventoryEvent {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.ty == other.ty
            && self.source == other.source
            && self.subject == other.subject
            && self.time == other.time
            && self.contenthash == other.contenthash
            && self.prevseq == other.prevseq
            && self.chainhash == other.chainhash
            && self.traceparent == other.traceparent
            && self.data == other.data
            && self.data_raw.get() == other.data_raw.get()
    }
}

impl InventoryEvent {
    /// The `data` member as a JSON value (parsed from [`InventoryEvent::data_raw`]).
    pub fn data_json(&self) -> Value {
        // `data_raw` was parsed when the event was decoded, so this cannot fail.
        serde_json::from_str(self.data_raw.get()).unwrap_or(Value::Null)
    }

    /// The asset key of an asset event.
    pub fn asset_key(&self) -> Option<&str> {
        match self.data {
            EventData::Sweep(_) => None,
            _ => self.subject.as_deref(),
        }
    }
}

/// An encoded event ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// NATS subject.
    pub subject: String,
    /// CloudEvents id, also sent as `Nats-Msg-Id`.
    pub id: String,
    pub ty: EventType,
    /// Asset key (asset events only).
    pub key: Option<String>,
    pub contenthash: Option<String>,
    pub chainhash: Option<String>,
    /// Sent as `Nats-Expected-Last-Subject-Sequence` (asset events only).
    pub prevseq: Option<u64>,
    /// The structured-mode CloudEvent.
    pub payload: Vec<u8>,
}

/// What the publisher knows about an asset's previous event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainLink {
    /// Stream sequence of the previous event (0: none).
    pub prevseq: u64,
    /// Chain hash of the previous event ("" for none).
    pub chainhash: String,
}

fn build(
    id: String,
    ty: EventType,
    source: &str,
    subject: Option<&str>,
    time: DateTime<Utc>,
    extensions: &[(&str, ExtensionValue)],
    data: Value,
) -> Result<Vec<u8>, SchemaError> {
    let mut b = EventBuilderV10::new()
        .id(id)
        .ty(ty.as_str())
        .source(source)
        .time(time);
    if let Some(s) = subject {
        b = b.subject(s);
    }
    for (name, value) in extensions {
        b = b.extension(name, value.clone());
    }
    let event = b
        .data(DATA_CONTENT_TYPE, data)
        .build()
        .map_err(|e| SchemaError::Build(e.to_string()))?;
    serde_json::to_vec(&event).map_err(SchemaError::Json)
}

fn prevseq_value(prevseq: u64) -> Result<ExtensionValue, SchemaError> {
    i64::try_from(prevseq)
        .map(ExtensionValue::Integer)
        .map_err(|_| SchemaError::Build(format!("prevseq {prevseq} out of range")))
}

/// Encodes a `discovered` or `changed` event for `asset`, linked to its previous event.
pub fn encode_asset(
    ty: EventType,
    asset: &Asset,
    source: &str,
    observed: DateTime<Utc>,
    prev: &ChainLink,
) -> Result<OutgoingEvent, SchemaError> {
    if !matches!(ty, EventType::Discovered | EventType::Changed) {
        return Err(SchemaError::Build(format!(
            "{ty} cannot carry an asset state"
        )));
    }
    let key = asset.key()?;
    let contenthash = asset_content_hash(asset)?;
    let data = serde_json::to_value(asset).map_err(SchemaError::Json)?;
    encode_asset_like(ty, &key, contenthash, data, source, observed, prev)
}

/// Encodes a `deleted` event (tombstone).
pub fn encode_tombstone(
    tombstone: &Tombstone,
    source: &str,
    observed: DateTime<Utc>,
    prev: &ChainLink,
) -> Result<OutgoingEvent, SchemaError> {
    let key = tombstone.key()?;
    let contenthash = tombstone_content_hash(tombstone)?;
    let data = serde_json::to_value(tombstone).map_err(SchemaError::Json)?;
    encode_asset_like(
        EventType::Deleted,
        &key,
        contenthash,
        data,
        source,
        observed,
        prev,
    )
}

fn encode_asset_like(
    ty: EventType,
    key: &AssetKey,
    contenthash: String,
    data: Value,
    source: &str,
    observed: DateTime<Utc>,
    prev: &ChainLink,
) -> Result<OutgoingEvent, SchemaError> {
    let key_str = key.to_string();
    let id = asset_event_id(&key_str, prev.prevseq, &contenthash);
    let chainhash = chain_hash(&prev.chainhash, &contenthash, ty);
    let payload = build(
        id.clone(),
        ty,
        source,
        Some(&key_str),
        observed,
        &[
            ("contenthash", ExtensionValue::String(contenthash.clone())),
            ("prevseq", prevseq_value(prev.prevseq)?),
            ("chainhash", ExtensionValue::String(chainhash.clone())),
        ],
        data,
    )?;
    Ok(OutgoingEvent {
        subject: key.subject(),
        id,
        ty,
        key: Some(key_str),
        contenthash: Some(contenthash),
        chainhash: Some(chainhash),
        prevseq: Some(prev.prevseq),
        payload,
    })
}

/// Encodes a `sweep.completed` event.
pub fn encode_sweep(sweep: &SweepCompleted, source: &str) -> Result<OutgoingEvent, SchemaError> {
    crate::key::validate_word("provider", &sweep.provider)?;
    crate::key::validate_native_id(&sweep.scope)?;
    let nanos = sweep
        .started_at
        .timestamp_nanos_opt()
        .unwrap_or_else(|| sweep.started_at.timestamp_micros());
    let id = sweep_event_id(source, nanos);
    let data = serde_json::to_value(sweep).map_err(SchemaError::Json)?;
    let payload = build(
        id.clone(),
        EventType::SweepCompleted,
        source,
        Some(&sweep.scope),
        sweep.finished_at,
        &[],
        data,
    )?;
    Ok(OutgoingEvent {
        subject: sweep_subject(&sweep.provider, &sweep.scope),
        id,
        ty: EventType::SweepCompleted,
        key: None,
        contenthash: None,
        chainhash: None,
        prevseq: None,
        payload,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::asset::{AssetStatus, Provenance, SweepCounts, SweepStatus};
    use crate::hash::data_content_hash;

    pub(crate) fn sample_asset(id: &str) -> Asset {
        Asset {
            id: id.into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: format!("acct {id}"),
            status: AssetStatus::Active,
            org_path: vec!["r-root".into(), "ou-prod".into()],
            region_residency: vec![],
            url: None,
            auth_mode: None,
            labels: [("team".to_owned(), "sre".to_owned())].into(),
            raw: serde_json::json!({"Email": "a@example.com"}),
            provenance: Provenance {
                collector: "file".into(),
                collector_version: "0.1.0".into(),
                api: "file".into(),
                ..Provenance::default()
            },
        }
    }

    #[test]
    fn asset_events_round_trip() {
        let asset = sample_asset("123456789012");
        let prev = ChainLink {
            prevseq: 7,
            chainhash: "abc".into(),
        };
        let out = encode_asset(EventType::Changed, &asset, "/file/x", Utc::now(), &prev).unwrap();
        assert_eq!(out.subject, "inventory.asset.aws.account.123456789012");
        let ev = decode(&out.payload).unwrap();
        assert_eq!(ev.ty, EventType::Changed);
        assert_eq!(ev.id, out.id);
        assert_eq!(ev.prevseq, Some(7));
        assert_eq!(ev.subject.as_deref(), Some("aws/account/123456789012"));
        assert_eq!(ev.data, EventData::Asset(asset));
        assert_eq!(ev.contenthash.as_deref(), out.contenthash.as_deref());
        assert_eq!(
            ev.contenthash.as_deref(),
            Some(data_content_hash(&ev.data_json()).as_str())
        );
        assert_eq!(
            ev.chainhash.unwrap(),
            chain_hash("abc", &ev.contenthash.unwrap(), EventType::Changed)
        );
    }

    #[test]
    fn payload_is_a_structured_cloudevent() {
        let out = encode_asset(
            EventType::Discovered,
            &sample_asset("1"),
            "/file/x",
            Utc::now(),
            &ChainLink::default(),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "io.companyos.inventory.asset.discovered.v1");
        assert_eq!(v["datacontenttype"], "application/json");
        assert_eq!(v["prevseq"], 0);
        assert!(v["data"].is_object());
    }

    #[test]
    fn sweep_events_round_trip() {
        let now = Utc::now();
        let sweep = SweepCompleted {
            collector: "file".into(),
            provider: "file".into(),
            scope: "assets".into(),
            status: SweepStatus::Ok,
            started_at: now,
            finished_at: now,
            duration_ms: 3,
            counts: SweepCounts::default(),
            error: None,
            provenance: Provenance::default(),
        };
        let out = encode_sweep(&sweep, "/file/assets").unwrap();
        assert_eq!(out.subject, "inventory.sweep.file.assets");
        assert_eq!(decode(&out.payload).unwrap().data, EventData::Sweep(sweep));
    }

    #[test]
    fn malformed_events_are_refused_with_a_reason() {
        let good = encode_asset(
            EventType::Discovered,
            &sample_asset("1"),
            "/file/x",
            Utc::now(),
            &ChainLink::default(),
        )
        .unwrap();
        let mut v: Value = serde_json::from_slice(&good.payload).unwrap();
        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|v| v["type"] = "x.y".into()), "unknown event type"),
            (
                Box::new(|v| v["subject"] = "aws/account/2".into()),
                "does not match",
            ),
            (
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("chainhash");
                }),
                "chainhash",
            ),
            (
                Box::new(|v| v["data"]["status"] = "sideways".into()),
                "invalid discovered data",
            ),
            (Box::new(|v| v["prevseq"] = (-1).into()), "prevseq"),
            (
                Box::new(|v| v["specversion"] = "0.1".into()),
                "not a CloudEvent",
            ),
        ];
        for (mutate, expected) in cases {
            let mut bad = v.clone();
            mutate(&mut bad);
            let err = decode(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
            assert!(err.to_string().contains(expected), "{err} !~ {expected}");
        }
        assert!(decode(b"not json").is_err());
        v["data"] = Value::Null;
        assert!(decode(&serde_json::to_vec(&v).unwrap()).is_err());
    }
}
