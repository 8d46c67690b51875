//! Grafana's health document → its endpoint asset.

use inventory_schemas::{Asset, AssetStatus};
use serde_json::json;

use super::client::Health;
use super::{API, PROVIDER};
use crate::source::provenance;
use crate::sources::shared::strip_nulls;

/// Builds the endpoint asset: `up` when the database is `ok`; no document means `down`.
pub(super) fn normalise(name: &str, url: &str, auth_mode: &str, health: Option<&Health>) -> Asset {
    let up = health.is_some_and(|h| h.database == "ok");
    let raw = match health {
        Some(h) => json!({ "version": h.version, "commit": h.commit }),
        None => json!({}),
    };
    Asset {
        id: name.to_owned(),
        provider: PROVIDER.to_owned(),
        kind: "endpoint".to_owned(),
        name: name.to_owned(),
        status: if up {
            AssetStatus::Up
        } else {
            AssetStatus::Down
        },
        org_path: Vec::new(),
        region_residency: Vec::new(),
        url: Some(url.to_owned()),
        auth_mode: Some(auth_mode.to_owned()),
        labels: Default::default(),
        raw: strip_nulls(raw),
        provenance: provenance(PROVIDER, API),
    }
}
