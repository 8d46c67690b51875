//! The JSON documents of the API. Their doc comments are the spec's descriptions.
//!
//! **Absent values** (one rule for every document of the API): an optional member of a response
//! document is always present, `null` when it has no value, and declared `nullable` in the spec
//! (`#[oai(nullable)]` on every `Option` field). [`crate::fast_json::FastJson`] writes the same
//! (tested). The one exception is `application/problem+json` ([`crate::problem::Problem`]),
//! which follows RFC 9457: a member that does not apply (`parameter`) is left out.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use inventory_projector::read::{AssetRow, SweepRow};
use poem_openapi::{Enum, Object};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One asset of the current view.
///
/// Also `serde::Serialize`, for [`crate::fast_json::FastJson`]: the same JSON as poem-openapi's
/// `ToJSON` writes (tested), without building a `serde_json::Value` of every document first.
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct AssetDoc {
    /// `<provider>/<kind>/<native id>`; the native id may contain `/`.
    pub key: String,
    /// `aws`, `gcp`, `azure`, `prometheus`, `grafana`, ...
    pub provider: String,
    /// `account`, `project`, `subscription`, `endpoint`, ...
    pub kind: String,
    /// The provider's own id of the asset.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Normalised status (`active`, `suspended`, `pending_closure`, `closed`, `up`, `down`,
    /// `declared`, `unknown`).
    pub status: String,
    /// Organisational path from the root to the asset's parent.
    pub org_path: Vec<String>,
    /// Tags or labels as the provider reports them.
    pub labels: BTreeMap<String, String>,
    /// Where the asset answers, or its console URL.
    #[oai(nullable)]
    pub url: Option<String>,
    /// CloudEvents source of the newest event (`/collectors/aws/o-abc`, `/api`, `/file/x`).
    pub source: String,
    /// When the asset was first observed.
    #[serde(serialize_with = "rfc3339")]
    pub first_seen: DateTime<Utc>,
    /// When its content last changed.
    #[serde(serialize_with = "rfc3339")]
    pub last_changed: DateTime<Utc>,
    /// Newest of: its newest event, its collector's newest complete sweep.
    #[serde(serialize_with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
    /// When a complete sweep last found it absent; null while it exists.
    #[serde(serialize_with = "rfc3339_opt")]
    #[oai(nullable)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Stream sequence of the asset's newest event.
    pub version: u64,
    /// SHA-256 of the canonical JSON of the normalised asset.
    pub contenthash: String,
    /// Per-asset hash chain value of the newest event.
    pub chainhash: String,
    /// The full normalised document of the last known state, including `raw` and `provenance`.
    pub data: Document,
}

/// Times as poem-openapi writes them (`DateTime::to_rfc3339`), so both writers agree.
fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339())
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// A JSON document as the event carried it (text validated when the event was decoded), written
/// out verbatim by [`Serialize`] and parsed only for `ToJSON`; `null` when absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document(pub Option<inventory_projector::current::Document>);

impl Document {
    /// The document as a JSON value (`null` when absent).
    pub fn value(&self) -> Value {
        self.0
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null)
    }
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Borrowing the text as a raw value checks it once more (a scan without allocation);
        // what fails that check is written as null, as `ToJSON` would.
        match self
            .0
            .as_deref()
            .and_then(|t| serde_json::from_str::<&serde_json::value::RawValue>(t).ok())
        {
            Some(raw) => raw.serialize(s),
            None => s.serialize_none(),
        }
    }
}

impl poem_openapi::types::Type for Document {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "any".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        <Value as poem_openapi::types::Type>::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl poem_openapi::types::ToJSON for Document {
    fn to_json(&self) -> Option<Value> {
        Some(self.value())
    }
}

impl poem_openapi::types::ParseFromJSON for Document {
    fn parse_from_json(value: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        Ok(Self(match value {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.to_string().into()),
        }))
    }
}

/// The members of an asset document that [`AssetDoc`] lifts out, read without building the rest
/// of the document (its `raw` member is skipped unparsed). Documents come from the collectors'
/// normaliser, so they have this shape; one that does not is read by [`Facets::lenient`].
#[derive(Default, Deserialize)]
#[serde(default)]
struct Facets {
    org_path: Vec<String>,
    labels: BTreeMap<String, String>,
    url: Option<String>,
}

