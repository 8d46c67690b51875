//! The whole pipeline through the `inventory` binary against a real `nats-server -js` and a real
//! Prometheus: collect → JetStream → projector → HTTP, conditional writes, tombstones, and a
//! foreign client (nats-py + the CloudEvents Python SDK) reading every message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use inventory_testkit::{free_port, NatsServer, Prometheus};

const ASSETS: &str = r#"
assets:
  - provider: aws
    kind: account
    id: "111111111111"
    name: prod-payments
    status: active
    org_path: [r-root, ou-prod]
    labels: {team: payments}
  - provider: aws
    kind: account
    id: "222222222222"
    name: prod-search
    status: active
    org_path: [r-root, ou-prod]
  - provider: aws
    kind: account
    id: "333333333333"
    name: sandbox
    status: active
    org_path: [r-root, ou-sandbox]
  - provider: gcp
    kind: project
    id: analytics-prod
    name: Analytics
    status: active
  - provider: azure
    kind: subscription
    id: 6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f
    name: corp-finance
    status: active
"#;

fn asset_events(types: &[(String, String)]) -> Vec<&str> {
    types
        .iter()
        .filter(|(s, _)| s.starts_with("inventory.asset."))
        .map(|(_, t)| t.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_publish_only_changes_and_tombstones_leave_history() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("estate.yaml");
    std::fs::write(&file, ASSETS).unwrap();
    let collect = |file: &Path| {
        let (code, err) = common::run(
            &nats.url(),
            &["collect", "file", "--file", file.to_str().unwrap()],
        );
        assert_eq!(code, 0, "collect failed: {err}");
    };

    collect(&file);
    let t1 = common::stream_types(&nats.url()).await;
    assert_eq!(asset_events(&t1), vec!["discovered"; 5]);
    assert_eq!(
        t1.last().unwrap(),
        &("inventory.sweep.file.estate".to_owned(), "sweep".to_owned())
    );

    // Nothing changed: only a sweep event.
    collect(&file);
    let t2 = common::stream_types(&nats.url()).await;
    assert_eq!(t2.len(), t1.len() + 1);
    assert_eq!(t2.last().unwrap().1, "sweep");

    // One asset edited: exactly one `changed`.
    std::fs::write(
        &file,
        ASSETS.replace("name: sandbox", "name: sandbox-renamed"),
    )
    .unwrap();
    collect(&file);
    let t3 = common::stream_types(&nats.url()).await;
    assert_eq!(
        &t3[t2.len()..],
        &[
            (
                "inventory.asset.aws.account.333333333333".to_owned(),
                "changed".to_owned()
            ),
            ("inventory.sweep.file.estate".to_owned(), "sweep".to_owned()),
        ]
    );

    // One asset removed: exactly one `deleted`.
    let without_gcp: String = ASSETS
        .split("  - provider: ")
        .filter(|chunk| !chunk.starts_with("gcp"))
        .collect::<Vec<_>>()
        .join("  - provider: ")
        .replace("name: sandbox", "name: sandbox-renamed");
    std::fs::write(&file, without_gcp).unwrap();
    collect(&file);
    let t4 = common::stream_types(&nats.url()).await;
    assert_eq!(
        &t4[t3.len()..],
        &[
            (
                "inventory.asset.gcp.project.analytics-prod".to_owned(),
                "deleted".to_owned()
            ),
            ("inventory.sweep.file.estate".to_owned(), "sweep".to_owned()),
        ]
    );

    // The API: the deleted project left the current view but keeps its history.
    let port = free_port();
    let db = dir.path().join("api.duckdb");
    let mut api = common::serve(&nats.url(), &db, port);
    let base = format!("http://127.0.0.1:{port}");
    common::wait_for(Duration::from_secs(60), "API ready", || async {
        common::get(&format!("{base}/readyz"))
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let (status, body) = common::get(&format!("{base}/api/v1/accounts?provider=aws"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["prod-payments", "prod-search", "sandbox-renamed"]
    );
    let (_, body) = common::get(&format!("{base}/api/v1/assets?provider=gcp"))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{body}");
    let (status, body) = common::get(&format!(
        "{base}/api/v1/assets/gcp%2Fproject%2Fanalytics-prod"
    ))
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(!v["deleted_at"].is_null(), "{body}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(api.id().to_string())
        .status();
    api.wait().unwrap();
    let conn = duckdb::Connection::open(&db).unwrap();
    let history: u64 = conn
        .query_row(
            "SELECT count(*) FROM events WHERE asset_key = 'gcp/project/analytics-prod'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(history, 2, "discovered + deleted stay in the history");
}

fn python() -> PathBuf {
    let p = std::env::var_os("INVENTORY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: `make test` creates the venv with nats-py, cloudevents and jsonschema",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_client_reads_every_message_as_a_valid_cloudevent() {
    let nats = NatsServer::start();
    let prom = Prometheus::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("estate.yaml");
    std::fs::write(&file, ASSETS).unwrap();
    let url = nats.url();
    let ok = |args: &[&str]| {
        let (code, err) = common::run(&url, args);
        assert_eq!(code, 0, "{args:?}: {err}");
    };
    let f = file.to_str().unwrap();
    ok(&["collect", "file", "--file", f]);
    std::fs::write(&file, ASSETS.replace("prod-search", "search").replace(
        "  - provider: gcp\n    kind: project\n    id: analytics-prod\n    name: Analytics\n    status: active\n",
        "",
    ))
    .unwrap();
    ok(&["collect", "file", "--file", f]);
    ok(&[
        "collect",
        "prometheus",
        "--url",
        &prom.url(),
        "--name",
        "prom-test",
    ]);

    let types = common::stream_types(&url).await;
    for t in ["discovered", "changed", "deleted", "sweep"] {
        assert!(types.iter().any(|(_, ty)| ty == t), "no {t} event to check");
    }
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/json");
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_stream.py"))
        .arg(&url)
        .arg(&schemas)
        .arg(types.len().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "foreign client found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} messages read, 0 problems", types.len())),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_prometheus_is_up_in_the_monitoring_view() {
    let nats = NatsServer::start();
    let prom = Prometheus::start(&[]);
    let (code, err) = common::run(
        &nats.url(),
        &["collect", "prometheus", "--url", &prom.url()],
    );
    assert_eq!(code, 0, "{err}");
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut api = common::serve(&nats.url(), &dir.path().join("api.duckdb"), port);
    let base = format!("http://127.0.0.1:{port}");
    let body = common::wait_for(Duration::from_secs(60), "monitoring view", || async {
        common::get(&format!("{base}/api/v1/monitoring?kind=prometheus"))
            .await
            .filter(|(s, b)| *s == 200 && b.contains("prom-default"))
            .map(|(_, b)| b)
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let item = &v["items"][0];
    assert_eq!(item["status"], "up", "{body}");
    assert!(
        item["data"]["raw"]["version"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    let (code, spec) = common::get(&format!("{base}/openapi.json")).await.unwrap();
    assert_eq!(code, 200);
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let (code, docs) = common::get(&format!("{base}/docs")).await.unwrap();
    assert_eq!(code, 200);
    assert!(docs.contains("swagger"), "{docs}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(api.id().to_string())
        .status();
    api.wait().unwrap();
}

/// `inventory up` (what `make run` starts) signs checkpoints with the key it makes on first start
/// and gives the API that key's public half: the integrity route says `verified`, never `no_key`,
/// without any key configured by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_verifies_its_own_checkpoints_with_the_key_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let (nats_port, api_port, prom_port) = (free_port(), free_port(), free_port());
    let mut up = common::inventory(&format!("nats://127.0.0.1:{nats_port}"))
        .env_remove("INVENTORY_VERIFIER_KEY")
        .env_remove("INVENTORY_SIGNING_KEY_FILE")
        .args([
            "up",
            "--listen",
            &format!("127.0.0.1:{api_port}"),
            "--prometheus-listen",
            &format!("127.0.0.1:{prom_port}"),
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--every",
            "2s",
            "--checkpoint-every",
            "1s",
            "--integrity-every",
            "1s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{api_port}/api/v1/integrity");
    // A checkpoint over the collectors' first events (the first one may be of the empty stream).
    let v = common::wait_for(
        Duration::from_secs(120),
        "a verified checkpoint",
        || async {
            let (status, body) = common::get(&url).await?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && v["state"] == "verified" && v["verified"]["size"].as_u64()? > 0)
                .then_some(v)
        },
    )
    .await;
    assert_eq!(v["keys"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["verified"]["signers"], v["keys"], "{v}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(up.id().to_string())
        .status();
    let status = up.wait().unwrap();
    assert!(status.success(), "up exited with {status}");
}

#[test]
fn bad_configuration_is_one_line_naming_the_setting() {
    let out = common::inventory("nats://127.0.0.1:1")
        .args(["serve"])
        .env("INVENTORY_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("INVENTORY_LISTEN"), "{err}");

    let out = common::inventory("nats://127.0.0.1:1")
        .args(["collect", "file", "--file"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/assets.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("NATS_URL"),
        "an unreachable broker names the setting: {err}"
    );
}
