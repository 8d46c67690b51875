//! Auth, the spec, metrics, probes and framework errors through `TestClient`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{asset, json, problem, Fixture};
use inventory_projector::Status;
use inventory_query_api::{Role, TokenSet};
use inventory_schemas::{AssetStatus, SweepStatus};
use poem::test::TestClient;
use serde_json::Value;

fn tokens() -> TokenSet {
    TokenSet::from_tokens(&[
        (Role::Viewer, "viewer-token"),
        (Role::Writer, "writer-token"),
    ])
}

fn declaration() -> Value {
    serde_json::json!({ "kind": "prometheus", "name": "prom-main", "url": "http://prom:9090" })
}

#[tokio::test]
async fn reads_need_a_token_once_viewer_tokens_exist() {
    let mut f = Fixture::new();
    f.put(&asset("aws", "account", "1", "one", AssetStatus::Active));
    let client = TestClient::new(inventory_query_api::app(f.state(tokens())));
    for path in [
        "/api/v1/assets",
        "/api/v1/accounts",
        "/api/v1/monitoring",
        "/api/v1/collectors",
        "/api/v1/assets/aws/account/1",
    ] {
        let resp = client.get(path).send().await;
        resp.assert_header("www-authenticate", "Bearer realm=\"asset-inventory\"");
        let body = problem(resp, 401).await;
        assert_eq!(body["code"], "unauthenticated", "{path}");
        problem(
            client
                .get(path)
                .header("Authorization", "Bearer wrong")
                .send()
                .await,
            401,
        )
        .await;
        for token in ["viewer-token", "writer-token"] {
            let resp = client
                .get(path)
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await;
            assert_eq!(resp.0.status(), 200, "{path} with {token}");
        }
    }
    // Probes and the spec stay open.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"] {
        assert_eq!(client.get(path).send().await.0.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn reads_are_open_with_writer_tokens_only_and_writes_never_are() {
    let f = Fixture::new();
    let writers = TokenSet::from_tokens(&[(Role::Writer, "writer-token")]);
    let client = TestClient::new(inventory_query_api::app(f.state(writers)));
    assert_eq!(client.get("/api/v1/assets").send().await.0.status(), 200);
    let none = problem(
        client
            .post("/api/v1/monitoring")
            .body_json(&declaration())
            .send()
            .await,
        401,
    )
    .await;
    assert_eq!(none["code"], "unauthenticated");
    assert!(
        none["detail"].as_str().unwrap().contains("Bearer"),
        "{none}"
    );
}

#[tokio::test]
async fn declarations_need_a_writer_token() {
    let f = Fixture::new();
    let client = TestClient::new(inventory_query_api::app(f.state(tokens())));
    let post = |token: Option<&'static str>| {
        let mut r = client.post("/api/v1/monitoring").body_json(&declaration());
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        r.send()
    };
    problem(post(None).await, 401).await;
    problem(post(Some("unknown")).await, 401).await;
    let viewer = problem(post(Some("viewer-token")).await, 403).await;
    assert_eq!(viewer["code"], "forbidden");
    // A writer passes auth; this state has no NATS publisher, so the write is unavailable.
    let writer = problem(post(Some("writer-token")).await, 503).await;
    assert_eq!(writer["code"], "unavailable");
    // Body validation comes before NATS, and names the field.
    let bad = client
        .post("/api/v1/monitoring")
        .header("Authorization", "Bearer writer-token")
        .body_json(&serde_json::json!({ "kind": "prometheus", "name": "a b", "url": "http://x" }))
        .send()
        .await;
    assert_eq!(problem(bad, 400).await["parameter"], "name");
    let bad = client
        .post("/api/v1/monitoring")
        .header("Authorization", "Bearer writer-token")
        .body_json(&serde_json::json!({ "kind": "loki", "name": "x", "url": "http://x" }))
        .send()
        .await;
    let body = problem(bad, 400).await;
    assert_eq!(body["code"], "invalid_body", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("allowed: prometheus, grafana"), "{detail}");
    let bad = client
        .post("/api/v1/monitoring")
        .header("Authorization", "Bearer writer-token")
        .content_type("application/json")
        .body("{not json")
        .send()
        .await;
    problem(bad, 400).await;
}

#[tokio::test]
async fn the_spec_is_openapi_3_and_lists_every_route_with_problem_errors() {
    let f = Fixture::new();
    let client = TestClient::new(inventory_query_api::app(
        f.state(TokenSet::default())
            .with_public_url("https://inventory.example.com"),
    ));
    let (status, ct, spec) = json(client.get("/openapi.json").send().await).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["servers"][0]["url"], "https://inventory.example.com");
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/v1/assets", "get"),
        ("/api/v1/assets/{key}", "get"),
        ("/api/v1/accounts", "get"),
        ("/api/v1/monitoring", "get"),
        ("/api/v1/monitoring", "post"),
        ("/api/v1/collectors", "get"),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path}");
        assert!(op["operationId"].is_string(), "{method} {path}");
        for (code, resp) in op["responses"].as_object().unwrap() {
            if code.starts_with('4') || code.starts_with('5') {
                assert!(
                    resp["content"]["application/problem+json"].is_object(),
                    "{method} {path} {code}: {resp}"
                );
            }
        }
    }
    let codes = |path: &str, method: &str| -> Vec<String> {
        paths[path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        codes("/api/v1/monitoring", "post"),
        ["200", "201", "400", "401", "403", "409", "413", "415", "500", "503"]
    );
    assert_eq!(
        codes("/api/v1/assets/{key}", "get"),
        ["200", "400", "401", "404", "500", "503"]
    );
    assert!(spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer");
    // Constraints and nullable members are stated (schemathesis checks them against the real
    // server: tests/openapi_contract.rs).
    let limit = paths["/api/v1/assets"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1.0);
    assert_eq!(limit["schema"]["maximum"], 1000.0);
    let page = &spec["components"]["schemas"]["AssetPage"]["properties"];
    assert_eq!(page["next_cursor"]["nullable"], true);
    assert_eq!(page["as_of_seq"]["nullable"], true);
    let schemas = &spec["components"]["schemas"];
    assert_eq!(
        schemas["MonitoringKind"]["enum"],
        serde_json::json!(["prometheus", "grafana"])
    );
    assert_eq!(
        schemas["AccountProvider"]["enum"],
        serde_json::json!(["aws", "gcp", "azure"])
    );
    assert_eq!(schemas["StatusFilter"]["enum"].as_array().unwrap().len(), 8);
    let provider = paths["/api/v1/accounts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "provider")
        .unwrap();
    assert_eq!(
        provider["schema"]["$ref"],
        "#/components/schemas/AccountProvider"
    );
    let docs = client.get("/docs").send().await;
    assert_eq!(docs.0.status(), 200);
    assert!(docs
        .0
        .into_body()
        .into_string()
        .await
        .unwrap()
        .contains("swagger"));
}

#[tokio::test]
async fn metrics_use_route_templates_and_read_the_model_at_scrape_time() {
    let mut f = Fixture::new();
    f.put(&asset("aws", "account", "123", "one", AssetStatus::Active));
    f.sweep(
        "aws",
        "o-abc",
        SweepStatus::Ok,
        chrono::Duration::minutes(1),
    );
    f.sweep(
        "gcp",
        "org-1",
        SweepStatus::Failed,
        chrono::Duration::minutes(1),
    );
    f.reject();
    f.status_tx.send_modify(|s| {
        s.applied_seq = 4;
        s.tip_at_start = 4;
        s.stream_last_seq = 9;
    });
    let client = f.client();
    assert_eq!(
        client
            .get("/api/v1/assets/aws%2Faccount%2F123")
            .send()
            .await
            .0
            .status(),
        200
    );
    assert_eq!(
        client
            .get("/api/v1/assets/aws/account/404")
            .send()
            .await
            .0
            .status(),
        404
    );
    assert_eq!(client.get("/no/such/route").send().await.0.status(), 404);
    assert_eq!(client.get("/docs").send().await.0.status(), 200);
    assert_eq!(client.get("/openapi.json").send().await.0.status(), 200);
    let resp = client.get("/metrics").send().await;
    assert!(resp.0.content_type().unwrap().starts_with("text/plain"));
    let text = resp.0.into_body().into_string().await.unwrap();
    for needle in [
        r#"http_requests_total{method="GET",route="/api/v1/assets/{key}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="/api/v1/assets/{key}",status="404"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"http_requests_total{method="GET",route="/docs",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="/openapi.json",status="200"} 1"#,
        r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/assets/{key}",le="#,
        "inventory_projector_lag_events 5",
        "inventory_projector_applied_seq 4",
        "inventory_projector_ready 1",
        r#"inventory_events_rejected_total{reason="undecodable"} 1"#,
        r#"inventory_events_rejected_total{reason="subject_mismatch"} 0"#,
        r#"inventory_collector_last_sweep_success{provider="aws",scope="o-abc",source="/collectors/aws/o-abc"} 1"#,
        r#"inventory_collector_last_sweep_success{provider="gcp",scope="org-1",source="/collectors/gcp/org-1"} 0"#,
        r#"inventory_collector_last_success_timestamp_seconds{provider="aws",scope="o-abc",source="/collectors/aws/o-abc"}"#,
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    // DuckDB's share of the memory, read from the database at scrape time.
    let duckdb = text
        .lines()
        .find_map(|l| l.strip_prefix("inventory_duckdb_memory_bytes "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(duckdb.is_some_and(|b| b > 0), "{duckdb:?}:\n{text}");
    assert!(
        !text.contains("aws%2F") && !text.contains("/no/such"),
        "raw paths leaked:\n{text}"
    );
    assert!(
        !text.contains(r#"last_success_timestamp_seconds{provider="gcp""#),
        "{text}"
    );
}

#[tokio::test]
async fn readiness_follows_the_projector() {
    let f = Fixture::new();
    f.status_tx.send_replace(Status::default());
    let client = f.client();
    let starting = problem(client.get("/readyz").send().await, 503).await;
    assert!(
        starting["detail"].as_str().unwrap().contains("starting"),
        "{starting}"
    );
    f.status_tx.send_modify(|s| {
        s.tip_at_start = 50;
        s.applied_seq = 20;
        s.stream_last_seq = 50;
    });
    let catching = problem(client.get("/readyz").send().await, 503).await;
    assert!(
        catching["detail"]
            .as_str()
            .unwrap()
            .contains("applied 20 of 50"),
        "{catching}"
    );
    assert!(client
        .get("/metrics")
        .send()
        .await
        .0
        .into_body()
        .into_string()
        .await
        .unwrap()
        .contains("inventory_projector_ready 0"));
    f.status_tx.send_modify(|s| {
        s.applied_seq = 50;
        s.caught_up = true;
    });
    let (status, _, body) = json(client.get("/readyz").send().await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["applied_seq"], 50);
    assert_eq!(body["lag"], 0);
    f.status_tx
        .send_modify(|s| s.failed = Some("DuckDB: disk full".into()));
    let failed = problem(client.get("/readyz").send().await, 503).await;
    assert!(
        failed["detail"].as_str().unwrap().contains("disk full"),
        "{failed}"
    );
    assert_eq!(client.get("/healthz").send().await.0.status(), 200);
}

#[tokio::test]
async fn framework_errors_are_problems_too() {
    let f = Fixture::new();
    let client = f.client();
    let nf = problem(client.get("/api/v2/nothing").send().await, 404).await;
    assert_eq!(nf["code"], "route_not_found");
    let m = problem(client.delete("/api/v1/assets").send().await, 405).await;
    assert_eq!(m["code"], "method_not_allowed");
}
