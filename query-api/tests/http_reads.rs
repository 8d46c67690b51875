//! The read endpoints through `TestClient` over a real store filled with real encoded events.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use common::{asset, json, keys, problem, Fixture};
use inventory_query_api::TokenSet;
use inventory_schemas::{AssetStatus, SweepStatus};
use poem::test::TestClient;

/// 30 assets over several providers, kinds and statuses.
fn estate(f: &mut Fixture) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..12 {
        let status = if i % 4 == 0 {
            AssetStatus::Suspended
        } else {
            AssetStatus::Active
        };
        let a = asset(
            "aws",
            "account",
            &format!("1000000000{i:02}"),
            &format!("Prod-Team {i}"),
            status,
        );
        f.put(&a);
        all.push(a.key().unwrap().to_string());
    }
    for i in 0..8 {
        let a = asset(
            "gcp",
            "project",
            &format!("proj-{i}"),
            &format!("gcp project {i}"),
            AssetStatus::Active,
        );
        f.put(&a);
        all.push(a.key().unwrap().to_string());
    }
    for i in 0..4 {
        let a = asset(
            "azure",
            "subscription",
            &format!("0000-{i}"),
            &format!("sub {i}"),
            AssetStatus::Active,
        );
        f.put(&a);
        all.push(a.key().unwrap().to_string());
    }
    for (p, n) in [("prometheus", 3), ("grafana", 2)] {
        for i in 0..n {
            let a = asset(
                p,
                "endpoint",
                &format!("{p}-{i}"),
                &format!("{p} {i}"),
                AssetStatus::Up,
            );
            f.put(&a);
            all.push(a.key().unwrap().to_string());
        }
    }
    let bucket = asset("aws", "bucket", "logs", "logs bucket", AssetStatus::Active);
    f.put(&bucket);
    all.push(bucket.key().unwrap().to_string());
    all.sort();
    all
}

async fn walk(
    client: &TestClient<impl poem::Endpoint>,
    path: &str,
    limit: u32,
) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = client.get(path).query("limit", &limit);
        if let Some(c) = &cursor {
            req = req.query("cursor", c);
        }
        let (status, _, body) = json(req.send().await).await;
        assert_eq!(status, 200, "{body}");
        let page = keys(&body);
        assert!(page.len() <= limit as usize);
        seen.extend(page);
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (seen, pages)
}

#[tokio::test]
async fn paging_covers_everything_once_in_key_order_and_is_stable() {
    let mut f = Fixture::new();
    let all = estate(&mut f);
    let client = f.client();
    for limit in [1, 7, 30, 31, 1000] {
        let (seen, pages) = walk(&client, "/api/v1/assets", limit).await;
        assert_eq!(seen, all, "limit {limit}");
        assert_eq!(
            pages,
            all.len().div_ceil(limit as usize).max(1),
            "limit {limit}"
        );
    }
    // The same request gives the same page.
    let a = json(client.get("/api/v1/assets").query("limit", &5).send().await)
        .await
        .2;
    let b = json(client.get("/api/v1/assets").query("limit", &5).send().await)
        .await
        .2;
    assert_eq!(a, b);
    // A cursor stays valid while assets are added before and after it.
    let cursor = a["next_cursor"].as_str().unwrap().to_owned();
    f.put(&asset("aaa", "account", "0", "first", AssetStatus::Active));
    f.put(&asset("zzz", "account", "0", "last", AssetStatus::Active));
    let next = json(
        client
            .get("/api/v1/assets")
            .query("limit", &5)
            .query("cursor", &cursor)
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(keys(&next), all[5..10].to_vec());
}

#[tokio::test]
async fn filters_combine() {
    let mut f = Fixture::new();
    estate(&mut f);
    let client = f.client();
    let get = |q: &'static [(&'static str, &'static str)]| {
        let mut r = client.get("/api/v1/assets");
        for (k, v) in q {
            r = r.query(*k, v);
        }
        async move { json(r.send().await).await.2 }
    };
    let aws = get(&[("provider", "aws")]).await;
    assert_eq!(keys(&aws).len(), 13);
    assert!(keys(&aws).iter().all(|k| k.starts_with("aws/")));
    assert_eq!(
        keys(&get(&[("provider", "aws"), ("kind", "account")]).await).len(),
        12
    );
    let suspended = get(&[("provider", "aws"), ("status", "suspended")]).await;
    assert_eq!(
        keys(&suspended),
        [
            "aws/account/100000000000",
            "aws/account/100000000004",
            "aws/account/100000000008"
        ]
    );
    let named = get(&[("name", "prod-team 1")]).await; // case-insensitive substring: 1, 10, 11
    assert_eq!(keys(&named).len(), 3, "{named}");
    assert_eq!(
        keys(&get(&[("kind", "endpoint"), ("status", "up")]).await).len(),
        5
    );
    assert!(keys(&get(&[("provider", "ibm")]).await).is_empty());
}

