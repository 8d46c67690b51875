//! An Organizations account and its path → the `aws/account/<id>` asset.

use std::collections::BTreeMap;

use aws_sdk_organizations as org;
use aws_sdk_organizations::types::Account;
use inventory_schemas::{Asset, AssetStatus, Provenance};
use serde_json::json;

use super::{KIND, PROVIDER};
use crate::sources::shared::strip_nulls;

/// Builds the account asset. `org_path` holds ids (root, OUs); the names are in
/// `raw.OrgPathNames`.
pub(super) fn normalise(
    account: &Account,
    path: &[String],
    path_names: &[String],
    labels: BTreeMap<String, String>,
    provenance: Provenance,
) -> Asset {
    let id = account.id().unwrap_or_default().to_owned();
    let status_word = account.status().map(|s| s.as_str().to_owned());
    let status = match status_word.as_deref() {
        Some("ACTIVE") => AssetStatus::Active,
        Some("SUSPENDED") => AssetStatus::Suspended,
        Some("PENDING_CLOSURE") => AssetStatus::PendingClosure,
        _ => AssetStatus::Unknown,
    };
    let joined = account
        .joined_timestamp()
        .and_then(|t| t.fmt(aws_smithy_types_format()).ok());
    let raw = json!({
        "Id": id,
        "Arn": account.arn(),
        "Email": account.email(),
        "Name": account.name(),
        "Status": status_word,
        "JoinedMethod": account.joined_method().map(|m| m.as_str().to_owned()),
        "JoinedTimestamp": joined,
        "ParentId": path.last(),
        "OrgPathNames": path_names,
    });
    Asset {
        name: account.name().unwrap_or(&id).to_owned(),
        id,
        provider: PROVIDER.to_owned(),
        kind: KIND.to_owned(),
        status,
        org_path: path.to_vec(),
        region_residency: Vec::new(),
        url: None,
        auth_mode: None,
        labels,
        raw: strip_nulls(raw),
        provenance,
    }
}

fn aws_smithy_types_format() -> org::primitives::DateTimeFormat {
    org::primitives::DateTimeFormat::DateTime
}
