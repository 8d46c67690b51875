//! The OpenAPI document against the real server (`serve()` over a real `nats-server -js`, with
//! data of every shape: nulls and values, deletions, patches, failed sweeps, rejected messages):
//!
//! - schemathesis (PyPI, installed into `.venv` by `make test`) runs `--checks all` with a writer
//!   token, a bounded budget, and must report no failure;
//! - a client generated from `/openapi.json` by openapi-python-client (PyPI) calls every route
//!   and parses every answer with its generated models (`tests/interop/generated_client.py`).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_query_api::{FeedSettings, Role, TokenSet};
use inventory_schemas::{
    encode_asset, encode_sweep, encode_tombstone, Asset, AssetStatus, ChainLink, EventType,
    OutgoingEvent, SweepCompleted, SweepCounts, SweepStatus, Tombstone,
};
use inventory_testkit::NatsServer;

const WRITER: &str = "contract-writer-token";
const VIEWER: &str = "contract-viewer-token";

fn python() -> PathBuf {
    let p = std::env::var_os("INVENTORY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found: `make test` creates the venv (tests/interop/requirements.txt)",
        p.display()
    );
    p
}

/// A tool installed beside the venv's python.
fn venv_tool(name: &str) -> PathBuf {
    let tool = python().parent().unwrap().join(name);
    assert!(
        tool.exists(),
        "{} not found: `make test` installs it (tests/interop/requirements.txt)",
        tool.display()
    );
    tool
}

