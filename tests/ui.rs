//! The web console end to end: the real `inventory serve` over a real NATS stream with generated
//! history, driven in headless Chromium by `tests/ui/console.mjs` (playwright-core). With viewer
//! tokens configured; the script checks that nothing is shown without one.
//!
//! Needs Debian's `chromium` and `tests/ui/node_modules` (both installed by `make test`, through
//! `make ui-deps`); without them the test fails and says so. `INVENTORY_UI_SCREENSHOTS=docs/ui`
//! makes the script write the screenshots of `docs/ui.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use inventory_testkit::{free_port, NatsServer};
use sha2::{Digest, Sha256};
use stream::{asset, project, Writer};

const VIEWER: &str = "viewer-e2e-token";
const WRITER: &str = "writer-e2e-token";

fn chromium() -> PathBuf {
    let path = PathBuf::from(
        std::env::var("INVENTORY_UI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    assert!(
        path.exists(),
        "headless Chromium is missing at {}: run `make test` (or `make ui-deps`), which installs \
         Debian's chromium",
        path.display()
    );
    path
}

fn ui_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing in {}: run `make test` (or `make ui-deps`), which runs npm ci there",
        dir.display()
    );
    dir
}

fn tokens_env() -> String {
    let h = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    format!("viewer:{},writer:{}", h(VIEWER), h(WRITER))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_headless_chromium() {
    let chromium = chromium();
    let dir = ui_dir();
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;

    // History: four accounts and a project; one account changes twice, one is deleted.
    let mut pay = asset("100000000001", "payments-prod");
    pay.labels.insert("owner".into(), "team-pay".into());
    let first = w.upsert(&pay).await;
    w.upsert(&asset("100000000002", "payments-dev")).await;
    w.upsert(&asset("100000000003", "search-prod")).await;
    w.upsert(&project("analytics-1", "analytics")).await;
    let legacy = asset("100000000009", "legacy-billing");
    w.upsert(&legacy).await;
    pay.labels.insert("team".into(), "payments".into());
    w.upsert(&pay).await;
    pay.name = "payments-production".into();
    w.upsert(&pay).await;
    let before_delete = w.delete(&legacy).await - 1;
    let last = w.sweep().await;

    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = common::inventory(&nats.url())
        .env("INVENTORY_API_TOKENS", tokens_env())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(tmp.path().join("api.duckdb"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn inventory serve");
    let base = format!("http://127.0.0.1:{port}");
    common::wait_for(Duration::from_secs(60), "/readyz", || {
        let url = format!("{base}/readyz");
        async move { common::get(&url).await.filter(|(s, _)| *s == 200) }
    })
    .await;

    let plan = serde_json::json!({
        "viewer": VIEWER,
        "writer": WRITER,
        "asset": "aws/account/100000000001",
        "first_seq": first,
        "last_seq": last,
        "before_delete": before_delete,
        "deleted_name": "legacy-billing",
        "search": "payments",
        "search_hits": ["payments-production", "payments-dev"],
        "search_misses": ["search-prod", "analytics"],
        "gcp_only": "analytics",
        "label": "team:payments",
        "label_only": "payments-production",
    });
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("console.mjs")
        .arg(&base)
        .arg(plan.to_string())
        .env("INVENTORY_UI_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Ok(shots) = std::env::var("INVENTORY_UI_SCREENSHOTS") {
        // Relative to the repository, as `make` and the docs name it.
        node.env(
            "INVENTORY_UI_SCREENSHOTS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join(shots),
        );
    }
    let mut child = node
        .spawn()
        .expect("run node (installed by `make test` via system-deps)");
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = child.wait_with_output().unwrap();
    server.kill().ok();
    server.wait().ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("console e2e: ok"),
        "the console script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
