//! Grafana's health document → its endpoint asset.

use inventory_schemas::Asset;
use serde_json::json;

use super::client::Health;
use super::{API, PROVIDER};
use crate::sources::shared::{endpoint_asset, strip_nulls};

/// Builds the endpoint asset: `up` when the database is `ok`; no document means `down`.
pub(super) fn normalise(name: &str, url: &str, auth_mode: &str, health: Option<&Health>) -> Asset {
    let up = health.is_some_and(|h| h.database == "ok");
    let raw = match health {
        Some(h) => json!({ "version": h.version, "commit": h.commit }),
        None => json!({}),
    };
    endpoint_asset(PROVIDER, API, name, url, up, auth_mode, strip_nulls(raw))
}
