//! Declarations and `serve()` against a real `nats-server -js` on a free loopback port.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::{http, json, poll_until, problem, Fixture};
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_query_api::declare::publish_linked;
use inventory_query_api::problem::ErrorCode;
use inventory_query_api::{Publisher, Role, ServeConfig, TokenSet};
use inventory_schemas::hash::chain_hash;
use inventory_schemas::{decode, AssetStatus, ChainLink, EventData, EventType, InventoryEvent};
use inventory_testkit::NatsServer;
use poem::test::TestClient;
use serde_json::json as j;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const WRITER: &str = "writer-token-for-tests";

fn tokens() -> TokenSet {
    TokenSet::from_tokens(&[(Role::Writer, WRITER)])
}

async fn stream_for(nats: &NatsServer) -> (async_nats::Client, jetstream::stream::Stream) {
    let client = inventory_bus::connect(&NatsConfig {
        url: nats.url(),
        ..NatsConfig::default()
    })
    .await
    .unwrap();
    let js = jetstream::new(client.clone());
    let stream = inventory_bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    (client, stream)
}

async fn last_on(
    stream: &jetstream::stream::Stream,
    subject: &str,
) -> (u64, InventoryEvent, Vec<u8>) {
    let m = stream
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap();
    (m.sequence, decode(&m.payload).unwrap(), m.payload.to_vec())
}

async fn tip(stream: &jetstream::stream::Stream) -> u64 {
    let mut s = stream.clone();
    inventory_bus::last_sequence(&mut s).await.unwrap()
}

