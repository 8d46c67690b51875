//! `/readyz` tells the truth about a real `serve()` over a real `nats-server -js`: ready once
//! caught up, also when idle for longer than the stall bound; not ready (503 problem with the
//! reason and `Retry-After`) when the projector stalls — here because the NATS server is frozen
//! (SIGSTOP) right after the stream received news: whether or not the projector applied the news
//! before the freeze, it can no longer reach the stream to know how far behind it is; ready again
//! once the server is resumed and the news is applied. (That the projector behind a stream with
//! newer events and no progress is reported as stalled, and the lag bound, are tested on the rule
//! itself in `service/health.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use inventory_bus::{NatsConfig, StreamSettings};
use inventory_query_api::{ReadyBounds, ServeConfig};
use inventory_schemas::{encode_asset, ChainLink, EventType};
use inventory_testkit::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// `GET /readyz`: status, `Retry-After`, body.
async fn readyz(addr: &str) -> (u16, Option<String>, serde_json::Value) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return (0, None, serde_json::Value::Null);
    };
    s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, None, serde_json::Value::Null);
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        .map(|(_, v)| v.trim().to_owned());
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status, retry, body)
}

/// The pid of the `nats-server` child of this process listening on `port`.
fn nats_pid(port: u16) -> u32 {
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let ours = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                // pid (comm) state ppid ...
                let rest = s.rsplit_once(')')?.1.to_owned();
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            })
            == Some(me);
        if ours
            && args.first().is_some_and(|a| a.ends_with("nats-server"))
            && args
                .windows(2)
                .any(|w| w[0] == "-p" && w[1] == port.to_string())
        {
            return pid;
        }
    }
    panic!("no nats-server child on port {port}");
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Pauses a process; resumes it when dropped (also when the test fails).
struct Paused(u32);

impl Paused {
    fn new(pid: u32) -> Self {
        signal(pid, "-STOP");
        Self(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

async fn publish(js: &async_nats::jetstream::Context, from: u64, n: u64) -> u64 {
    let mut last = 0;
    for i in from..from + n {
        let a = inventory_testkit::corpus::account(i, 1);
        let ev = encode_asset(
            EventType::Discovered,
            &a,
            "/collectors/aws/o-1",
            chrono::Utc::now(),
            &ChainLink::default(),
        )
        .unwrap();
        last = inventory_bus::publish(js, &ev).await.unwrap();
    }
    last
}

async fn wait_for(
    addr: &str,
    what: &str,
    within: Duration,
    want: impl Fn(u16, &serde_json::Value) -> bool,
) -> (Option<String>, serde_json::Value) {
    let end = Instant::now() + within;
    loop {
        let (status, retry, body) = readyz(addr).await;
        if want(status, &body) {
            return (retry, body);
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}; last /readyz: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_projector_turns_readyz_unready_until_it_recovers() {
    let nats = NatsServer::start();
    let client = inventory_bus::connect(&NatsConfig {
        url: nats.url(),
        ..NatsConfig::default()
    })
    .await
    .unwrap();
    let js = async_nats::jetstream::new(client);
    inventory_bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let first = publish(&js, 0, 20).await;

    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", inventory_testkit::free_port());
    let stall_after = Duration::from_secs(3);
    let cfg = ServeConfig {
        ready: ReadyBounds {
            stall_after,
            max_lag: ReadyBounds::DEFAULT_MAX_LAG,
        },
        ..common::serve_config(&nats, &addr, dir.path())
    };
    let cancel = CancellationToken::new();
    let server = tokio::spawn(inventory_query_api::serve(cfg, cancel.clone()));

    wait_for(&addr, "ready", Duration::from_secs(30), |s, b| {
        s == 200 && b["applied_seq"] == first
    })
    .await;
    // Ready and idle for longer than the bound: nothing to apply is not a stall.
    tokio::time::sleep(stall_after + Duration::from_secs(2)).await;
    let (status, _, body) = readyz(&addr).await;
    assert_eq!(status, 200, "{body}");

    // News, then the broker freezes: the projector cannot reach the stream any more.
    let news = publish(&js, 20, 5).await;
    let paused = Paused::new(nats_pid(nats.port()));
    let frozen = Instant::now();
    let (retry, body) =
        wait_for(&addr, "not ready", Duration::from_secs(60), |s, _| s == 503).await;
    let unready_after = frozen.elapsed();
    assert!(
        unready_after >= stall_after - Duration::from_millis(500),
        "unready after {unready_after:?}, before the bound: {body}"
    );
    assert_eq!(body["code"], "not_ready", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("not reached the stream") || detail.contains("stalled"),
        "{detail}"
    );
    assert!(retry.is_some(), "503 without Retry-After");
    // It stays unready while the broker is frozen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(readyz(&addr).await.0, 503);

    // The broker resumes: the news is applied and the API is ready again.
    drop(paused);
    let resumed = Instant::now();
    let (_, body) = wait_for(&addr, "ready again", Duration::from_secs(90), |s, b| {
        s == 200 && b["applied_seq"] == news
    })
    .await;
    eprintln!(
        "unready {unready_after:?} after the pause; ready again {:?} after resuming: {body}",
        resumed.elapsed()
    );
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
}