impl Facets {
    fn of(text: &str) -> Self {
        serde_json::from_str(text).unwrap_or_else(|_| Self::lenient(text))
    }

    /// A member of an unexpected shape is left out, as is a non-string element of `org_path` or
    /// value of `labels`.
    fn lenient(text: &str) -> Self {
        let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(text) else {
            return Self::default();
        };
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            org_path: strings(doc.get("org_path")),
            labels: doc
                .get("labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            url: doc.get("url").and_then(Value::as_str).map(str::to_owned),
        }
    }
}

impl From<AssetRow> for AssetDoc {
    fn from(r: AssetRow) -> Self {
        let facets = r.data.as_deref().map(Facets::of).unwrap_or_default();
        let s = r.state;
        Self {
            org_path: facets.org_path,
            labels: facets.labels,
            url: facets.url,
            key: s.key,
            provider: s.provider,
            kind: s.kind,
            id: s.native_id,
            name: s.name,
            status: s.status,
            source: s.source,
            first_seen: s.first_seen,
            last_changed: s.last_changed,
            last_seen: r.last_seen,
            deleted_at: s.deleted_at,
            version: s.version,
            contenthash: s.contenthash,
            chainhash: s.chainhash,
            data: Document(r.data),
        }
    }
}

/// A page of assets, ordered by key.
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct AssetPage {
    pub items: Vec<AssetDoc>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    /// With `as_of`: the stream sequence the view stands at (the newest event at or before the
    /// requested time, or the requested `seq:N`); null for the current view.
    #[oai(nullable)]
    pub as_of_seq: Option<u64>,
}

/// One asset event: what happened to the asset, the state after it, and what changed.
///
/// Also `serde::Serialize` (the same JSON, tested), for [`crate::fast_json::FastJson`].
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct ChangeDoc {
    /// Stream sequence of the event (also the SSE `id`).
    pub seq: u64,
    /// `discovered`, `changed` or `deleted`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub ty: String,
    /// The asset key.
    pub key: String,
    /// CloudEvents `time`: when the collector observed it.
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// When JetStream recorded the event.
    #[serde(serialize_with = "rfc3339")]
    pub recorded_at: DateTime<Utc>,
    /// The asset's name after the event (its last name, for `deleted`).
    pub name: String,
    /// The asset's status after the event (its last status, for `deleted`).
    pub status: String,
    /// CloudEvents source of the event.
    pub source: String,
    /// CloudEvents id.
    pub event_id: String,
    pub contenthash: String,
    /// Per-asset hash chain value (see `inventory verify`).
    pub chainhash: String,
    /// Stream sequence of the asset's previous event (0 for none).
    pub prevseq: u64,
    /// JSON Patch (RFC 6902) from the previous version's document to this one's, `provenance`
    /// left out; null for `deleted` and for the first version.
    #[oai(nullable)]
    pub patch: Option<Vec<Value>>,
    /// How the observation was made (collector, API called, request ids, principal).
    #[oai(nullable)]
    pub provenance: Option<Value>,
    /// The event's `data`: the asset document, or the tombstone for `deleted`.
    pub data: Value,
}

/// A page of asset events.
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct ChangePage {
    pub items: Vec<ChangeDoc>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// How an asset differs between two points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DiffChange {
    /// Absent at `from`, present at `to`.
    Added,
    /// Present at `from`, absent (deleted or not yet known) at `to`.
    Removed,
    /// Present at both with different content.
    Changed,
}

/// One asset that differs between `from` and `to`.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct DiffItem {
    pub key: String,
    pub change: DiffChange,
    /// The asset at `from` (null when added).
    #[oai(nullable)]
    pub from: Option<AssetDoc>,
    /// The asset at `to` (null when removed).
    #[oai(nullable)]
    pub to: Option<AssetDoc>,
    /// For `changed`: JSON Patch (RFC 6902) from the `from` document to the `to` document,
    /// `provenance` left out.
    #[oai(nullable)]
    pub patch: Option<Vec<Value>>,
}

/// Totals of a diff, over all its pages.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct DiffCountsDoc {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