#[tokio::test]
async fn an_asset_and_its_full_document() {
    let mut f = Fixture::new();
    let a = asset(
        "aws",
        "account",
        "123456789012",
        "prod",
        AssetStatus::Active,
    );
    f.put(&a);
    let mut renamed = a.clone();
    renamed.name = "production".into();
    let seq = f.put(&renamed);
    let nested = asset(
        "gcp",
        "project",
        "folders/1/projects/x y",
        "nested",
        AssetStatus::Active,
    );
    let last = f.put(&nested);
    let client = f.client();

    let resp = client
        .get("/api/v1/assets/aws%2Faccount%2F123456789012")
        .send()
        .await;
    // The answer names the committed checkpoint it was read at.
    resp.assert_header("Inventory-Seq", last.to_string());
    let (status, ct, body) = json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    assert_eq!(body["key"], "aws/account/123456789012");
    assert_eq!(body["id"], "123456789012");
    assert_eq!(body["name"], "production");
    assert_eq!(body["status"], "active");
    assert_eq!(body["version"], seq);
    assert_eq!(body["org_path"], serde_json::json!(["r-root", "ou-prod"]));
    assert_eq!(body["labels"]["team"], "sre");
    assert!(body["deleted_at"].is_null());
    assert_eq!(body["contenthash"].as_str().unwrap().len(), 64);
    assert_eq!(body["data"]["raw"]["native"], "123456789012");
    assert_eq!(body["data"]["provenance"]["collector"], "aws");
    for field in ["first_seen", "last_changed", "last_seen"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }

    // The tail form and the encoded form reach the same asset, slashes in the native id included.
    let tail = json(
        client
            .get("/api/v1/assets/aws/account/123456789012")
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(tail, body);
    for path in [
        "/api/v1/assets/gcp/project/folders/1/projects/x%20y",
        "/api/v1/assets/gcp%2Fproject%2Ffolders%2F1%2Fprojects%2Fx%20y",
    ] {
        let (status, _, got) = json(client.get(path).send().await).await;
        assert_eq!(status, 200, "{path}: {got}");
        assert_eq!(got["id"], "folders/1/projects/x y");
    }

    let missing = problem(
        client.get("/api/v1/assets/aws/account/999").send().await,
        404,
    )
    .await;
    assert!(
        missing["detail"]
            .as_str()
            .unwrap()
            .contains("aws/account/999"),
        "{missing}"
    );
    let bad = problem(client.get("/api/v1/assets/nokey").send().await, 400).await;
    assert_eq!(bad["parameter"], "key");
    assert!(
        bad["detail"]
            .as_str()
            .unwrap()
            .contains("<provider>/<kind>/<native id>"),
        "{bad}"
    );
}

#[tokio::test]
async fn deleted_assets_are_hidden_unless_asked_for_and_found_by_key() {
    let mut f = Fixture::new();
    let keep = asset("aws", "account", "1", "keep", AssetStatus::Active);
    let gone = asset("aws", "account", "2", "gone", AssetStatus::Active);
    f.put(&keep);
    f.put(&gone);
    f.delete(&gone);
    let client = f.client();
    let live = json(client.get("/api/v1/assets").send().await).await.2;
    assert_eq!(keys(&live), ["aws/account/1"]);
    let accounts = json(client.get("/api/v1/accounts").send().await).await.2;
    assert_eq!(keys(&accounts), ["aws/account/1"]);
    let with = json(
        client
            .get("/api/v1/assets")
            .query("include_deleted", &true)
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(keys(&with), ["aws/account/1", "aws/account/2"]);
    assert!(with["items"][1]["deleted_at"].is_string());
    let one = json(client.get("/api/v1/assets/aws/account/2").send().await).await;
    assert_eq!(one.0, 200);
    assert!(one.2["deleted_at"].is_string());
    assert_eq!(one.2["name"], "gone");
    assert_eq!(one.2["data"]["name"], "gone", "last known state is kept");
}

#[tokio::test]
async fn accounts_and_monitoring_list_their_own_kinds() {
    let mut f = Fixture::new();
    let all = estate(&mut f);
    let client = f.client();
    let (accounts, _) = walk(&client, "/api/v1/accounts", 5).await;
    let expected: Vec<_> = all
        .iter()
        .filter(|k| {
            k.contains("/account/") || k.contains("/project/") || k.contains("/subscription/")
        })
        .cloned()
        .collect();
    assert_eq!(accounts, expected);
    assert_eq!(accounts.len(), 24);
    let gcp = json(
        client
            .get("/api/v1/accounts")
            .query("provider", &"gcp")
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(keys(&gcp).len(), 8);
    assert!(keys(&gcp).iter().all(|k| k.starts_with("gcp/project/")));
    let suspended = json(
        client
            .get("/api/v1/accounts")
            .query("status", &"suspended")
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(keys(&suspended).len(), 3);

    let (monitoring, _) = walk(&client, "/api/v1/monitoring", 2).await;
    assert_eq!(
        monitoring,
        [
            "grafana/endpoint/grafana-0",
            "grafana/endpoint/grafana-1",
            "prometheus/endpoint/prometheus-0",
            "prometheus/endpoint/prometheus-1",
            "prometheus/endpoint/prometheus-2"
        ]
    );
    let prom = json(
        client
            .get("/api/v1/monitoring")
            .query("kind", &"prometheus")
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(keys(&prom).len(), 3);
    assert_eq!(prom["items"][0]["url"], "http://prometheus-0.example:9090/");
    let grafana = json(
        client
            .get("/api/v1/monitoring")
            .query("kind", &"grafana")
            .send()
            .await,
    )
    .await
    .2;
    assert_eq!(keys(&grafana).len(), 2);
}

#[tokio::test]
async fn bad_parameters_are_400_problems_naming_the_parameter() {
    let f = Fixture::new();
    let client = f.client();
    let cases: [(&str, &str, &str, &str); 9] = [
        ("/api/v1/assets?limit=0", "limit", "between 1 and 1000", ""),
        (
            "/api/v1/assets?limit=1001",
            "limit",
            "between 1 and 1000",
            "",
        ),
        (
            "/api/v1/assets?limit=ten",
            "limit",
            "integer between 1 and 1000",
            "",
        ),
        ("/api/v1/assets?cursor=%21%21", "cursor", "next_cursor", ""),
        (
            "/api/v1/assets?status=sideways",
            "status",
            "status must be one of active, suspended, pending_closure",
            "",
        ),
        (
            "/api/v1/assets?provider=AWS",
            "provider",
            "[a-z0-9_-]",
            "AWS",
        ),
        (
            "/api/v1/accounts?provider=ibm",
            "provider",
            "provider must be one of aws, gcp, azure",
            "",
        ),
        (
            "/api/v1/monitoring?kind=loki",
            "kind",
            "kind must be one of prometheus, grafana",
            "",
        ),
        (
            "/api/v1/assets?include_deleted=maybe",
            "include_deleted",
            "true or false",
            "",
        ),
    ];
    for (path, param, needle, echoed) in cases {
        let body = problem(client.get(path).send().await, 400).await;
        assert_eq!(body["parameter"], param, "{path}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(needle), "{path}: {detail}");
        assert!(detail.contains(echoed), "{path}: {detail}");
    }
}

#[tokio::test]
async fn collectors_report_freshness_and_staleness() {
    let mut f = Fixture::new();
    f.sweep("aws", "o-fresh", SweepStatus::Ok, Duration::minutes(5));
    f.sweep("aws", "o-old", SweepStatus::Ok, Duration::minutes(40));
    f.sweep("gcp", "org-1", SweepStatus::Ok, Duration::minutes(6));
    f.sweep("gcp", "org-1", SweepStatus::Failed, Duration::minutes(1));
    f.sweep("azure", "tenant", SweepStatus::Failed, Duration::minutes(1));
    let client = f.client();
    let (status, _, body) = json(client.get("/api/v1/collectors").send().await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expected_interval_seconds"], 900);
    let items = body["items"].as_array().unwrap();
    let by_source = |s: &str| items.iter().find(|i| i["source"] == s).unwrap().clone();
    let fresh = by_source("/collectors/aws/o-fresh");
    assert_eq!(fresh["stale"], false);
    assert_eq!(fresh["last_status"], "ok");
    assert_eq!(fresh["provider"], "aws");
    assert_eq!(fresh["scope"], "o-fresh");
    assert_eq!(fresh["counts"]["seen"], 3);
    assert_eq!(fresh["runs"], 1);
    let age = fresh["age_seconds"].as_i64().unwrap();
    assert!((299..=310).contains(&age), "{age}");
    assert_eq!(by_source("/collectors/aws/o-old")["stale"], true);
    let failing = by_source("/collectors/gcp/org-1");
    assert_eq!(failing["last_status"], "failed");
    assert_eq!(failing["error"], "AccessDenied");
    assert!(failing["last_ok_at"].is_string());
    assert_eq!(
        failing["stale"], false,
        "an ok sweep 6 min ago is recent enough"
    );
    assert_eq!(failing["runs"], 2);
    let never = by_source("/collectors/azure/tenant");
    assert!(never["last_ok_at"].is_null());
    assert_eq!(never["stale"], true);

    // The interval is configurable: with 1 h, 40 min is fresh.
    let relaxed = f
        .state(TokenSet::default())
        .with_sweep_interval(std::time::Duration::from_secs(3600));
    let client = TestClient::new(inventory_query_api::app(relaxed));
    let body = json(client.get("/api/v1/collectors").send().await).await.2;
    let stale: BTreeSet<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["stale"] == true)
        .map(|i| i["source"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        stale,
        BTreeSet::from(["/collectors/azure/tenant".to_owned()])
    );
}
