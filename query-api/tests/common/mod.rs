//! Fixtures: a real DuckDB store in a temporary directory, filled by applying real encoded events,
//! and the API over it.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_projector::{Incoming, ReadPool, Status, Store};
use inventory_query_api::{AppState, TokenSet};
use inventory_query_api::{FeedSettings, ServeConfig};
use inventory_schemas::{
    encode_asset, encode_sweep, encode_tombstone, Asset, AssetStatus, ChainLink, EventType,
    OutgoingEvent, Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone,
};
use inventory_testkit::NatsServer;
use poem::test::TestClient;
use poem::Endpoint;
use serde_json::Value;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub store: Store,
    pub pool: ReadPool,
    pub status_tx: watch::Sender<Status>,
    pub status_rx: watch::Receiver<Status>,
    seq: u64,
    chains: HashMap<String, ChainLink>,
    /// Every message applied, by sequence (index = seq - 1).
    pub log: Vec<Vec<u8>>,
}

pub fn asset(provider: &str, kind: &str, id: &str, name: &str, status: AssetStatus) -> Asset {
    Asset {
        id: id.into(),
        provider: provider.into(),
        kind: kind.into(),
        name: name.into(),
        status,
        org_path: vec!["r-root".into(), "ou-prod".into()],
        region_residency: vec![],
        url: (kind == "endpoint").then(|| format!("http://{id}.example:9090/")),
        auth_mode: None,
        labels: [("team".to_owned(), "sre".to_owned())].into(),
        raw: serde_json::json!({ "native": id }),
        provenance: Provenance {
            collector: provider.into(),
            collector_version: "0.1.0".into(),
            api: "test".into(),
            ..Provenance::default()
        },
    }
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("api.duckdb")).unwrap();
        let pool = ReadPool::new(&store).unwrap();
        let (status_tx, status_rx) = watch::channel(Status {
            caught_up: true,
            ..Status::default()
        });
        Self {
            _dir: dir,
            store,
            pool,
            status_tx,
            status_rx,
            seq: 0,
            chains: HashMap::new(),
            log: Vec::new(),
        }
    }

    pub fn state(&self, tokens: TokenSet) -> AppState {
        AppState::new(self.pool.clone(), self.status_rx.clone(), tokens)
    }

    pub fn client(&self) -> TestClient<impl Endpoint> {
        TestClient::new(inventory_query_api::app(self.state(TokenSet::default())))
    }

    fn apply(&mut self, out: &OutgoingEvent) -> u64 {
        self.seq += 1;
        let inc = Incoming::decode(
            self.seq,
            out.subject.clone(),
            Utc::now(),
            Bytes::from(out.payload.clone()),
        );
        let outcome = self.store.apply(&[inc]).unwrap();
        assert_eq!(outcome.applied, 1, "event not applied: {outcome:?}");
        self.log.push(out.payload.clone());
        if let (Some(key), Some(chain)) = (&out.key, &out.chainhash) {
            self.chains.insert(
                key.clone(),
                ChainLink {
                    prevseq: self.seq,
                    chainhash: chain.clone(),
                },
            );
        }
        self.seq
    }

    /// Publishes `asset` (discovered the first time, changed afterwards) observed at `at`.
    pub fn put_at(&mut self, asset: &Asset, at: DateTime<Utc>) -> u64 {
        let key = asset.key().unwrap().to_string();
        let prev = self.chains.get(&key).cloned();
        let ty = if prev.is_some() {
            EventType::Changed
        } else {
            EventType::Discovered
        };
        let source = format!("/collectors/{}/test", asset.provider);
        let out = encode_asset(ty, asset, &source, at, &prev.unwrap_or_default()).unwrap();
        self.apply(&out)
    }

    /// Publishes a `changed` event of `asset` that links to its previous event with a forged
    /// previous chain hash: a valid event of its subject whose chain hash does not recompute.
    pub fn put_forged_link(&mut self, asset: &Asset) -> u64 {
        let key = asset.key().unwrap().to_string();
        let prev = self.chains.get(&key).cloned().unwrap();
        let link = ChainLink {
            prevseq: prev.prevseq,
            chainhash: "0".repeat(64),
        };
        let source = format!("/collectors/{}/test", asset.provider);
        let out = encode_asset(EventType::Changed, asset, &source, Utc::now(), &link).unwrap();
        self.apply(&out)
    }

    pub fn put(&mut self, asset: &Asset) -> u64 {
        self.put_at(asset, Utc::now())
    }

    /// Records a tombstone for `asset`.
    pub fn delete(&mut self, asset: &Asset) -> u64 {
        let key = asset.key().unwrap().to_string();
        let prev = self.chains.get(&key).cloned().unwrap_or_default();
        let t = Tombstone {
            id: asset.id.clone(),
            provider: asset.provider.clone(),
            kind: asset.kind.clone(),
            name: asset.name.clone(),
            reason: "absent from complete sweep".into(),
            last_contenthash: String::new(),
            provenance: asset.provenance.clone(),
        };
        let source = format!("/collectors/{}/test", asset.provider);
        let out = encode_tombstone(&t, &source, Utc::now(), &prev).unwrap();
        self.apply(&out)
    }

    /// Records a sweep of `provider`/`scope` that finished `ago` before now.
    pub fn sweep(
        &mut self,
        provider: &str,
        scope: &str,
        status: SweepStatus,
        ago: Duration,
    ) -> u64 {
        let finished = Utc::now() - ago;
        let s = SweepCompleted {
            collector: provider.into(),
            provider: provider.into(),
            scope: scope.into(),
            status,
            started_at: finished - Duration::seconds(2),
            finished_at: finished,
            duration_ms: 2000,
            counts: SweepCounts {
                seen: 3,
                unchanged: 3,
                ..SweepCounts::default()
            },
            error: (status != SweepStatus::Ok).then(|| "AccessDenied".to_owned()),
            provenance: Provenance::default(),
        };
        let out = encode_sweep(&s, &format!("/collectors/{provider}/{scope}")).unwrap();
        self.apply(&out)
    }

    /// Applies a message that does not decode (it goes to the rejected table).
    pub fn reject(&mut self) {
        self.seq += 1;
        let inc = Incoming::decode(
            self.seq,
            "inventory.asset.aws.account.x".into(),
            Utc::now(),
            Bytes::from_static(b"not a cloudevent"),
        );
        self.store.apply(&[inc]).unwrap();
        self.log.push(b"not a cloudevent".to_vec());
    }
}

