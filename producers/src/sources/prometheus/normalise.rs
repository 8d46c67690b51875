//! What a Prometheus server said → its endpoint asset.

use inventory_schemas::Asset;
use serde_json::{Map, Value};

use super::{API, PROVIDER};
use crate::sources::shared::endpoint_asset;

/// Builds the endpoint asset from what the server said.
pub(super) fn normalise(name: &str, url: &str, up: bool, raw: Map<String, Value>) -> Asset {
    endpoint_asset(PROVIDER, API, name, url, up, "none", Value::Object(raw))
}
