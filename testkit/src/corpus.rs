//! Realistic events for benchmarks: what the AWS Organizations collector reports for an account.

use inventory_schemas::{Asset, AssetStatus, Provenance};

/// An AWS account as the Organizations collector reports it, version `v`.
pub fn account(i: u64, v: u64) -> Asset {
    let id = format!("{:012}", 100_000_000_000 + i);
    let ou = [
        "ou-prod-1a2b3c4d",
        "ou-stage-5e6f7a8b",
        "ou-sandbox-9c0d1e2f",
    ][(i % 3) as usize];
    Asset {
        id: id.clone(),
        provider: "aws".into(),
        kind: "account".into(),
        name: format!(
            "workload-{i}-{}",
            ["payments", "search", "ml", "edge"][(i % 4) as usize]
        ),
        status: if v % 7 == 6 {
            AssetStatus::Suspended
        } else {
            AssetStatus::Active
        },
        org_path: vec!["r-a1b2".into(), "ou-a1b2-workloads".into(), ou.into()],
        region_residency: vec!["eu-west-1".into(), "eu-central-1".into()],
        url: None,
        auth_mode: None,
        labels: [
            ("cost-center", format!("cc-{}", i % 97)),
            ("owner", format!("team-{}@example.com", i % 31)),
            (
                "environment",
                ["prod", "stage", "dev"][(i % 3) as usize].to_owned(),
            ),
            ("data-classification", "internal".to_owned()),
            ("revision", v.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        raw: serde_json::json!({
            "Id": id,
            "Arn": format!("arn:aws:organizations::111122223333:account/o-exampleorgid/{id}"),
            "Email": format!("aws+workload-{i}@example.com"),
            "Name": format!("workload-{i}"),
            "Status": "ACTIVE",
            "JoinedMethod": if i.is_multiple_of(5) { "INVITED" } else { "CREATED" },
            "JoinedTimestamp": "2021-03-04T10:11:12Z",
        }),
        provenance: Provenance {
            collector: "aws".into(),
            collector_version: "0.1.0".into(),
            api: "organizations:ListAccounts,organizations:ListParents".into(),
            request_ids: vec![format!("5f1c6d7e-{v:04x}-4bd8-9a3e-2c1b0a9f8e7d")],
            pages: 1 + (i / 20) as u32,
            principal: Some("arn:aws:sts::111122223333:assumed-role/OrgAudit/inventory".into()),
        },
    }
}

/// A `file` source document (`inventory collect file --file`) declaring `n` AWS accounts
/// (ids 300000000000 + i); the first `renamed` have a new name. Used by `tests/cluster.rs` and
/// `benches/cluster.rs` (issue 13: a sweep of 10,000 assets that renames 1,000).
pub fn estate(n: usize, renamed: usize) -> String {
    let mut s = String::with_capacity(n * 90);
    s.push_str("assets:\n");
    for i in 0..n {
        let suffix = if i < renamed { "-renamed" } else { "" };
        s.push_str(&format!(
            "  - provider: aws\n    kind: account\n    id: \"{:012}\"\n    name: acct-{i}{suffix}\n    status: active\n",
            300_000_000_000u64 + i as u64
        ));
    }
    s
}
