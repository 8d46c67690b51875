//! What the sources share, in one place: settings parsing and validation ([`config`]: the
//! errors that name a setting, endpoint URLs, names, the clap value parsers of seconds and
//! booleans), the HTTP client and the one bounded reader of provider answers ([`http`]), the
//! retry machinery ([`retry`]), two small text helpers, and the asset of a monitoring endpoint
//! ([`endpoint_asset`]).
//!
//! A helper two sources need goes here; one only a single source needs stays in its folder.

pub mod config;
pub(crate) mod http;
pub(crate) mod retry;

use inventory_schemas::{Asset, AssetStatus};
use serde_json::Value;

use crate::source::provenance;

/// Collapses any run of whitespace (newlines included) to one space: provider errors in one
/// line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Drops the `null` members of a JSON object (fields a provider left out), so that an absent
/// field and a missing one record the same.
pub(crate) fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// The asset of a monitoring endpoint (Prometheus, Grafana): named by its configured name, `up`
/// or `down`, with its URL, how the collector authenticated, and what the server said (`raw`).
pub(crate) fn endpoint_asset(
    provider: &str,
    api: &str,
    name: &str,
    url: &str,
    up: bool,
    auth_mode: &str,
    raw: Value,
) -> Asset {
    Asset {
        id: name.to_owned(),
        provider: provider.to_owned(),
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
        raw,
        provenance: provenance(provider, api),
    }
}
