//! What a Prometheus server said → its endpoint asset.

use inventory_schemas::{Asset, AssetStatus};
use serde_json::{Map, Value};

use super::{API, PROVIDER};
use crate::source::provenance;

/// Builds the endpoint asset from what the server said.
pub(super) fn normalise(name: &str, url: &str, up: bool, raw: Map<String, Value>) -> Asset {
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
        auth_mode: Some("none".to_owned()),
        labels: Default::default(),
        raw: Value::Object(raw),
        provenance: provenance(PROVIDER, API),
    }
}
