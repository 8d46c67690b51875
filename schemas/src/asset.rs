//! The `data` payloads of the four event types.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::key::AssetKey;
use crate::SchemaError;

/// The normalised state of an asset, as every collector reports it (`data` of `discovered` and
/// `changed` events).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// The provider's own id of the asset (account id, project id, subscription GUID, endpoint name).
    pub id: String,
    /// `aws`, `gcp`, `azure`, `prometheus`, `grafana`, ...
    pub provider: String,
    /// `account`, `project`, `subscription`, `endpoint`, ...
    pub kind: String,
    /// Human-readable name.
    pub name: String,
    /// Normalised lifecycle or health status.
    pub status: AssetStatus,
    /// Organisational path from the root to the asset's parent (AWS OUs, GCP folders, Azure
    /// management groups).
    #[serde(default)]
    pub org_path: Vec<String>,
    /// Regions or jurisdictions the provider says the asset's data resides in.
    #[serde(default)]
    pub region_residency: Vec<String>,
    /// Where the asset answers (monitoring endpoints) or its console URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How the collector authenticates to the asset (`none`, `bearer`, ...); never the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<String>,
    /// Tags or labels, as the provider reports them.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The provider's own record, minus volatile fields.
    #[serde(default)]
    #[schemars(with = "serde_json::Value")]
    pub raw: serde_json::Value,
    /// Where this observation came from. Excluded from the content hash.
    pub provenance: Provenance,
}

impl Asset {
    /// The asset's key, validated.
    pub fn key(&self) -> Result<AssetKey, SchemaError> {
        AssetKey::new(&self.provider, &self.kind, &self.id)
    }
}

/// Normalised status of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    /// In use (account/project/subscription active).
    Active,
    /// Suspended or disabled by the provider or the organisation.
    Suspended,
    /// Closure or deletion requested, not yet final.
    PendingClosure,
    /// Closed or deleted at the provider (but still reported).
    Closed,
    /// A monitoring endpoint that answered its health check.
    Up,
    /// A monitoring endpoint that did not answer or answered unhealthy.
    Down,
    /// Declared by hand or through the API, not yet observed.
    Declared,
    /// The provider reported a state this version does not know.
    Unknown,
}

impl AssetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::PendingClosure => "pending_closure",
            Self::Closed => "closed",
            Self::Up => "up",
            Self::Down => "down",
            Self::Declared => "declared",
            Self::Unknown => "unknown",
        }
    }
}

/// Where an observation came from. Never holds a secret or a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Collector name (`file`, `prometheus`, `grafana`, `aws`, ..., or `api`).
    pub collector: String,
    /// Version of the collector that made the observation.
    pub collector_version: String,
    /// The API operation(s) called, e.g. `GET /api/v1/status/buildinfo`.
    pub api: String,
    /// Request ids the provider returned, for support cases and audit.
    #[serde(default)]
    pub request_ids: Vec<String>,
    /// Number of pages read in the listing that produced this record.
    #[serde(default)]
    pub pages: u32,
    /// The principal (role ARN, service account, user) the collector acted as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// `data` of a `deleted` event: the asset was absent from a complete sweep of its scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// The provider's own id of the deleted asset.
    pub id: String,
    pub provider: String,
    pub kind: String,
    /// Last known name.
    pub name: String,
    /// Why it is considered deleted.
    pub reason: String,
    /// Content hash of the asset's last state.
    pub last_contenthash: String,
    pub provenance: Provenance,
}

impl Tombstone {
    pub fn key(&self) -> Result<AssetKey, SchemaError> {
        AssetKey::new(&self.provider, &self.kind, &self.id)
    }
}

/// Outcome of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SweepStatus {
    /// Every page was read; tombstones were written where due.
    Ok,
    /// Some pages failed or deletions were withheld: no tombstones were written.
    Partial,
    /// Nothing could be read (bad credentials, unreachable API).
    Failed,
}

impl SweepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }
}

/// Counts of one sweep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepCounts {
    /// Assets the provider reported.
    pub seen: u64,
    pub discovered: u64,
    pub changed: u64,
    pub deleted: u64,
    pub unchanged: u64,
    /// Deletions withheld by the mass-deletion guard or because the sweep was incomplete.
    pub deletions_withheld: u64,
}

/// `data` of a `sweep.completed` event: one per collector run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepCompleted {
    /// Collector name.
    pub collector: String,
    /// Provider whose assets the sweep covers (`file` for declared assets).
    pub provider: String,
    /// The collector's scope (organisation id, file name, endpoint name).
    pub scope: String,
    pub status: SweepStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub counts: SweepCounts,
    /// What went wrong, for `partial` and `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub provenance: Provenance,
}