/// Publishes an estate with every optional member both present and absent.
async fn seed(nats: &NatsServer) {
    let client = inventory_bus::connect(&NatsConfig {
        url: nats.url(),
        ..NatsConfig::default()
    })
    .await
    .unwrap();
    let js = jetstream::new(client);
    inventory_bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let mut links: std::collections::HashMap<String, ChainLink> = Default::default();
    async fn send(
        js: &jetstream::Context,
        links: &mut std::collections::HashMap<String, ChainLink>,
        ev: OutgoingEvent,
    ) {
        let seq = inventory_bus::publish(js, &ev).await.unwrap();
        if let (Some(key), Some(chain)) = (ev.key.clone(), ev.chainhash.clone()) {
            links.insert(
                key,
                ChainLink {
                    prevseq: seq,
                    chainhash: chain,
                },
            );
        }
    }
    let put = |a: &Asset, links: &std::collections::HashMap<String, ChainLink>| {
        let key = a.key().unwrap().to_string();
        let prev = links.get(&key).cloned();
        let ty = if prev.is_some() {
            EventType::Changed
        } else {
            EventType::Discovered
        };
        let source = format!("/collectors/{}/o-1", a.provider);
        encode_asset(ty, a, &source, Utc::now(), &prev.unwrap_or_default()).unwrap()
    };
    let mut assets = vec![
        common::asset(
            "aws",
            "account",
            "111111111111",
            "prod",
            AssetStatus::Active,
        ),
        common::asset(
            "aws",
            "account",
            "222222222222",
            "dev",
            AssetStatus::Suspended,
        ),
        common::asset("gcp", "project", "proj-1", "analytics", AssetStatus::Active),
        common::asset(
            "azure",
            "subscription",
            "sub-1",
            "corp",
            AssetStatus::Active,
        ),
        common::asset(
            "prometheus",
            "endpoint",
            "prom-main",
            "prom",
            AssetStatus::Up,
        ),
    ];
    for a in &assets {
        let ev = put(a, &links);
        send(&js, &mut links, ev).await;
    }
    // A change (a patch) and a deletion (deleted_at).
    assets[0].name = "prod-renamed".into();
    let ev = put(&assets[0], &links);
    send(&js, &mut links, ev).await;
    let gone = &assets[1];
    let t = Tombstone {
        id: gone.id.clone(),
        provider: gone.provider.clone(),
        kind: gone.kind.clone(),
        name: gone.name.clone(),
        reason: "absent from complete sweep".into(),
        last_contenthash: String::new(),
        provenance: gone.provenance.clone(),
    };
    let key = gone.key().unwrap().to_string();
    let ev = encode_tombstone(
        &t,
        "/collectors/aws/o-1",
        Utc::now(),
        &links.get(&key).cloned().unwrap(),
    )
    .unwrap();
    send(&js, &mut links, ev).await;
    // Sweeps: one ok, one partial with an error (a scope that never had an ok sweep).
    for (provider, scope, status) in [
        ("aws", "o-1", SweepStatus::Ok),
        ("gcp", "o-1", SweepStatus::Partial),
    ] {
        let now = Utc::now();
        let s = SweepCompleted {
            collector: provider.into(),
            provider: provider.into(),
            scope: scope.into(),
            status,
            started_at: now,
            finished_at: now,
            duration_ms: 5,
            counts: SweepCounts::default(),
            error: (status != SweepStatus::Ok).then(|| "AccessDenied".to_owned()),
            provenance: Default::default(),
        };
        let ev = encode_sweep(&s, &format!("/collectors/{provider}/{scope}")).unwrap();
        send(&js, &mut links, ev).await;
    }
    // A message the read model rejects.
    js.publish("inventory.asset.aws.account.x", "not a cloudevent".into())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// A server over `nats` with the estate, a viewer and a writer token; its base URL.
async fn server(
    nats: &NatsServer,
) -> (
    String,
    tokio_util::sync::CancellationToken,
    tempfile::TempDir,
) {
    seed(nats).await;
    let tokens = TokenSet::from_tokens(&[(Role::Viewer, VIEWER), (Role::Writer, WRITER)]);
    let (addr, cancel, dir) = common::serve_with(
        nats,
        FeedSettings {
            heartbeat: Duration::from_millis(500),
            ..FeedSettings::default()
        },
        tokens,
        tempfile::tempdir().unwrap(),
    )
    .await;
    // Ready means caught up with the stream's tip at start: every seeded event is applied.
    (format!("http://{addr}"), cancel, dir)
}

/// Runs `cmd` to completion off the runtime, returning (success, stdout + stderr).
async fn run(mut cmd: Command) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_with_every_check() {
    let nats = NatsServer::start();
    let (base, cancel, _dir) = server(&nats).await;
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(venv_tool("schemathesis"));
    cmd.current_dir(work.path())
        .env("SCHEMATHESIS_HOOKS", "contract_hooks")
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop"),
        )
        .env("NO_COLOR", "1")
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--url", &base])
        .args(["--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {WRITER}")])
        // The budget: a bounded number of cases per operation and phase, a fixed seed so a
        // failure reproduces, and a bounded wait per request (the change feed never ends: it
        // is read until this timeout).
        .args(["--max-examples", "25"])
        .args(["--seed", "11"])
        .args(["--request-timeout", "2"])
        .args(["--workers", "1"]);
    let (ok, out) = run(cmd).await;
    cancel.cancel();
    std::fs::write(
        std::env::temp_dir().join("openapi-contract-schemathesis.log"),
        &out,
    )
    .unwrap();
    assert!(ok, "schemathesis reported failures:\n{out}");
    println!("{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_reads_every_route() {
    let nats = NatsServer::start();
    let (base, cancel, _dir) = server(&nats).await;
    let work = tempfile::tempdir().unwrap();
    let spec = reqwest_free_get(&base, "/openapi.json").await;
    std::fs::write(work.path().join("openapi.json"), &spec).unwrap();
    std::fs::write(
        std::env::temp_dir().join("openapi-contract-spec.json"),
        &spec,
    )
    .unwrap();
    let mut generate = Command::new(venv_tool("openapi-python-client"));
    generate
        .current_dir(work.path())
        .args(["generate", "--path", "openapi.json", "--meta", "none"])
        .args(["--output-path", "inventory_client"]);
    let (ok, out) = run(generate).await;
    assert!(ok, "openapi-python-client generate failed:\n{out}");
    let mut client = Command::new(python());
    client
        .current_dir(work.path())
        .env("PYTHONPATH", work.path())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/generated_client.py"))
        .args([&base, WRITER, VIEWER]);
    let (ok, out) = run(client).await;
    cancel.cancel();
    assert!(ok, "the generated client failed:\n{out}");
    assert!(out.contains("every route read"), "{out}");
}

/// `GET path` over HTTP/1.0, the body.
async fn reqwest_free_get(base: &str, path: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let (status, body) = common::http(addr, "GET", path, None, None).await;
    assert_eq!(status, 200, "{body}");
    body
}