/// The difference between the estate at two points, ordered by key, paged.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct DiffPage {
    /// Stream sequence `from` resolved to.
    pub from_seq: u64,
    /// Stream sequence `to` resolved to.
    pub to_seq: u64,
    pub counts: DiffCountsDoc,
    pub items: Vec<DiffItem>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// An event of the change feed (`GET /api/v1/changes/stream`): SSE event `change` (with the
/// stream sequence as its id), or `end` as the last event before the server closes the stream.
#[derive(Debug, Clone, PartialEq, poem_openapi::Union)]
pub enum FeedEvent {
    Change(Box<ChangeDoc>),
    End(FeedEnd),
}

/// The last event of a change feed: the server ends the stream.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct FeedEnd {
    /// Why the stream ends (e.g. the client read too slowly; the server is shutting down).
    pub reason: String,
    /// The SSE id of the last change sent: reconnect with it as `Last-Event-ID` to resume.
    #[oai(nullable)]
    pub last_event_id: Option<u64>,
}

/// Counts of a sweep.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct SweepCountsDoc {
    /// Assets the provider reported.
    pub seen: u64,
    pub discovered: u64,
    pub changed: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Deletions withheld by the mass-deletion guard or because the sweep was incomplete.
    pub deletions_withheld: u64,
}

/// Freshness of one collector scope.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct CollectorDoc {
    /// CloudEvents source of the scope's sweeps, e.g. `/collectors/aws/o-abc123`.
    pub source: String,
    /// Collector name.
    pub collector: String,
    pub provider: String,
    /// The collector's scope (organisation id, file name, endpoint name).
    pub scope: String,
    /// Outcome of the newest sweep: `ok`, `partial` or `failed`.
    pub last_status: String,
    /// Stream sequence of the newest sweep event.
    pub last_seq: u64,
    pub last_started_at: DateTime<Utc>,
    /// When the newest sweep finished.
    pub last_finished_at: DateTime<Utc>,
    pub last_duration_ms: u64,
    /// Seconds since the newest sweep finished.
    pub age_seconds: i64,
    /// When the newest sweep with status `ok` finished; null if none ever did.
    #[oai(nullable)]
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Counts of the newest sweep.
    pub counts: SweepCountsDoc,
    /// Error of the newest sweep (`partial`, `failed`).
    #[oai(nullable)]
    pub error: Option<String>,
    /// Sweeps seen for this scope.
    pub runs: u64,
    /// True when no `ok` sweep finished within twice the expected interval.
    pub stale: bool,
}

impl CollectorDoc {
    /// The freshness of `row` at `now`, stale past `stale_after`.
    pub fn from_row(row: SweepRow, now: DateTime<Utc>, stale_after: chrono::Duration) -> Self {
        let stale = row.last_ok_at.is_none_or(|ok| now - ok > stale_after);
        Self {
            age_seconds: (now - row.finished_at).num_seconds(),
            stale,
            source: row.source,
            collector: row.collector,
            provider: row.provider,
            scope: row.scope,
            last_status: row.status,
            last_seq: row.seq,
            last_started_at: row.started_at,
            last_finished_at: row.finished_at,
            last_duration_ms: row.duration_ms,
            last_ok_at: row.last_ok_at,
            counts: SweepCountsDoc {
                seen: row.counts.seen,
                discovered: row.counts.discovered,
                changed: row.counts.changed,
                deleted: row.counts.deleted,
                unchanged: row.counts.unchanged,
                deletions_withheld: row.counts.deletions_withheld,
            },
            error: row.error,
            runs: row.runs,
        }
    }
}

/// Every collector scope's freshness.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct CollectorList {
    pub items: Vec<CollectorDoc>,
    /// The expected interval between sweeps, in seconds; a scope is stale after twice this.
    pub expected_interval_seconds: u64,
}

/// Declares a parameter enum: the spec lists its values, and [`choices_in`] finds them for
/// error messages.
macro_rules! choices {
    ($(#[$meta:meta])* $name:ident { $($(#[doc = $doc:literal])* $variant:ident = $value:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
        pub enum $name {
            $($(#[doc = $doc])* #[oai(rename = $value)] $variant,)*
        }

        impl $name {
            /// Every value, as sent on the wire.
            pub const VALUES: &'static [&'static str] = &[$($value),*];
            /// Every variant, in the order of [`Self::VALUES`].
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The value as sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)*
                }
            }
        }
    };
}

