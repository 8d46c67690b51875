//! The bounds on hostile clients, against a real `serve()` over a real `nats-server -js`: bodies
//! refused without being buffered (with and without a valid token, declared or streamed), reads
//! shed with 503 + `Retry-After` under load while `/healthz` stays fast, the connection limit,
//! and the header, idle and request timeouts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

/// As in the binary: the memory measured is the allocator's the server runs with.
#[global_allocator]
static GLOBAL: inventory_allocator::MiMalloc = inventory_allocator::MiMalloc;

use inventory_bus::{NatsConfig, StreamSettings};
use inventory_query_api::{Limits, Role, ServeConfig, TokenSet};
use inventory_schemas::{encode_asset, ChainLink, EventType};
use inventory_testkit::NatsServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const WRITER: &str = "writer-token-for-limits";

struct Api {
    addr: String,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn start(nats: &NatsServer, limits: Limits) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", inventory_testkit::free_port());
    let cfg = ServeConfig {
        tokens: TokenSet::from_tokens(&[(Role::Writer, WRITER)]),
        limits,
        ..common::serve_config(nats, &addr, dir.path())
    };
    let cancel = CancellationToken::new();
    tokio::spawn(inventory_query_api::serve(cfg, cancel.clone()));
    let api = Api {
        addr,
        cancel,
        _dir: dir,
    };
    common::poll_until("readiness", Duration::from_secs(90), async || {
        TcpStream::connect(&api.addr).await.is_ok()
            && send(&api.addr, "GET /readyz HTTP/1.0\r\n\r\n").await.status == 200
    })
    .await;
    api
}

/// A response: status, headers (names lowercased) and body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: body.to_owned(),
        }
    }
}

/// Sends a raw request (which must make the server close: HTTP/1.0 or `Connection: close`).
async fn send(addr: &str, raw: &str) -> Answer {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    Answer::parse(&out)
}

/// Resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Streams a `total`-byte body to `POST /api/v1/monitoring` (declared with `Content-Length`, or
/// chunked) while reading the answer; stops sending when the server closes. Returns the
/// answer, the bytes sent, and the most resident memory seen meanwhile.
async fn upload(addr: &str, token: &str, total: u64, declared: bool) -> (Answer, u64, u64) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let framing = if declared {
        format!("Content-Length: {total}")
    } else {
        "Transfer-Encoding: chunked".to_owned()
    };
    let head = format!(
        "POST /api/v1/monitoring HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n"
    );
    let sampling = CancellationToken::new();
    let sampler = {
        let stop = sampling.clone();
        tokio::spawn(async move {
            let mut peak = rss();
            while !stop.is_cancelled() {
                peak = peak.max(rss());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak.max(rss())
        })
    };
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await.unwrap();
        // A valid JSON start, then filler: the same 64 KiB, never held more than once.
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0u64;
        while sent < total {
            let n = (total - sent).min(chunk.len() as u64) as usize;
            let r = if declared {
                wr.write_all(&chunk[..n]).await
            } else {
                let frame = format!("{n:x}\r\n");
                match wr.write_all(frame.as_bytes()).await {
                    Ok(()) => match wr.write_all(&chunk[..n]).await {
                        Ok(()) => wr.write_all(b"\r\n").await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            };
            if r.is_err() {
                return sent;
            }
            sent += n as u64;
        }
        if !declared {
            let _ = wr.write_all(b"0\r\n\r\n").await;
        }
        sent
    });
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("no answer within 120 s");
    let sent = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("the upload did not stop after the server closed")
        .unwrap();
    sampling.cancel();
    let peak = sampler.await.unwrap();
    (Answer::parse(&raw), sent, peak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_bodies_are_refused_without_being_buffered() {
    inventory_allocator::configure();
    let nats = NatsServer::start();
    let api = start(&nats, Limits::default()).await;
    const MB: u64 = 1 << 20;
    let total = 300 * MB;
    for (token, declared, status) in [
        ("bogus", true, 401),
        ("bogus", false, 401),
        (WRITER, true, 413),
        (WRITER, false, 413),
    ] {
        let before = rss();
        let started = Instant::now();
        let (answer, sent, peak) = upload(&api.addr, token, total, declared).await;
        let case = format!("token {token}, declared length {declared}");
        assert_eq!(answer.status, status, "{case}: {}", answer.body);
        assert!(
            answer
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "{case}: {:?}",
            answer.headers
        );
        let grew = peak.saturating_sub(before);
        assert!(
            grew < 20 * MB,
            "{case}: resident memory grew by {} MB (from {} MB)",
            grew / MB,
            before / MB
        );
        // The server stopped taking the body: the client could not send all of it.
        assert!(
            sent < total,
            "{case}: the whole body was taken ({sent} bytes)"
        );
        eprintln!(
            "{case}: {status} after {:?}, {} MB sent, memory +{} KB",
            started.elapsed(),
            sent / MB,
            grew / 1024
        );
    }
    // A body within the limit, with the writer token, is taken as before.
    let decl = r#"{"kind":"prometheus","name":"prom-limits","url":"http://prom:9090"}"#;
    let answer = send(
        &api.addr,
        &format!(
            "POST /api/v1/monitoring HTTP/1.0\r\nAuthorization: Bearer {WRITER}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{decl}",
            decl.len()
        ),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    // Without a token, a body is refused before it is read, and the detail says why.
    let answer = send(
        &api.addr,
        &format!(
            "POST /api/v1/monitoring HTTP/1.0\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{decl}",
            decl.len()
        ),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(answer.header("www-authenticate").is_some());
}

/// Publishes `n` discovered accounts; returns the last sequence.
async fn fill(nats: &NatsServer, n: u64) -> u64 {
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
    let mut last = 0;
    for start in (0..n).step_by(500) {
        let mut acks = Vec::new();
        for i in start..(start + 500).min(n) {
            let a = inventory_testkit::corpus::account(i, 1);
            let ev = encode_asset(
                EventType::Discovered,
                &a,
                "/collectors/aws/o-1",
                chrono::Utc::now(),
                &ChainLink::default(),
            )
            .unwrap();
            acks.push((inventory_bus::publish_start(&js, &ev).await.unwrap(), ev));
        }
        for (ack, ev) in acks {
            last = inventory_bus::finish(ack, &ev).await.unwrap();
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_diffs_are_answered_or_shed_and_healthz_stays_fast() {
    let nats = NatsServer::start();
    let last = fill(&nats, 4000).await;
    // Two reads at once, none waiting: with 50 clients, some are shed.
    let limits = Limits {
        max_reads: 2,
        read_wait: Duration::ZERO,
        ..Limits::default()
    };
    let api = start(&nats, limits).await;
    common::poll_until(
        "the projector applies everything",
        Duration::from_secs(60),
        async || {
            let a = send(&api.addr, "GET /readyz HTTP/1.0\r\n\r\n").await;
            a.status == 200 && a.body.contains(&format!("\"applied_seq\":{last}"))
        },
    )
    .await;
    // A small page: the diff still walks every asset (off the executor), the answer stays small.
    let path = format!("/api/v1/diff?from=seq:1&to=seq:{last}&limit=10");
    // `/healthz` probed from a thread of its own (blocking sockets), so that the clients' tasks
    // sharing the server's runtime do not count in its latency.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let addr = api.addr.clone();
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let mut lat = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let mut s = std::net::TcpStream::connect(&addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
                let mut out = Vec::new();
                s.read_to_end(&mut out).unwrap();
                lat.push(t.elapsed());
                assert_eq!(Answer::parse(&out).status, 200);
                std::thread::sleep(Duration::from_millis(10));
            }
            lat
        })
    };
    // 50 clients, each with one diff in flight at a time, for a few seconds; a shed one waits
    // `Retry-After` as told.
    let storm = Duration::from_secs(5);
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let addr = api.addr.clone();
            let req = format!("GET {path} HTTP/1.0\r\n\r\n");
            tokio::spawn(async move {
                let end = Instant::now() + storm;
                let mut out = Vec::new();
                while Instant::now() < end {
                    let t = Instant::now();
                    let a = send(&addr, &req).await;
                    let took = t.elapsed();
                    let retry = a.header("retry-after").and_then(|v| v.parse().ok());
                    out.push((a, took));
                    if let Some(secs) = retry {
                        tokio::time::sleep(Duration::from_secs(secs)).await;
                    }
                }
                out
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    let mut slowest = Duration::ZERO;
    for c in clients {
        for (a, took) in c.await.unwrap() {
            slowest = slowest.max(took);
            assert!(took < Duration::from_secs(10), "a diff took {took:?}");
            match a.status {
                200 => {
                    assert!(a.body.contains("\"counts\""), "{}", a.body);
                    ok += 1;
                }
                503 => {
                    let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
                    assert!(secs >= 1);
                    assert!(a.body.contains("\"overloaded\""), "{}", a.body);
                    shed += 1;
                }
                other => panic!("diff answered {other}: {}", a.body),
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = probe.join().unwrap();
    lat.sort();
    let p99 = lat[(lat.len() * 99 / 100).min(lat.len() - 1)];
    eprintln!(
        "diffs: {ok} answered, {shed} shed, slowest {slowest:?}; healthz: {} probes, p50 {:?}, p99 {p99:?}, max {:?}",
        lat.len(),
        lat[lat.len() / 2],
        lat.last().unwrap()
    );
    assert!(ok > 0, "no diff was answered");
    assert!(
        shed > 0,
        "with 2 reads at once and 50 diffs, some must be shed"
    );
    assert!(lat.len() >= 100, "too few healthz probes: {}", lat.len());
    assert!(p99 <= Duration::from_millis(50), "healthz p99 {p99:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_until_one_closes() {
    let nats = NatsServer::start();
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let api = start(&nats, limits).await;
    // Two idle connections take both slots.
    let first = TcpStream::connect(&api.addr).await.unwrap();
    let _second = TcpStream::connect(&api.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A third is queued by the kernel: connected, but not served.
    let addr = api.addr.clone();
    let third = tokio::spawn(async move {
        let a = send(&addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
        (a, Instant::now())
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!third.is_finished(), "the third connection was served");
    let freed = Instant::now();
    drop(first);
    let (a, served) = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the third connection was not served after one closed")
        .unwrap();
    assert_eq!(a.status, 200);
    assert!(served >= freed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut_off() {
    let nats = NatsServer::start();
    let limits = Limits {
        header_timeout: Duration::from_secs(1),
        // Above the request timeout (as documented), so that a slow body gets its 408 first.
        idle_timeout: Duration::from_secs(4),
        request_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let api = start(&nats, limits).await;
    let closed_after = |mut s: TcpStream| async move {
        let t = Instant::now();
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "the connection stayed open");
        (t.elapsed(), out)
    };

    // Headers that never end: the connection is closed after the header timeout.
    let mut s = TcpStream::connect(&api.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (took, _) = closed_after(s).await;
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );

    // A kept-alive connection may rest between requests longer than the header timeout (the
    // header timeout counts from a request's first byte): its next request is served.
    let mut s = TcpStream::connect(&api.addr).await.unwrap();
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..2 {
        s.write_all(healthz).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
                .await
                .expect("an answer")
                .unwrap();
            assert_eq!(
                n,
                1,
                "closed before answering: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
        let a = Answer::parse(&head);
        assert_eq!(a.status, 200);
        let len: usize = a.header("content-length").unwrap().parse().unwrap();
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        // Longer than the header timeout, shorter than the idle timeout.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    // Resting past the idle timeout, it is closed (2.5 s of it are already spent).
    let (took, out) = closed_after(s).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );

    // Headers begun after a rest must still arrive within the header timeout.
    let mut s = TcpStream::connect(&api.addr).await.unwrap();
    s.write_all(healthz).await.unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "the connection stayed open");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(3500),
        "closed {took:?} after the unfinished headers began"
    );

    // A body that stops arriving: 408 after the request timeout.
    let mut s = TcpStream::connect(&api.addr).await.unwrap();
    s.write_all(
        format!(
            "POST /api/v1/monitoring HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WRITER}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (took, out) = closed_after(s).await;
    let a = Answer::parse(&out);
    assert_eq!(a.status, 408, "{}", a.body);
    assert!(a.body.contains("request_timeout"), "{}", a.body);
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(10),
        "answered after {took:?}"
    );
}
