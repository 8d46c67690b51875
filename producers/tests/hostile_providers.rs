//! Collectors facing hostile or broken providers, against local servers that speak each
//! provider's wire format over raw HTTP/1.1 (so that the test sets `Content-Length`, chunked
//! framing and `Retry-After` byte for byte, and counts what it managed to send), with every
//! sweep recorded on a real `nats-server`:
//! - an enormous `Retry-After` (2^64-1 seconds) is clamped to the single-wait bound; the sweep
//!   ends `partial` or `failed` within its deadline, and nothing panics;
//! - an answer larger than the response limit is refused, from its `Content-Length` or while it
//!   streams, without being read whole; the sweep is `partial` or `failed` and names the limit.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{all, bus};
use inventory_producers::sources::{
    AzureConfig, AzureSource, GcpConfig, GcpSource, PrometheusConfig, PrometheusSource,
};
use inventory_producers::{run_sweep, Source, SweepOptions, SweepReport};
use inventory_schemas::SweepStatus;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1024 * 1024;
/// The response limit of these tests.
const LIMIT: u64 = MIB;
/// What a hostile server offers: 256 times the limit.
const HUGE: u64 = 256 * MIB;
const HUGE_RETRY_AFTER: &str = "18446744073709551615";
/// A JWT-shaped token (unsigned) naming the principal: appid and oid.
const AZURE_TOKEN: &str =
    "eyJhbGciOiJub25lIn0.eyJhcHBpZCI6ImFwcC0xIiwib2lkIjoib2JqLTIiLCJ0aWQiOiJ0In0.c2ln";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// What the server answers to one request.
enum Answer {
    /// A JSON document, framed by `Content-Length`.
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// `HUGE` bytes of JSON whitespace: announced in `Content-Length` when `declared`, else
    /// chunked with no length.
    Huge { declared: bool },
}

fn ok(body: Value) -> Answer {
    Answer::Json {
        status: 200,
        headers: Vec::new(),
        body,
    }
}

/// `(method, request target)` → answer.
type Script = Arc<dyn Fn(&str, &str) -> Answer + Send + Sync>;

struct Fake {
    base: String,
    /// `(method, request target, when)` of every request.
    log: Arc<Mutex<Vec<(String, String, Instant)>>>,
    /// Body bytes of `Huge` answers the server managed to write.
    huge_sent: Arc<AtomicU64>,
}

impl Fake {
    fn requests(&self) -> Vec<(String, Instant)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t, at)| (t.clone(), *at))
            .collect()
    }
}

async fn serve(script: Script) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let huge_sent = Arc::new(AtomicU64::new(0));
    let (l, h) = (log.clone(), huge_sent.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(answer(sock, script.clone(), l.clone(), h.clone()));
        }
    });
    Fake {
        base,
        log,
        huge_sent,
    }
}

/// Serves one request (bodiless GET or POST) and closes the connection.
async fn answer(
    mut sock: TcpStream,
    script: Script,
    log: Arc<Mutex<Vec<(String, String, Instant)>>>,
    huge_sent: Arc<AtomicU64>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut line = head.lines().next().unwrap_or_default().split(' ');
    let method = line.next().unwrap_or_default().to_owned();
    let target = line.next().unwrap_or_default().to_owned();
    log.lock()
        .unwrap()
        .push((method.clone(), target.clone(), Instant::now()));
    match script(&method, &target) {
        Answer::Json {
            status,
            headers,
            body,
        } => {
            let body = body.to_string();
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = sock.write_all(out.as_bytes()).await;
        }
        Answer::Huge { declared } => {
            let framing = if declared {
                format!("content-length: {HUGE}")
            } else {
                "transfer-encoding: chunked".to_owned()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n{framing}\r\nconnection: close\r\n\r\n"
            );
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let data = vec![b' '; 64 * 1024];
            let mut written = 0u64;
            while written < HUGE {
                let sent = if declared {
                    sock.write_all(&data).await
                } else {
                    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
                    chunk.extend_from_slice(&data);
                    chunk.extend_from_slice(b"\r\n");
                    sock.write_all(&chunk).await
                };
                if sent.is_err() {
                    break; // the client hung up
                }
                written += data.len() as u64;
                huge_sent.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            if !declared && written >= HUGE {
                let _ = sock.write_all(b"0\r\n\r\n").await;
            }
        }
    }
    let _ = sock.shutdown().await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        429 => "Too Many Requests",
        _ => "Error",
    }
}

/// Runs one sweep with a generous bound on its duration: a hang is a failure, not a stuck test.
async fn sweep(b: &common::Bus, src: &dyn Source) -> (SweepReport, Duration) {
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(60),
        run_sweep(&b.js, &b.stream, src, &SweepOptions::default()),
    )
    .await
    .expect("the sweep ends")
    .unwrap();
    (r, started.elapsed())
}