choices! {
    /// Cloud provider of account-like assets.
    AccountProvider { Aws = "aws", Gcp = "gcp", Azure = "azure" }
}

choices! {
    /// Kind of monitoring endpoint (its asset provider).
    MonitoringKind { Prometheus = "prometheus", Grafana = "grafana" }
}

choices! {
    /// Type of an asset event.
    ChangeType { Discovered = "discovered", Changed = "changed", Deleted = "deleted" }
}

choices! {
    /// Normalised asset status.
    StatusFilter {
        Active = "active",
        Suspended = "suspended",
        PendingClosure = "pending_closure",
        Closed = "closed",
        Up = "up",
        Down = "down",
        Declared = "declared",
        Unknown = "unknown",
    }
}

impl MonitoringKind {
    /// The asset provider of this kind of endpoint.
    pub fn provider(self) -> &'static str {
        self.as_str()
    }
}

choices! {
    /// Why a message was not applied (the trust rule, or a state that cannot be folded).
    RejectReasonCode {
        /// Not a CloudEvent of the contract.
        Undecodable = "undecodable",
        /// Stored on a subject outside the contract.
        UnknownSubject = "unknown_subject",
        /// A sweep on an asset subject, or an asset event on a sweep subject.
        WrongType = "wrong_type",
        /// About another asset (or sweep scope) than the NATS subject it was stored on.
        SubjectMismatch = "subject_mismatch",
        /// Its `source` may not write that subject.
        SourceMismatch = "source_mismatch",
        /// It claims a time after JetStream recorded it.
        FutureTime = "future_time",
        /// Valid for its subject, but its data cannot be folded.
        InvalidData = "invalid_data",
    }
}

/// A message of the stream that the read model did not apply.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct RejectedDoc {
    /// Stream sequence.
    pub seq: u64,
    /// When JetStream recorded it.
    pub recorded_at: DateTime<Utc>,
    /// The NATS subject it was stored on.
    pub subject: String,
    // Why, as a stable code (no doc comment: see `DeclareMonitoring::kind`).
    pub reason_code: RejectReasonCode,
    /// What exactly was wrong.
    pub reason: String,
    /// The payload as received (lossy UTF-8): an untrusted document, for investigation.
    pub payload: String,
}

/// A page of rejected messages, oldest first.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct RejectedPage {
    pub items: Vec<RejectedDoc>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// The allowed values of the first parameter enum named in `text` (a parser's message such as
/// `failed to parse "AccountProvider": ...`).
pub fn choices_in(text: &str) -> Option<&'static [&'static str]> {
    [
        ("AccountProvider", AccountProvider::VALUES),
        ("MonitoringKind", MonitoringKind::VALUES),
        ("StatusFilter", StatusFilter::VALUES),
    ]
    .into_iter()
    .find(|(name, _)| text.contains(&format!("{name}\"")))
    .map(|(_, values)| values)
}

/// Declares a monitoring endpoint (published as an event with source `/api`).
#[derive(Debug, Clone, PartialEq, Object)]
pub struct DeclareMonitoring {
    // No doc comment on fields of a named schema (an enum): poem-openapi would write
    // `allOf: [$ref, {description}]`, which generators (openapi-python-client) cannot read.
    pub kind: MonitoringKind,
    /// Endpoint name, the asset's native id: 1-128 characters of `[A-Za-z0-9_-]`.
    pub name: String,
    /// Absolute `http` or `https` URL of the endpoint.
    pub url: String,
    /// Optional labels (at most 64; keys 1-128 characters of `[A-Za-z0-9_./-]`, values up to
    /// 256 characters).
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
}

/// The body of `POST /api/v1/monitoring`: a [`DeclareMonitoring`], whose schema in the spec also
/// states the constraints [`crate::declare`] enforces (and words as problems naming the field).
/// The derive could state them only by enforcing them first, with problems that name no field.
/// OpenAPI 3.0 cannot constrain the keys of a map (`propertyNames`): that rule is in the
/// description of `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclareBody(pub DeclareMonitoring);