#[tokio::test]
async fn declarations_publish_discovered_then_changed_and_nothing_when_identical() {
    let nats = NatsServer::start();
    let (client, stream) = stream_for(&nats).await;
    let f = Fixture::new();
    let state = f
        .state(tokens())
        .with_publisher(Publisher::new(client.clone(), stream.clone()));
    let api = TestClient::new(inventory_query_api::app(state));
    let post = |body: serde_json::Value| {
        api.post("/api/v1/monitoring")
            .header("Authorization", format!("Bearer {WRITER}"))
            .body_json(&body)
            .send()
    };
    let subject = "inventory.asset.prometheus.endpoint.prom-main";
    let first_body = j!({ "kind": "prometheus", "name": "prom-main", "url": "http://prom:9090", "labels": { "env": "prod" } });

    let resp = post(first_body.clone()).await;
    resp.assert_header(
        "location",
        "/api/v1/assets/prometheus%2Fendpoint%2Fprom-main",
    );
    let (status, _, created) = json(resp).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["outcome"], "discovered");
    assert_eq!(created["key"], "prometheus/endpoint/prom-main");
    assert_eq!(created["subject"], subject);
    let first_seq = created["seq"].as_u64().unwrap();

    let (seq, ev, payload) = last_on(&stream, subject).await;
    assert_eq!(seq, first_seq);
    assert_eq!(ev.ty, EventType::Discovered);
    assert_eq!(ev.source, "/api");
    assert_eq!(ev.prevseq, Some(0));
    assert_eq!(ev.subject.as_deref(), Some("prometheus/endpoint/prom-main"));
    let EventData::Asset(asset) = &ev.data else {
        panic!("{:?}", ev.data)
    };
    assert_eq!(asset.status, AssetStatus::Declared);
    assert_eq!(asset.url.as_deref(), Some("http://prom:9090/"));
    assert_eq!(asset.labels.get("env").map(String::as_str), Some("prod"));
    assert_eq!(asset.provenance.collector, "api");
    let hash = hex::encode(Sha256::digest(WRITER.as_bytes()));
    assert_eq!(
        asset.provenance.principal.as_deref(),
        Some(format!("token:{}", &hash[..8]).as_str())
    );
    let text = String::from_utf8(payload).unwrap();
    assert!(
        !text.contains(WRITER) && !text.contains(&hash),
        "the token leaked into the event"
    );
    assert_eq!(created["contenthash"].as_str(), ev.contenthash.as_deref());

    // The same declaration again: 200, nothing published.
    let (status, _, same) = json(post(first_body.clone()).await).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["outcome"], "unchanged");
    assert_eq!(same["seq"], first_seq);
    assert_eq!(tip(&stream).await, first_seq);

    // A different URL: a changed event linked to the first.
    let (status, _, changed) = json(
        post(j!({ "kind": "prometheus", "name": "prom-main", "url": "https://prom.example/" }))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{changed}");
    assert_eq!(changed["outcome"], "changed");
    let (seq2, ev2, _) = last_on(&stream, subject).await;
    assert_eq!(changed["seq"], seq2);
    assert!(seq2 > first_seq);
    assert_eq!(ev2.ty, EventType::Changed);
    assert_eq!(ev2.prevseq, Some(first_seq));
    assert_eq!(
        ev2.chainhash.as_deref().unwrap(),
        chain_hash(
            ev.chainhash.as_deref().unwrap(),
            ev2.contenthash.as_deref().unwrap(),
            EventType::Changed
        )
    );

    // Grafana endpoints land on their own subject.
    let (status, _, g) = json(
        post(j!({ "kind": "grafana", "name": "grafana-main", "url": "http://grafana:3000" })).await,
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let (_, gev, _) = last_on(&stream, "inventory.asset.grafana.endpoint.grafana-main").await;
    assert_eq!(gev.ty, EventType::Discovered);
}

#[tokio::test]
async fn a_stale_expectation_is_a_conflict_and_an_unreachable_nats_is_503() {
    let mut nats = NatsServer::start();
    let (client, stream) = stream_for(&nats).await;
    let publisher = Publisher::new(client.clone(), stream.clone());
    let f = Fixture::new();
    let api = TestClient::new(inventory_query_api::app(
        f.state(tokens()).with_publisher(publisher.clone()),
    ));
    let body = j!({ "kind": "prometheus", "name": "racy", "url": "http://a:9090" });
    let (status, _, first) = json(
        api.post("/api/v1/monitoring")
            .header("Authorization", format!("Bearer {WRITER}"))
            .body_json(&body)
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 201, "{first}");

    // A writer that read the subject before that event (prevseq 0) is refused by the server.
    let last = inventory_query_api::declare::read_last(
        &publisher,
        "inventory.asset.prometheus.endpoint.racy",
    )
    .await
    .unwrap();
    let last = last.unwrap();
    assert!(last.link.live().is_some(), "{last:?}");
    assert_eq!(Some(last.link.seq()), first["seq"].as_u64());
    assert_eq!(last.data["name"], "racy");
    let principal = tokens().authenticate(WRITER).unwrap();
    let req = inventory_query_api::model::DeclareMonitoring {
        kind: inventory_query_api::model::MonitoringKind::Prometheus,
        name: "racy".into(),
        url: "http://b:9090".into(),
        labels: Default::default(),
    };
    let asset = inventory_query_api::declare::declared_asset(&req, &principal).unwrap();
    let err = publish_linked(
        &publisher,
        EventType::Discovered,
        &asset,
        &ChainLink::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    assert_eq!(err.code.status().as_u16(), 409);
    assert!(
        err.detail.contains("prometheus/endpoint/racy"),
        "{}",
        err.detail
    );

    // NATS goes away: declarations answer 503 promptly, reads keep working.
    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.connection_state() == async_nats::connection::State::Connected {
        assert!(
            Instant::now() < deadline,
            "client never noticed the server stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let resp = api
        .post("/api/v1/monitoring")
        .header("Authorization", format!("Bearer {WRITER}"))
        .body_json(&j!({ "kind": "prometheus", "name": "later", "url": "http://c:9090" }))
        .send()
        .await;
    let p = problem(resp, 503).await;
    assert_eq!(p["code"], "unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(api.get("/api/v1/monitoring").send().await.0.status(), 200);
}

#[tokio::test]
async fn serve_end_to_end_declare_then_read_and_resume_after_restart() {
    let nats = NatsServer::start();
    // Something on the stream before the API starts: it must be applied before /readyz is 200.
    let (client, _stream) = stream_for(&nats).await;
    let js = jetstream::new(client);
    let a = common::asset(
        "aws",
        "account",
        "123456789012",
        "prod",
        AssetStatus::Active,
    );
    let ev = inventory_schemas::encode_asset(
        EventType::Discovered,
        &a,
        "/collectors/aws/o-1",
        chrono::Utc::now(),
        &ChainLink::default(),
    )
    .unwrap();
    inventory_bus::publish(&js, &ev).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let port = inventory_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    let cfg = ServeConfig {
        tokens: tokens(),
        ..common::serve_config(&nats, &addr, dir.path())
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(inventory_query_api::serve(cfg.clone(), cancel.clone()));
    poll_until("readiness", Duration::from_secs(20), async || {
        let connect = tokio::net::TcpStream::connect(&addr).await;
        connect.is_ok() && http(&addr, "GET", "/readyz", None, None).await.0 == 200
    })
    .await;
    let (status, body) = http(
        &addr,
        "GET",
        "/api/v1/assets/aws/account/123456789012",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let decl = r#"{"kind":"prometheus","name":"prom-e2e","url":"http://prom-e2e:9090"}"#;
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/monitoring",
        Some(WRITER),
        Some(decl),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let declared: serde_json::Value = serde_json::from_str(&body).unwrap();
    poll_until(
        "the projector to apply the declaration",
        Duration::from_secs(10),
        async || {
            http(
                &addr,
                "GET",
                "/api/v1/assets/prometheus/endpoint/prom-e2e",
                None,
                None,
            )
            .await
            .0 == 200
        },
    )
    .await;
    let (_, body) = http(
        &addr,
        "GET",
        "/api/v1/monitoring?kind=prometheus",
        None,
        None,
    )
    .await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"][0]["key"], "prometheus/endpoint/prom-e2e");
    assert_eq!(page["items"][0]["status"], "declared");
    assert_eq!(page["items"][0]["version"], declared["seq"]);
    assert_eq!(page["items"][0]["source"], "/api");
    let (_, metrics) = http(&addr, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains(&format!(
            "inventory_projector_applied_seq {}",
            declared["seq"]
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/api/v1/assets/{key}""#),
        "{metrics}"
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(25), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still listening after shutdown"
    );

    // Restart on the same file: resumes from the checkpoint with both assets.
    let cancel = CancellationToken::new();
    let task = tokio::spawn(inventory_query_api::serve(cfg, cancel.clone()));
    poll_until(
        "readiness after restart",
        Duration::from_secs(20),
        async || {
            tokio::net::TcpStream::connect(&addr).await.is_ok()
                && http(&addr, "GET", "/readyz", None, None).await.0 == 200
        },
    )
    .await;
    let (_, body) = http(&addr, "GET", "/api/v1/assets", None, None).await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(25), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
