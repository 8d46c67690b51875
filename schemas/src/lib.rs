//! The asset-inventory event contract (DESIGN §4): the four CloudEvent types, their `data`
//! documents, canonical JSON and content hashes, the per-asset hash chain, deterministic event
//! ids and the mapping from asset keys to NATS subjects.
//!
//! This crate does no IO.

pub mod asset;
pub mod chain;
mod envelope;
pub mod event;
pub mod hash;
pub mod json_schema;
pub mod key;
mod point;
mod summary;
pub mod trust;

pub use asset::{
    Asset, AssetStatus, Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone,
};
pub use chain::{decide_upsert, LastEvent, LastLink};
pub use envelope::decode_summary;
pub use event::{
    decode, encode_asset, encode_sweep, encode_tombstone, ChainLink, EventData, EventType,
    InventoryEvent, OutgoingEvent, CONTENT_TYPE,
};
pub use key::{
    asset_filter, legacy_sweep_subject, sweep_subject, AssetKey, STREAM_NAME, STREAM_SUBJECTS,
};
pub use point::{Point, PointError, SEQ_POINT_PATTERN};
pub use summary::{DataSummary, EventSummary};
pub use trust::{admit, decode_stored, decode_stored_summary, RejectReason, Rejection};

/// Errors of the contract: invalid keys, malformed events.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("invalid asset key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("not a CloudEvent 1.0 in structured JSON: {0}")]
    NotCloudEvent(String),
    #[error("missing CloudEvents attribute {0:?}")]
    MissingAttribute(&'static str),
    #[error("bad extension {name:?}: {reason}")]
    BadExtension { name: &'static str, reason: String },
    #[error("invalid {ty} data: {reason}")]
    InvalidData { ty: &'static str, reason: String },
    #[error("subject {subject:?} does not match the data's asset key {key:?}")]
    SubjectMismatch { subject: String, key: String },
    #[error("cannot build event: {0}")]
    Build(String),
    #[error("JSON: {0}")]
    Json(#[source] serde_json::Error),
}