/// `name`: 1-128 characters of `[A-Za-z0-9_-]`, not starting with `_h`.
pub const DECLARE_NAME_PATTERN: &str =
    "^(?:[A-Za-z0-9-][A-Za-z0-9_-]{0,127}|_|_[A-Za-gi-z0-9_-][A-Za-z0-9_-]{0,126})$";
/// `url`: the absolute `http(s)` URLs without credentials whose host is a domain name.
pub const DECLARE_URL_PATTERN: &str = "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z][A-Za-z0-9-]*(?:\\.[A-Za-z][A-Za-z0-9-]*)*(?::[0-9]{1,4})?(?:[/?#][!-~]*)?$";
/// Longest `url`.
pub const DECLARE_URL_MAX: usize = 2048;
/// Most labels of a declaration.
pub const DECLARE_LABELS_MAX: usize = 64;
/// Longest label value, in characters.
pub const DECLARE_LABEL_VALUE_MAX: usize = 256;
/// A label value: no control characters.
pub const DECLARE_LABEL_VALUE_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

impl poem_openapi::types::Type for DeclareBody {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        <DeclareMonitoring as poem_openapi::types::Type>::name()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        <DeclareMonitoring as poem_openapi::types::Type>::schema_ref()
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
        <DeclareMonitoring as poem_openapi::types::Type>::register(registry);
        let name = <DeclareMonitoring as poem_openapi::types::Type>::name();
        let Some(schema) = registry.schemas.get_mut(name.as_ref()) else {
            return;
        };
        for (field, prop) in &mut schema.properties {
            let MetaSchemaRef::Inline(prop) = prop else {
                continue;
            };
            match *field {
                "name" => prop.pattern = Some(DECLARE_NAME_PATTERN.to_owned()),
                "url" => {
                    prop.pattern = Some(DECLARE_URL_PATTERN.to_owned());
                    prop.max_length = Some(DECLARE_URL_MAX);
                }
                "labels" => {
                    prop.max_properties = Some(DECLARE_LABELS_MAX);
                    prop.additional_properties =
                        Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema {
                            max_length: Some(DECLARE_LABEL_VALUE_MAX),
                            pattern: Some(DECLARE_LABEL_VALUE_PATTERN.to_owned()),
                            ..MetaSchema::new("string")
                        }))));
                }
                _ => {}
            }
        }
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl poem_openapi::types::ParseFromJSON for DeclareBody {
    /// As [`DeclareMonitoring`] parses, but without turning numbers and booleans into strings
    /// (poem-openapi's `String` takes them): a member of another type than the spec's is refused.
    fn parse_from_json(value: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        let wrong = |field: &str, what: &str| {
            poem_openapi::types::ParseError::custom(format!("{field} must be {what}"))
        };
        if let Some(Value::Object(body)) = &value {
            for field in ["kind", "name", "url"] {
                if body.get(field).is_some_and(|v| !v.is_string()) {
                    return Err(wrong(field, "a string"));
                }
            }
            match body.get("labels") {
                None => {}
                Some(Value::Object(labels)) if labels.values().all(Value::is_string) => {}
                Some(_) => return Err(wrong("labels", "an object of strings")),
            }
        }
        <DeclareMonitoring as poem_openapi::types::ParseFromJSON>::parse_from_json(value)
            .map(Self)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl poem_openapi::types::ToJSON for DeclareBody {
    fn to_json(&self) -> Option<Value> {
        poem_openapi::types::ToJSON::to_json(&self.0)
    }
}

/// What a declaration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum DeclareOutcome {
    /// A `discovered` event was published (the endpoint was not on the stream).
    Discovered,
    /// A `changed` event was published (the declaration differs from the newest event).
    Changed,
    /// Nothing was published: the newest event already says this.
    Unchanged,
}

/// The result of a declaration.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct Declared {
    /// The asset key, e.g. `prometheus/endpoint/prom-main`.
    pub key: String,
    /// The NATS subject of the asset's events.
    pub subject: String,
    /// Stream sequence of the event now describing the endpoint (the new one, or the existing
    /// one when unchanged).
    pub seq: u64,
    pub outcome: DeclareOutcome,
    /// Content hash of the declared state.
    pub contenthash: String,
    /// The normalised asset document now on the stream.
    pub data: Value,
}

