//! An ARM subscription record → the `azure/subscription/<GUID>` asset.

use std::collections::BTreeMap;

use inventory_schemas::{Asset, AssetStatus, Provenance};
use serde_json::Value;

use super::{KIND, PROVIDER, SUBSCRIPTIONS_API};
use crate::source::SourceError;

/// Maps ARM's subscription `state` to the asset status (see the module docs).
pub(super) fn status(state: &str) -> AssetStatus {
    match state {
        "Enabled" | "Warned" | "PastDue" => AssetStatus::Active,
        "Disabled" | "Expired" => AssetStatus::Suspended,
        "Deleted" => AssetStatus::Closed,
        _ => AssetStatus::Unknown,
    }
}

/// Builds the subscription asset from its ARM record.
pub(super) fn normalise(
    record: Value,
    org_path: Vec<String>,
    provenance: Provenance,
) -> Result<Asset, SourceError> {
    let text = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = text("subscriptionId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            SourceError::BadResponse(format!(
                "ARM {SUBSCRIPTIONS_API}: a subscription without subscriptionId: {}",
                record.get("id").unwrap_or(&Value::Null)
            ))
        })?;
    let labels: BTreeMap<String, String> = record
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Asset {
        name: text("displayName").unwrap_or_else(|| id.clone()),
        status: status(text("state").as_deref().unwrap_or_default()),
        url: Some(format!(
            "https://portal.azure.com/#resource/subscriptions/{id}/overview"
        )),
        id,
        provider: PROVIDER.to_owned(),
        kind: KIND.to_owned(),
        org_path,
        region_residency: Vec::new(),
        auth_mode: None,
        labels,
        raw: record,
        provenance,
    })
}