/// The sweep recorded on the stream agrees with the report.
async fn recorded(b: &common::Bus, r: &SweepReport) {
    let msgs = all(b).await;
    let sweep = msgs.last().unwrap().sweep();
    assert_eq!(sweep.status, r.status);
    assert_eq!(sweep.error, r.error);
}

/// The gaps between consecutive requests whose target contains `needle`.
fn gaps(fake: &Fake, needle: &str) -> Vec<Duration> {
    let at: Vec<Instant> = fake
        .requests()
        .into_iter()
        .filter(|(t, _)| t.contains(needle))
        .map(|(_, at)| at)
        .collect();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

// ---- Azure Resource Manager ----

fn azure(fake: &Fake) -> AzureSource {
    let mut c = AzureConfig::new(TENANT);
    c.endpoint = fake.base.clone();
    c.access_token = Some(AZURE_TOKEN.to_owned());
    c.management_groups = false;
    c.retry_base = Duration::from_millis(50);
    c.retry_max = Duration::from_millis(500);
    c.deadline = Duration::from_secs(3);
    c.max_response_bytes = LIMIT;
    AzureSource::new(c).unwrap()
}

fn subscription() -> Value {
    let id = "5f1c1f4e-0b5a-4a4e-9a53-000000000001";
    json!({
        "id": format!("/subscriptions/{id}"),
        "authorizationSource": "RoleBased",
        "subscriptionId": id,
        "tenantId": TENANT,
        "displayName": "sub-1",
        "state": "Enabled",
        "tags": {"env": "prod"}
    })
}

fn arm_throttled() -> Answer {
    Answer::Json {
        status: 429,
        headers: vec![
            ("retry-after", HUGE_RETRY_AFTER.to_owned()),
            ("x-ms-request-id", "throttled-1".to_owned()),
        ],
        body: json!({"error": {"code": "TooManyRequests", "message": "The request is being throttled."}}),
    }
}

const ARM_PAGE_1: &str = "/subscriptions?api-version=2022-12-01";

#[tokio::test]
async fn azure_retry_after_of_2_pow_64_waits_the_clamped_maximum_and_fails_the_sweep() {
    let b = bus().await;
    let fake = serve(Arc::new(|_: &str, _: &str| arm_throttled())).await;
    let (r, took) = sweep(&b, &azure(&fake)).await;
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    let error = r.error.clone().unwrap();
    assert!(
        error.contains("429 TooManyRequests") && error.contains("gave up after"),
        "{error}"
    );
    recorded(&b, &r).await;
    // Each wait was the clamped maximum (500 ms), not 0 and not 2^64-1 s; the 3 s deadline
    // ended the retries.
    let gaps = gaps(&fake, ARM_PAGE_1);
    assert!(gaps.len() >= 2, "{gaps:?}");
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(450) && *g < Duration::from_secs(3),
            "{gaps:?}"
        );
    }
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[tokio::test]
async fn azure_answers_over_the_limit_are_refused_without_being_read() {
    let b = bus().await;
    // Page 1 announces 256 MiB: refused from its Content-Length, not retried.
    let fake = serve(Arc::new(|_: &str, _: &str| Answer::Huge { declared: true })).await;
    let (r, _) = sweep(&b, &azure(&fake)).await;
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    let error = r.error.clone().unwrap();
    assert!(
        error.starts_with("ARM GET /subscriptions: HTTP 200 OK: response of 268435456 bytes refused: larger than the limit of 1048576 bytes (INVENTORY_COLLECT_MAX_RESPONSE_BYTES)"),
        "{error}"
    );
    recorded(&b, &r).await;
    assert_eq!(
        fake.requests().len(),
        1,
        "a response too large is not retried"
    );
    let sent = fake.huge_sent.load(Ordering::Relaxed);
    assert!(sent < HUGE / 4, "the server could send {sent} bytes");

    // Page 2 streams 256 MiB without a length: refused past the limit; what page 1 listed is
    // published, the sweep is partial.
    let b = bus().await;
    let base = Arc::new(Mutex::new(String::new()));
    let link = base.clone();
    let fake = serve(Arc::new(move |_: &str, target: &str| {
        if target == ARM_PAGE_1 {
            ok(json!({
                "value": [subscription()],
                "nextLink": format!("{}/subscriptions?api-version=2022-12-01&%24skiptoken=2", link.lock().unwrap()),
            }))
        } else {
            Answer::Huge { declared: false }
        }
    }))
    .await;
    *base.lock().unwrap() = fake.base.clone();
    let (r, _) = sweep(&b, &azure(&fake)).await;
    assert_eq!(
        (r.status, r.counts.discovered, r.exit_code()),
        (SweepStatus::Partial, 1, 2)
    );
    let error = r.error.clone().unwrap();
    assert!(
        error.contains("response refused after 1048576 bytes: larger than the limit of 1048576 bytes (INVENTORY_COLLECT_MAX_RESPONSE_BYTES)"),
        "{error}"
    );
    recorded(&b, &r).await;
    assert_eq!(fake.requests().len(), 2);
    let sent = fake.huge_sent.load(Ordering::Relaxed);
    assert!(sent < HUGE / 4, "the server could send {sent} bytes");
}