/// Readiness of this replica.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct Readiness {
    /// Always true in a 200 answer.
    pub ready: bool,
    /// Last stream sequence applied to the read model.
    pub applied_seq: u64,
    /// The stream's last sequence when the projector started.
    pub tip_at_start: u64,
    /// Events in the stream not yet applied.
    pub lag: u64,
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::{ParseFromParameter, ToJSON};

    use super::*;

    #[test]
    fn facets_are_read_from_well_formed_and_odd_documents() {
        let f = Facets::of(
            r#"{"org_path":["r","ou"],"labels":{"team":"sre"},"url":"https://x","raw":{"a":[1]}}"#,
        );
        assert_eq!(f.org_path, ["r", "ou"]);
        assert_eq!(f.labels["team"], "sre");
        assert_eq!(f.url.as_deref(), Some("https://x"));
        // A label that is not a string, an org path that is not an array, a null url.
        let f = Facets::of(r#"{"org_path":"r","labels":{"team":"sre","n":1},"url":null}"#);
        assert!(f.org_path.is_empty());
        assert_eq!(f.labels.len(), 1);
        assert_eq!(f.url, None);
        let f = Facets::of(r#"{"org_path":["r",2],"url":5}"#);
        assert_eq!((f.org_path, f.url), (vec!["r".to_owned()], None));
        assert!(Facets::of("[1]").labels.is_empty());
    }

    #[test]
    fn choice_values_are_what_the_wire_and_the_spec_use() {
        for v in StatusFilter::VALUES {
            let parsed = StatusFilter::parse_from_parameter(v).unwrap();
            assert_eq!(parsed.as_str(), *v);
            assert_eq!(parsed.to_json(), Some(Value::String((*v).to_owned())));
        }
        for v in AccountProvider::VALUES {
            assert_eq!(
                AccountProvider::parse_from_parameter(v).unwrap().as_str(),
                *v
            );
        }
        for v in MonitoringKind::VALUES {
            assert_eq!(
                MonitoringKind::parse_from_parameter(v).unwrap().provider(),
                *v
            );
        }
        use inventory_schemas::AssetStatus as S;
        for s in [
            S::Active,
            S::Suspended,
            S::PendingClosure,
            S::Closed,
            S::Up,
            S::Down,
            S::Declared,
            S::Unknown,
        ] {
            assert!(StatusFilter::VALUES.contains(&s.as_str()), "{s:?}");
        }
    }

    #[test]
    fn choices_are_found_by_type_name() {
        let msg = r#"failed to parse "AccountProvider": Expect a valid enumeration value. (occurred while parsing "optional_AccountProvider")"#;
        assert_eq!(choices_in(msg), Some(AccountProvider::VALUES));
        assert_eq!(
            choices_in(r#"Expected input type "MonitoringKind", found "loki"."#),
            Some(MonitoringKind::VALUES)
        );
        assert_eq!(choices_in("failed to parse \"integer_int64\""), None);
    }
}

/// How many assets of a listing there are per value of each facet (`GET /api/v1/assets/facets`).
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct AssetFacets {
    /// Assets matching the whole filter (every page of `GET /api/v1/assets` with it).
    pub total: u64,
    /// Assets per provider, every provider.
    pub provider: Vec<FacetValue>,
    /// Assets per kind, every kind.
    pub kind: Vec<FacetValue>,
    /// Assets per status, every status.
    pub status: Vec<FacetValue>,
    /// Assets per org path prefix (an asset counts under each prefix of its path), the 20 most
    /// frequent; null with `as_of` (past views hold no org paths without reading documents).
    #[oai(nullable)]
    pub org_path: Option<TopFacetValues>,
    /// Assets per label `key:value`, the 20 most frequent; null with `as_of`.
    #[oai(nullable)]
    pub labels: Option<TopFacetValues>,
    /// With `as_of`: the stream sequence the view stands at; null for the current view.
    #[oai(nullable)]
    pub as_of_seq: Option<u64>,
}

/// One value of a facet and how many assets have it.
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

/// The most frequent values of a facet, most frequent first (ties by value).
#[derive(Debug, Clone, PartialEq, Object, Serialize)]
pub struct TopFacetValues {
    pub values: Vec<FacetValue>,
    /// Distinct values left off.
    pub more: u64,
}
