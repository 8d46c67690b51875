//! The `prometheus` source against a real Prometheus and the `grafana` source against a local
//! server speaking Grafana's `/api/health`, both published through a real `nats-server`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{all, asset_events, bus, since};
use inventory_producers::sources::{
    GrafanaConfig, GrafanaSource, PrometheusConfig, PrometheusSource,
};
use inventory_producers::{run_sweep, Source, SourceErrorKind, SweepOptions};
use inventory_schemas::{AssetStatus, EventType, SweepStatus};
use inventory_testkit::{free_port, Prometheus};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Response, Route, Server};

fn prom_source(name: &str, url: &str) -> PrometheusSource {
    PrometheusSource::new(PrometheusConfig {
        name: name.into(),
        ..PrometheusConfig::new(url)
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_is_up_with_its_version_then_down_when_stopped() {
    let b = bus().await;
    let prom = tokio::task::block_in_place(|| Prometheus::start(&[]));
    let src = prom_source("prom-default", &prom.url());
    let opts = SweepOptions::default();

    // What the server says about itself, asked independently.
    let build: serde_json::Value = reqwest::get(format!("{}/api/v1/status/buildinfo", prom.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 1));
    let msgs = all(&b).await;
    assert_eq!(
        msgs[0].stored.subject,
        "inventory.asset.prometheus.endpoint.prom-default"
    );
    assert_eq!(
        msgs[0].event.as_ref().unwrap().source,
        "/collectors/prometheus/prom-default"
    );
    let a = msgs[0].asset();
    assert_eq!(a.status, AssetStatus::Up);
    assert_eq!(a.url.as_deref(), Some(prom.url().as_str()));
    assert_eq!(a.auth_mode.as_deref(), Some("none"));
    assert_eq!(a.raw["version"], build["data"]["version"]);
    assert_eq!(a.raw["revision"], build["data"]["revision"]);
    assert_eq!(a.raw["storageRetention"], "15d");
    let mut keys: Vec<&str> = a
        .raw
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "branch",
            "goVersion",
            "revision",
            "storageRetention",
            "version"
        ]
    );
    assert_eq!(
        msgs[1].stored.subject,
        "inventory.sweep.prometheus.prom-default"
    );
    assert_eq!(msgs[1].sweep().scope, "prom-default");

    // No volatile field: a second look is unchanged.
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.counts.unchanged, r.counts.changed), (1, 0));

    // Stopped: the endpoint still exists, and is down. A complete sweep, one `changed`.
    tokio::task::block_in_place(|| drop(prom));
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.changed, r.counts.deleted),
        (SweepStatus::Ok, 1, 0)
    );
    let new = since(&b, 3).await;
    assert_eq!(
        asset_events(&new),
        vec![("changed", "prometheus/endpoint/prom-default".to_owned())]
    );
    assert_eq!(new[0].asset().status, AssetStatus::Down);
    assert_eq!(new[0].event.as_ref().unwrap().prevseq, Some(1));
}

#[tokio::test]
async fn prometheus_collectors_never_tombstone_each_other() {
    let b = bus().await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (eu, us) = (
        prom_source("prom-eu", &nowhere),
        prom_source("prom-us", &nowhere),
    );
    let opts = SweepOptions::default();
    let r = run_sweep(&b.js, &b.stream, &eu, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 1));
    let r = run_sweep(&b.js, &b.stream, &us, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.discovered, r.counts.deleted),
        (SweepStatus::Ok, 1, 0)
    );
    let r = run_sweep(&b.js, &b.stream, &eu, &opts).await.unwrap();
    assert_eq!((r.counts.unchanged, r.counts.deleted), (1, 0));
    let msgs = all(&b).await;
    assert_eq!(
        asset_events(&msgs),
        vec![
            ("discovered", "prometheus/endpoint/prom-eu".to_owned()),
            ("discovered", "prometheus/endpoint/prom-us".to_owned()),
        ]
    );
    assert!(msgs
        .iter()
        .filter(|m| m.ty() == Some(EventType::Discovered))
        .all(|m| m.asset().status == AssetStatus::Down && m.asset().raw == serde_json::json!({})));
}

const TOKEN: &str = "glsa_test_9f8e7d6c5b4a_secret";