/// The body of a response as JSON, with its status and content type.
pub async fn json(resp: poem::test::TestResponse) -> (u16, String, Value) {
    let status = resp.0.status().as_u16();
    let ct = resp.0.content_type().unwrap_or_default().to_owned();
    let body = resp.0.into_body().into_string().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, ct, v)
}

/// Asserts a problem+json answer with `status`, returning its detail.
pub async fn problem(resp: poem::test::TestResponse, status: u16) -> Value {
    let (got, ct, body) = json(resp).await;
    assert_eq!(got, status, "{body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}: {body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{body}"
    );
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    body
}

/// Keys of a page.
pub fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

/// One event of an SSE stream (or a comment, as `event == ":"`).
#[derive(Debug)]
pub struct Sse {
    pub event: String,
    pub id: Option<u64>,
    pub data: Value,
}

/// A minimal SSE client over HTTP/1.0 (the server closes the connection at the end).
pub struct SseClient {
    lines: BufReader<TcpStream>,
}

impl SseClient {
    pub async fn connect(
        addr: &str,
        path: &str,
        last_event_id: Option<u64>,
        rcvbuf: Option<u32>,
    ) -> Self {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(b) = rcvbuf {
            sock.set_recv_buffer_size(b).unwrap();
        }
        let mut s = sock.connect(addr.parse().unwrap()).await.unwrap();
        let mut req =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(s);
        let mut status = String::new();
        lines.read_line(&mut status).await.unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut h = String::new();
            lines.read_line(&mut h).await.unwrap();
            if h == "\r\n" || h.is_empty() {
                break;
            }
            if h.to_ascii_lowercase().starts_with("content-type:") {
                assert!(h.contains("text/event-stream"), "{h}");
            }
        }
        Self { lines }
    }

    /// The next event or comment (None at the end of the stream).
    pub async fn next(&mut self) -> Option<Sse> {
        let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
        let mut seen = false;
        loop {
            let mut line = String::new();
            if self.lines.read_line(&mut line).await.unwrap() == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if seen {
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Some(Sse { event, id, data });
                }
                continue;
            }
            seen = true;
            if line.starts_with(':') {
                // A comment: a heartbeat. Report it on its own.
                return Some(Sse {
                    event: ":".into(),
                    id: None,
                    data: Value::Null,
                });
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = value.to_owned(),
                "id" => id = Some(value.parse().unwrap()),
                "data" => data.push_str(value),
                _ => {}
            }
        }
    }

    /// The next `n` change events (skipping heartbeats), within `deadline`.
    pub async fn changes(&mut self, n: usize, deadline: std::time::Duration) -> Vec<Sse> {
        let mut out = Vec::new();
        tokio::time::timeout(deadline, async {
            while out.len() < n {
                let e = self.next().await.expect("stream ended early");
                if e.event == "change" {
                    out.push(e);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {n} changes arrived", out.len()));
        out
    }
}

/// Starts `serve()` on a free port over `nats`, with its DuckDB file in a new temporary directory,
/// and waits until `/readyz` answers 200.
pub async fn serve(
    nats: &NatsServer,
    feed: FeedSettings,
) -> (String, CancellationToken, tempfile::TempDir) {
    serve_in(nats, feed, tempfile::tempdir().unwrap()).await
}

/// [`serve`] with its DuckDB file `api.duckdb` in `dir` (which may already hold one).
pub async fn serve_in(
    nats: &NatsServer,
    feed: FeedSettings,
    dir: tempfile::TempDir,
) -> (String, CancellationToken, tempfile::TempDir) {
    serve_with(nats, feed, TokenSet::default(), dir).await
}

/// [`serve_in`] accepting `tokens`.
pub async fn serve_with(
    nats: &NatsServer,
    feed: FeedSettings,
    tokens: TokenSet,
    dir: tempfile::TempDir,
) -> (String, CancellationToken, tempfile::TempDir) {
    let addr = format!("127.0.0.1:{}", inventory_testkit::free_port());
    let cfg = ServeConfig {
        tokens,
        feed,
        ..serve_config(nats, &addr, dir.path())
    };
    let cancel = CancellationToken::new();
    tokio::spawn(inventory_query_api::serve(cfg, cancel.clone()));
    let end = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr).await {
            s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await.unwrap();
            let mut status = String::new();
            BufReader::new(s).read_line(&mut status).await.unwrap();
            if status.contains(" 200 ") {
                break;
            }
        }
        assert!(Instant::now() < end, "API not ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (addr, cancel, dir)
}

/// The configuration of a test's `serve()` on `addr` over `nats`, with its DuckDB file
/// `api.duckdb` in `dir`: the defaults of `inventory serve`, no tokens.
#[allow(dead_code)]
pub fn serve_config(nats: &NatsServer, addr: &str, dir: &std::path::Path) -> ServeConfig {
    ServeConfig {
        listen: addr.parse().unwrap(),
        db_path: dir.join("api.duckdb"),
        nats: NatsConfig {
            url: nats.url(),
            name: "api-test".into(),
            ..NatsConfig::default()
        },
        stream: StreamSettings::default(),
        tokens: TokenSet::default(),
        sweep_interval: std::time::Duration::from_secs(900),
        public_url: None,
        projector_batch: inventory_projector::RunOptions::default().batch_max,
        projector_batch_bytes: inventory_projector::RunOptions::default().batch_max_bytes,
        duckdb_memory_mib: inventory_projector::store::DEFAULT_MEMORY_MIB,
        limits: inventory_query_api::Limits::default(),
        ready: inventory_query_api::ReadyBounds::default(),
        feed: FeedSettings::default(),
        integrity: Default::default(),
    }
}

/// A minimal HTTP/1.0 client (the server closes the connection after the response).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or_default());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Polls `check` every 50 ms until it holds, failing after `deadline`.
pub async fn poll_until(
    what: &str,
    deadline: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    let end = Instant::now() + deadline;
    while !check().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
