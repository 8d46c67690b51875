//! A Resource Manager project → the `gcp/project/<projectId>` asset.

use std::collections::BTreeMap;

use google_cloud_resourcemanager_v3::model::{project, Project};
use inventory_schemas::{Asset, AssetStatus, Provenance};
use serde_json::Value;

use super::{KIND, PROVIDER};

/// Builds the project asset: `org_path` is root first (`organizations/1`, `folders/..`, the
/// parent); `raw` is the project record without `etag` and `updateTime`, plus `projectNumber`.
pub(super) fn normalise(p: &Project, org_path: Vec<String>, provenance: Provenance) -> Asset {
    let mut raw = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut raw {
        m.remove("etag");
        m.remove("updateTime");
        // The client asks for enums as numbers; record the API's own names.
        if let Some(state) = p.state.name() {
            m.insert("state".into(), Value::String(state.to_owned()));
        }
        if let Some(n) = p.name.strip_prefix("projects/") {
            m.insert("projectNumber".into(), Value::String(n.to_owned()));
        }
    }
    let status = match p.state {
        project::State::Active => AssetStatus::Active,
        project::State::DeleteRequested => AssetStatus::PendingClosure,
        _ => AssetStatus::Unknown,
    };
    Asset {
        id: p.project_id.clone(),
        provider: PROVIDER.to_owned(),
        kind: KIND.to_owned(),
        name: if p.display_name.is_empty() {
            p.project_id.clone()
        } else {
            p.display_name.clone()
        },
        status,
        org_path,
        region_residency: Vec::new(),
        url: Some(format!(
            "https://console.cloud.google.com/home/dashboard?project={}",
            p.project_id
        )),
        auth_mode: None,
        labels: p
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        raw,
        provenance,
    }
}