/// Grafana's `/api/health`, behind a bearer token: `database` is what the test sets.
#[handler]
fn health(req: &Request, database: Data<&Arc<Mutex<String>>>) -> Response {
    let authorised = req
        .header("authorization")
        .is_some_and(|h| h == format!("Bearer {TOKEN}"));
    if !authorised {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .content_type("application/json")
            .body(r#"{"message":"Unauthorized"}"#);
    }
    let db = database.lock().unwrap().clone();
    let status = if db == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Response::builder()
        .status(status)
        .content_type("application/json; charset=UTF-8")
        .body(format!(
            r#"{{"commit":"5b85c4c2fcf5d32d4f68aaef345c53096359b2f1","database":"{db}","version":"10.4.1"}}"#
        ))
}

async fn fake_grafana(database: Arc<Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Route::new()
        .at("/api/health", poem::get(health))
        .data(database);
    tokio::spawn(Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(app));
    format!("http://{addr}")
}

fn grafana(url: &str, token: Option<&str>) -> GrafanaSource {
    GrafanaSource::new(GrafanaConfig {
        token: token.map(str::to_owned),
        ..GrafanaConfig::new(url)
    })
    .unwrap()
}

#[tokio::test]
async fn grafana_up_down_and_refused_token_and_the_token_is_never_published() {
    let b = bus().await;
    let database = Arc::new(Mutex::new("ok".to_owned()));
    let url = fake_grafana(database.clone()).await;
    let src = grafana(&url, Some(TOKEN));
    let opts = SweepOptions::default();

    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 1));
    let msgs = all(&b).await;
    assert_eq!(
        msgs[0].stored.subject,
        "inventory.asset.grafana.endpoint.grafana-default"
    );
    let a = msgs[0].asset();
    assert_eq!(a.status, AssetStatus::Up);
    assert_eq!(a.raw["version"], "10.4.1");
    assert_eq!(a.auth_mode.as_deref(), Some("bearer"));
    assert_eq!(a.url.as_deref(), Some(url.as_str()));

    // The database fails: Grafana answers 503 with the same document; the endpoint is down.
    *database.lock().unwrap() = "failing".into();
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.changed), (SweepStatus::Ok, 1));
    let new = since(&b, 2).await;
    assert_eq!(new[0].asset().status, AssetStatus::Down);
    assert_eq!(new[0].asset().raw["version"], "10.4.1");

    // Without the token, and with a wrong one: a failed sweep that says why; nothing else.
    for token in [None, Some("glsa_wrong")] {
        let anonymous = grafana(&url, token);
        let e = anonymous.collect().await.unwrap_err();
        assert_eq!(e.kind(), SourceErrorKind::Auth);
        let before = all(&b).await.len() as u64;
        let r = run_sweep(&b.js, &b.stream, &anonymous, &opts)
            .await
            .unwrap();
        assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
        let err = r.error.unwrap();
        assert_eq!(
            err,
            format!("GET {url}/api/health: HTTP 401 Unauthorized: credentials refused")
        );
        let new = since(&b, before).await;
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].sweep().status, SweepStatus::Failed);
        assert_eq!(new[0].sweep().error.as_deref(), Some(err.as_str()));
    }

    // Unreachable: down, not failed.
    let gone = grafana(&format!("http://127.0.0.1:{}", free_port()), Some(TOKEN));
    let a = gone.collect().await.unwrap().assets.remove(0);
    assert_eq!(a.status, AssetStatus::Down);

    // The token appears in no message and in no error.
    for m in all(&b).await {
        let text = String::from_utf8_lossy(&m.stored.payload);
        assert!(
            !text.contains(TOKEN) && !text.contains("9f8e7d6c5b4a"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_server_that_is_not_grafana_is_a_bad_response() {
    #[handler]
    fn html() -> &'static str {
        "<html>welcome</html>"
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap())
            .run(Route::new().at("/api/health", poem::get(html))),
    );
    let e = grafana(&format!("http://{addr}"), None)
        .collect()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), SourceErrorKind::BadResponse);
    assert!(
        e.to_string().contains("is GRAFANA_URL a Grafana server?"),
        "{e}"
    );
}