// ---- GCP Resource Manager ----

fn gcp(fake: &Fake) -> GcpSource {
    GcpSource::new(GcpConfig {
        endpoint: Some(fake.base.clone()),
        scope: "org-1".into(),
        page_size: 1,
        deadline: Duration::from_secs(3),
        timeout: Duration::from_secs(10),
        retry_initial: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        max_response_bytes: LIMIT,
        access_token: Some("ya29.test-token".into()),
        ..GcpConfig::default()
    })
    .unwrap()
}

fn gcp_page_1() -> Answer {
    ok(json!({
        "projects": [{
            "name": "projects/101",
            "parent": "organizations/1",
            "projectId": "prod-api",
            "state": 1,
            "displayName": "prod api",
            "createTime": "2024-03-01T09:00:00.000Z",
        }],
        "nextPageToken": "page-2",
    }))
}

const GCP_PAGE_2: &str = "/v3/projects:search?pageSize=1&pageToken=page-2&";

#[tokio::test]
async fn gcp_retry_after_of_2_pow_64_on_a_later_page_makes_a_partial_sweep() {
    let b = bus().await;
    let fake = serve(Arc::new(|_: &str, target: &str| {
        if target.starts_with(GCP_PAGE_2) {
            Answer::Json {
                status: 429,
                headers: vec![("retry-after", HUGE_RETRY_AFTER.to_owned())],
                body: json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                    "message": "Quota exceeded for quota metric 'Read requests'."}}),
            }
        } else {
            gcp_page_1()
        }
    }))
    .await;
    let (r, took) = sweep(&b, &gcp(&fake)).await;
    assert_eq!(
        (
            r.status,
            r.counts.discovered,
            r.counts.deleted,
            r.exit_code()
        ),
        (SweepStatus::Partial, 1, 0, 2)
    );
    let error = r.error.clone().unwrap();
    assert!(
        error.contains("SearchProjects page 2: still failing after")
            && error.contains("HTTP 429 RESOURCE_EXHAUSTED"),
        "{error}"
    );
    recorded(&b, &r).await;
    let gaps = gaps(&fake, GCP_PAGE_2);
    assert!(gaps.len() >= 2, "{gaps:?} {:?}", fake.requests());
    for g in &gaps {
        assert!(
            *g >= Duration::from_millis(450) && *g < Duration::from_secs(3),
            "{gaps:?}"
        );
    }
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[tokio::test]
async fn gcp_answers_over_the_limit_fail_the_sweep_without_being_read() {
    for declared in [true, false] {
        let b = bus().await;
        let fake = serve(Arc::new(move |_: &str, _: &str| Answer::Huge { declared })).await;
        let (r, _) = sweep(&b, &gcp(&fake)).await;
        assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
        let error = r.error.clone().unwrap();
        assert!(
            error.starts_with("SearchProjects page 1: HTTP 200: response")
                && error.contains(
                    "larger than the limit of 1048576 bytes (INVENTORY_COLLECT_MAX_RESPONSE_BYTES)"
                ),
            "{error}"
        );
        recorded(&b, &r).await;
        assert_eq!(fake.requests().len(), 1, "not retried");
        let sent = fake.huge_sent.load(Ordering::Relaxed);
        assert!(
            sent < HUGE / 4,
            "declared={declared}: the server could send {sent} bytes"
        );
    }
}

// ---- Prometheus (and Grafana: the same reader) ----

#[tokio::test]
async fn prometheus_answers_over_the_limit_fail_the_sweep_without_being_read() {
    for declared in [true, false] {
        let b = bus().await;
        let fake = serve(Arc::new(move |_: &str, _: &str| Answer::Huge { declared })).await;
        let src = PrometheusSource::new(PrometheusConfig {
            max_response_bytes: LIMIT,
            ..PrometheusConfig::new(fake.base.clone())
        })
        .unwrap();
        let (r, _) = sweep(&b, &src).await;
        assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
        let error = r.error.clone().unwrap();
        let shown = format!("GET {}/-/healthy: HTTP 200 OK: response", fake.base);
        assert!(
            error.starts_with(&shown)
                && error.contains(
                    "larger than the limit of 1048576 bytes (INVENTORY_COLLECT_MAX_RESPONSE_BYTES)"
                ),
            "{error}"
        );
        recorded(&b, &r).await;
        let sent = fake.huge_sent.load(Ordering::Relaxed);
        assert!(
            sent < HUGE / 4,
            "declared={declared}: the server could send {sent} bytes"
        );
    }
}
