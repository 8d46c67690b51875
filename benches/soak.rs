//! `make bench-soak`: the real `inventory serve` under a steady mixed load for a long time
//! (issue 11: 30 minutes of 200 req/s of mixed reads, ingest and 50 SSE clients; resident memory
//! flat within ±10 %, zero errors).
//!
//! In a fresh nats-server and a fresh DuckDB file: publish a corpus (`SOAK_ASSETS` AWS accounts ×
//! `SOAK_VERSIONS` versions, the realistic events of `projector/benches/replay.rs`), start
//! `inventory serve` with a writer token (`INVENTORY_API_TOKENS`; every request sends it), wait for
//! `/readyz`, check that every route answers 200, connect `SOAK_SSE_CLIENTS` clients to
//! `/api/v1/changes/stream`; then for `SOAK_SECS`, all at once:
//! - one oha process per read route at a fixed rate (`-q`, `--latency-correction`, `SOAK_CONNS`
//!   connections each), the rates summing to `SOAK_RATE` ([`MIX`]: the current-view page, a lookup
//!   by random key, `/accounts`, an `as_of` page, a random asset's history, a `changes` page, a
//!   whole-estate `diff`, `/collectors`, `/healthz`);
//! - a task publishing `SOAK_INGEST_RATE` new versions a second of random assets through
//!   JetStream (real encoded events extending their hash chains);
//! - the SSE clients reading continuously: each counts the changes it receives, checks that their
//!   ids follow each other with neither gap nor duplicate, and reconnects with `Last-Event-ID`
//!   when the server ends its feed with an `end` event (counted; not an error);
//! - every 10 s: the server's resident memory (VmRSS), DuckDB's share of it
//!   (`inventory_duckdb_memory_bytes` from `/metrics`) and `/readyz`.
//!
//! Then: stop the ingest, wait until every SSE client has received the last event published,
//! check the read model serves it and rejected nothing, stop `serve` (SIGTERM). Printed: per route
//! the requests, non-2xx answers and errors (from oha's JSON) and latencies; the SSE totals; RSS
//! first (after `SOAK_WARMUP_SECS`), min, max, last and median of the samples after the warm-up,
//! and whether min and max stay within ±10 % of that median; then one `soak: key=value …` line.
//! Exits non-zero on any error (non-2xx, failed request, SSE error, `/readyz` not ready, a client
//! behind at the end) or when the memory criterion fails.
//!
//! Knobs: `SOAK_SECS` (2400), `SOAK_WARMUP_SECS` (600), `SOAK_RATE` (200), `SOAK_SSE_CLIENTS`
//! (50), `SOAK_INGEST_RATE` (50), `SOAK_ASSETS` (100000), `SOAK_VERSIONS` (3), `SOAK_CONNS` (4),
//! `SOAK_DUCKDB_MEMORY_MIB` (64: the server's `INVENTORY_DUCKDB_MEMORY_MIB`; its own default, 256,
//! lets DuckDB cache the blocks it writes and drop them in one step, see BENCHMARKS.md), `OHA`
//! (the oha binary; default `oha` on PATH; `make bench-soak` installs one into .deps/oha).
//! By default the memory is judged over 30 minutes, after 10 minutes of the same load in which
//! the allocator's and DuckDB's working sets fill (BENCHMARKS.md shows why both are needed), on
//! an estate of issue 10's size (100,000 assets, 300,000 events).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../projector/benches/common/corpus_stream.rs"]
mod corpus_stream;
#[path = "common/serve.rs"]
mod serve;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corpus_stream::publish_corpus_links;
use inventory_bus::{ensure_stream, StreamSettings};
use inventory_testkit::{sse, NatsServer};
use serde_json::Value;
use serve::{
    check_ingested, env, get, id_regex, ingest, machine, native_id, oha as run_oha, oha_version,
    server_log, thousands, wait_ready, Load, Oha, Serve,
};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// The read mix: (route, path or `--rand-regex-url` pattern, random, share of `SOAK_RATE` in
/// 1/200). At the default 200 req/s the shares are the rates.
const MIX: [(&str, &str, bool, u64); 9] = [
    ("current view page", "/api/v1/assets?limit=100", false, 40),
    ("lookup by key", "/api/v1/assets/aws/account/{ID}", true, 60),
    (
        "accounts",
        "/api/v1/accounts?provider=aws&limit=100",
        false,
        20,
    ),
    (
        "as_of page",
        "/api/v1/assets?limit=100&as_of=seq:{HALF}",
        false,
        20,
    ),
    (
        "history",
        "/api/v1/assets/aws/account/{ID}/history",
        true,
        20,
    ),
    (
        "changes page",
        "/api/v1/changes?limit=100&since=seq:{HALF}",
        false,
        16,
    ),
    (
        "diff (whole estate)",
        "/api/v1/diff?from=seq:{QUARTER}&to=seq:{EVENTS}",
        false,
        4,
    ),
    ("collectors", "/api/v1/collectors", false, 10),
    ("healthz", "/healthz", false, 10),
];
/// The total of the shares in [`MIX`].
const MIX_TOTAL: u64 = 200;
/// Interval of the RSS and `/readyz` samples.
const SAMPLE: Duration = Duration::from_secs(10);
/// Memory criterion: every sample after the warm-up within this share of their median.
const RSS_BAND: f64 = 0.10;
/// An SSE client silent this long (no bytes at all; heartbeats come every 15 s) reconnects and
/// counts an error; one that receives no change this long while the ingest runs counts a stall.
const SSE_SILENCE: Duration = Duration::from_secs(60);
const SSE_STALL: Duration = Duration::from_secs(30);
/// After the ingest stops, how long the SSE clients have to receive its last event.
const SSE_DRAIN: Duration = Duration::from_secs(60);

struct Knobs {
    secs: u64,
    warmup: u64,
    rate: u64,
    sse_clients: u64,
    ingest_rate: u64,
    assets: u64,
    versions: u64,
    conns: u64,
    /// `INVENTORY_DUCKDB_MEMORY_MIB` of the server under test.
    duckdb_mib: u64,
    oha: String,
}

/// What one SSE client saw, shared with the sampler.
#[derive(Default)]
struct SseClient {
    /// Changes received.
    events: AtomicU64,
    /// `end` events received (the server ended the feed; the client resumed).
    ends: AtomicU64,
    /// Id of the last change received.
    last_id: AtomicU64,
    /// Longest time between two changes received, in ms.
    max_gap_ms: AtomicU64,
}

/// All SSE clients: each one's counters, and the errors of all by kind.
struct Sse {
    clients: Vec<SseClient>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Sse {
    fn error(&self, what: impl Into<String>) {
        *self.errors.lock().unwrap().entry(what.into()).or_default() += 1;
    }

    fn sum(&self, f: impl Fn(&SseClient) -> u64) -> u64 {
        self.clients.iter().map(f).sum()
    }

    fn errors(&self) -> u64 {
        self.errors.lock().unwrap().values().sum()
    }
}

/// One SSE client: reads `/api/v1/changes/stream` continuously until `stop`, resuming with
/// `Last-Event-ID` after an `end` event or a failure (which is counted as an error).
async fn sse_client(
    http: reqwest::Client,
    url: String,
    auth: String,
    sse: Arc<Sse>,
    n: usize,
    stop: CancellationToken,
) {
    let me = &sse.clients[n];
    // The last change received (the resume point) and when.
    let mut last: Option<u64> = None;
    let mut last_at = Instant::now();
    while !stop.is_cancelled() {
        let mut req = http
            .get(&url)
            .header("Authorization", &auth)
            .header("Accept", "text/event-stream");
        if let Some(id) = last {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let sent = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(30), req.send()) => r,
            _ = stop.cancelled() => return,
        };
        let mut resp = match sent {
            Ok(Ok(r)) if r.status() == reqwest::StatusCode::OK => r,
            Ok(Ok(r)) => {
                sse.error(format!("connect: HTTP {}", r.status().as_u16()));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Ok(Err(e)) => {
                sse.error(format!("connect: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(_) => {
                sse.error("connect: no answer in 30 s");
                continue;
            }
        };
        let mut buf: Vec<u8> = Vec::new();
        'feed: loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(SSE_SILENCE, resp.chunk()) => c,
                _ = stop.cancelled() => return,
            };
            let bytes = match chunk {
                Ok(Ok(Some(b))) => b,
                Ok(Ok(None)) => {
                    sse.error("stream closed without an end event");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
                Ok(Err(e)) => {
                    sse.error(format!("read: {e}"));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
                Err(_) => {
                    sse.error(format!("silent for {} s", SSE_SILENCE.as_secs()));
                    break;
                }
            };
            for ev in sse::feed(&mut buf, &bytes) {
                match ev.event.as_str() {
                    "change" => {
                        let Some(id) = ev.id.as_deref().and_then(|i| i.parse::<u64>().ok()) else {
                            sse.error("change without a numeric id");
                            continue;
                        };
                        match last {
                            Some(l) if id <= l => sse.error("change id not increasing"),
                            Some(l) if id > l + 1 => sse.error("gap in change ids"),
                            _ => {}
                        }
                        let now = Instant::now();
                        let gap = now.duration_since(last_at).as_millis() as u64;
                        // The first change after the start counts from the connection.
                        me.max_gap_ms.fetch_max(gap, Ordering::Relaxed);
                        last_at = now;
                        last = Some(id);
                        me.last_id.store(id, Ordering::Relaxed);
                        me.events.fetch_add(1, Ordering::Relaxed);
                    }
                    "end" => {
                        me.ends.fetch_add(1, Ordering::Relaxed);
                        let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                        match v["last_event_id"].as_u64() {
                            Some(id) if Some(id) != last && last.is_some() => {
                                sse.error("end names another last id than received")
                            }
                            Some(id) => last = Some(id),
                            // Not resumable (the read model was rebuilt): start afresh.
                            None => last = None,
                        }
                        break 'feed;
                    }
                    other => sse.error(format!("unexpected event {other:?}")),
                }
            }
        }
    }
}

/// `/readyz`: the applied sequence when ready, else why not (status and detail).
async fn readyz(http: &reqwest::Client, serve: &Serve) -> Result<u64, String> {
    let resp = http
        .get(serve.url("/readyz"))
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    match (status, v["applied_seq"].as_u64()) {
        (200, Some(seq)) => Ok(seq),
        _ => Err(format!(
            "HTTP {status}: {}",
            v["detail"].as_str().unwrap_or("(no detail)")
        )),
    }
}

/// The median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Least-squares slope of (t s, y) in y per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let cov: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var * 3600.0
    }
}

/// Runs the soak; returns whether it passed.
async fn run(k: &Knobs) -> bool {
    let machine = machine();
    let oha_version = oha_version(&k.oha);
    println!("machine: {machine}");
    println!("load generator: {oha_version} ({})", k.oha);
    let events = k.assets * k.versions;
    println!(
        "soak: {} s (warm-up {} s), {} req/s of reads, {} SSE clients, ingest {} events/s; corpus {} assets × {} versions; INVENTORY_DUCKDB_MEMORY_MIB={}",
        k.secs, k.warmup, k.rate, k.sse_clients, k.ingest_rate, k.assets, k.versions, k.duckdb_mib
    );

    let nats = NatsServer::start();
    let nats_url = nats.url();
    let client = async_nats::connect(&nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let t = Instant::now();
    let (bytes, links) = publish_corpus_links(&js, events, k.assets).await;
    println!(
        "publish: {events} events ({:.0} B average) in {:.1} s",
        bytes as f64 / events as f64,
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::Builder::new()
        .prefix("inventory-bench-soak-")
        .tempdir()
        .unwrap();
    let db = dir.path().join("api.duckdb");
    let log = dir.path().join("serve.log");
    // A writer token, sent with every request (reads stay open: no viewer token is configured).
    let token = hex::encode(rand::random::<[u8; 16]>());
    let tokens = format!("writer:{}", hex::encode(Sha256::digest(token.as_bytes())));
    let auth = format!("Bearer {token}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let t = Instant::now();
    let mut serve = Serve::start_with(
        &nats_url,
        &db,
        &log,
        &[
            ("INVENTORY_API_TOKENS", tokens),
            ("INVENTORY_DUCKDB_MEMORY_MIB", k.duckdb_mib.to_string()),
        ],
    );
    let seq = wait_ready(&http, &mut serve, &log, events, Duration::from_secs(1800)).await;
    println!(
        "serve: /readyz 200 after {:.1} s (applied_seq {seq}); RSS {:.0} MiB",
        t.elapsed().as_secs_f64(),
        serve.rss_mib()
    );

    // The routes, with their rates.
    let id = format!("aws/account/{}", native_id(k.assets / 2));
    let id_re = id_regex(k.assets);
    let fill = |p: &str, rand: bool| {
        p.replace(
            "aws/account/{ID}",
            &if rand {
                format!("aws/account/{id_re}")
            } else {
                id.clone()
            },
        )
        .replace("{HALF}", &(events / 2).max(1).to_string())
        .replace("{QUARTER}", &(events / 4).max(1).to_string())
        .replace("{EVENTS}", &events.to_string())
    };
    let routes: Vec<(&str, String, String, bool, u64)> = MIX
        .iter()
        .map(|&(name, path, rand, share)| {
            let rate = ((share * k.rate) as f64 / MIX_TOTAL as f64)
                .round()
                .max(1.0) as u64;
            (name, fill(path, false), fill(path, rand), rand, rate)
        })
        .collect();
    let total_rate: u64 = routes.iter().map(|r| r.4).sum();
    println!("check (one request each):");
    for (_, check, _, _, _) in &routes {
        let (status, body) = get(&http, &serve.url(check)).await;
        assert!(status == 200, "GET {check} answered {status}: {body}");
        println!("  200 {:>8} B  GET {check}", body.len());
    }

    // The SSE clients, connected before the load starts.
    let sse = Arc::new(Sse {
        clients: (0..k.sse_clients).map(|_| SseClient::default()).collect(),
        errors: Mutex::new(BTreeMap::new()),
    });
    let stop_sse = CancellationToken::new();
    let sse_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let sse_tasks: Vec<_> = (0..k.sse_clients as usize)
        .map(|n| {
            tokio::spawn(sse_client(
                sse_http.clone(),
                serve.url("/api/v1/changes/stream"),
                auth.clone(),
                sse.clone(),
                n,
                stop_sse.clone(),
            ))
        })
        .collect();

    // The load.
    let headers = [format!("Authorization: {auth}")];
    let t0 = Instant::now();
    let loads: Vec<_> = routes
        .iter()
        .map(|(_, _, load, rand, rate)| {
            let o = Oha {
                bin: &k.oha,
                conns: k.conns,
                secs: k.secs,
                rate: Some(*rate),
                rand_url: *rand,
                headers: &headers,
            };
            let url = serve.url(load);
            async move { run_oha(&o, &url).await }
        })
        .collect();
    let loads = futures::future::join_all(loads);
    let stop_ingest = CancellationToken::new();
    let ingest_task = tokio::spawn(ingest(
        js.clone(),
        links,
        k.versions,
        events,
        k.ingest_rate,
        stop_ingest.clone(),
    ));
    println!(
        "load: {total_rate} req/s over {} routes (oha -c {} each), ingest {} events/s, {} SSE clients, for {} s",
        routes.len(),
        k.conns,
        k.ingest_rate,
        k.sse_clients,
        k.secs
    );

    // Samples every 10 s while oha runs.
    let sampler = async {
        let mut samples: Vec<(f64, f64, f64)> = Vec::new();
        let mut not_ready = 0u64;
        let mut stalls = 0u64;
        let mut seen: Vec<(u64, Instant)> = vec![(0, Instant::now()); k.sse_clients as usize];
        let mut tick = tokio::time::interval(SAMPLE);
        tick.tick().await;
        while t0.elapsed() < Duration::from_secs(k.secs) {
            tick.tick().await;
            let t = t0.elapsed().as_secs_f64();
            serve.check_running(&log);
            let rss = serve.rss_mib();
            // DuckDB's share of it, to tell the database's cache from the rest.
            let (_, metrics) = get(&http, &serve.url("/metrics")).await;
            let duckdb = metrics
                .lines()
                .find_map(|l| l.strip_prefix("inventory_duckdb_memory_bytes "))
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(f64::NAN, |b| b / 1_048_576.0);
            samples.push((t, rss, duckdb));
            let ready = readyz(&http, &serve).await;
            if let Err(why) = &ready {
                println!("  t={t:>5.0} s  /readyz not ready: {why}");
                not_ready += 1;
            }
            // A client that received no change for SSE_STALL while the ingest runs is stalled.
            let now = Instant::now();
            for (c, s) in sse.clients.iter().zip(seen.iter_mut()) {
                let n = c.events.load(Ordering::Relaxed);
                if n != s.0 {
                    *s = (n, now);
                } else if now.duration_since(s.1) >= SSE_STALL {
                    stalls += 1;
                    s.1 = now;
                }
            }
            if samples.len().is_multiple_of(6) || t as u64 + SAMPLE.as_secs() > k.secs {
                println!(
                    "  t={t:>5.0} s  RSS {rss:>6.1} MiB (DuckDB {duckdb:.1})  applied_seq {}  SSE changes {} ends {} errors {}",
                    ready.map_or("(not ready)".to_owned(), |s| s.to_string()),
                    sse.sum(|c| c.events.load(Ordering::Relaxed)),
                    sse.sum(|c| c.ends.load(Ordering::Relaxed)),
                    sse.errors()
                );
            }
        }
        (samples, not_ready, stalls)
    };
    let (loads, (samples, not_ready, stalls)) = tokio::join!(loads, sampler);
    let loads: Vec<Load> = loads;

    // Stop the ingest; every SSE client must receive its last event.
    stop_ingest.cancel();
    let ing = ingest_task.await.unwrap();
    let t_drain = Instant::now();
    let behind = loop {
        let behind = sse
            .clients
            .iter()
            .filter(|c| c.last_id.load(Ordering::Relaxed) < ing.last_seq)
            .count();
        if behind == 0 || t_drain.elapsed() > SSE_DRAIN {
            break behind;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop_sse.cancel();
    for t in sse_tasks {
        t.await.unwrap();
    }
    wait_ready(
        &http,
        &mut serve,
        &log,
        ing.last_seq,
        Duration::from_secs(120),
    )
    .await;
    check_ingested(&http, &serve, ing.last).await;
    println!(
        "ingest: published {} events in {:.1} s = {:.1} events/s; last seq {}, served; no event rejected",
        ing.published,
        ing.secs,
        ing.published as f64 / ing.secs,
        ing.last_seq
    );
    let rss_end = serve.rss_mib();
    let stopped = serve.stop().unwrap();
    drop(serve);

    // Report.
    println!("\n## Soak: {} s\n", k.secs);
    println!(
        "{machine}; {oha_version}; {total_rate} req/s of reads (oha -c {} per route), {} SSE clients, ingest {} events/s; corpus {} events ({} assets × {} versions)\n",
        k.conns,
        k.sse_clients,
        k.ingest_rate,
        thousands(events),
        thousands(k.assets),
        k.versions
    );
    println!("| route | req/s | requests | non-2xx | errors | p50 ms | p99 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let (mut requests, mut non_2xx, mut errors) = (0, 0, 0);
    let mut failures = Vec::new();
    for ((name, _, load, _, rate), l) in routes.iter().zip(&loads) {
        println!(
            "| {name} `{load}` | {rate} | {} | {} | {} | {:.2} | {:.2} | {:.1} |",
            thousands(l.requests()),
            l.non_2xx(),
            l.errors(),
            l.p50_ms,
            l.p99_ms,
            l.max_ms
        );
        requests += l.requests();
        non_2xx += l.non_2xx();
        errors += l.errors();
        let f = l.failures();
        if !f.is_empty() {
            failures.push(format!("{name}: {f}"));
        }
    }
    println!(
        "| **total** | {total_rate} | {} | {non_2xx} | {errors} | | | |",
        thousands(requests)
    );
    for f in &failures {
        println!("not 200: {f}");
    }

    let sse_events = sse.sum(|c| c.events.load(Ordering::Relaxed));
    let sse_ends = sse.sum(|c| c.ends.load(Ordering::Relaxed));
    let sse_errors = sse.errors();
    let max_gap = sse
        .clients
        .iter()
        .map(|c| c.max_gap_ms.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let fewest = sse
        .clients
        .iter()
        .map(|c| c.events.load(Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    println!(
        "\nSSE: {} clients received {} changes (fewest by one client: {}), {sse_ends} end events (resumed), {sse_errors} errors, {stalls} stalls (> {} s without a change), longest wait between two changes {:.1} s, {behind} behind the last event {} s after the ingest stopped",
        k.sse_clients,
        thousands(sse_events),
        thousands(fewest),
        SSE_STALL.as_secs(),
        max_gap as f64 / 1e3,
        SSE_DRAIN.as_secs()
    );
    for (e, n) in sse.errors.lock().unwrap().iter() {
        println!("  SSE error: {n} × {e}");
    }
    println!(
        "/readyz not ready in {not_ready} of {} samples",
        samples.len()
    );

    // Memory.
    let after: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _, _)| *t >= k.warmup as f64)
        .map(|&(t, rss, _)| (t, rss))
        .collect();
    let mut rss: Vec<f64> = after.iter().map(|s| s.1).collect();
    let (first, last) = (
        rss.first().copied().unwrap_or(f64::NAN),
        rss.last().copied().unwrap_or(f64::NAN),
    );
    let med = median(&mut rss);
    let (min, max) = (
        rss.first().copied().unwrap_or(f64::NAN),
        rss.last().copied().unwrap_or(f64::NAN),
    );
    let rss_ok =
        !after.is_empty() && min >= med * (1.0 - RSS_BAND) && max <= med * (1.0 + RSS_BAND);
    let slope = slope_per_hour(&after);
    println!(
        "RSS after the {} s warm-up ({} samples every {} s): first {first:.1}, min {min:.1}, max {max:.1}, last {last:.1}, median {med:.1} MiB ({:+.1} % / {:+.1} % of the median; trend {slope:+.1} MiB/h): {}",
        k.warmup,
        after.len(),
        SAMPLE.as_secs(),
        100.0 * (min / med - 1.0),
        100.0 * (max / med - 1.0),
        if rss_ok {
            "within ±10 %"
        } else if after.is_empty() {
            "NO SAMPLE after the warm-up"
        } else {
            "OUTSIDE ±10 %"
        }
    );
    let series: Vec<String> = samples
        .iter()
        .map(|(t, r, d)| format!("{t:.0}:{r:.0}/{d:.0}"))
        .collect();
    println!(
        "RSS samples (s:MiB/of which DuckDB MiB, warm-up included): {}",
        series.join(" ")
    );
    println!(
        "RSS after the drain {rss_end:.1} MiB; serve stopped {:.2} s after SIGTERM ({})",
        stopped.0.as_secs_f64(),
        if stopped.1 {
            "exit 0"
        } else {
            "NOT a clean exit"
        }
    );
    let (lines, polls) = server_log(&log);
    println!(
        "server log (INVENTORY_LOG=warn): {} lines, and {polls} warnings of a 503 /readyz",
        lines.len()
    );
    for l in lines.iter().take(30) {
        println!("  | {l}");
    }

    let errors_total =
        non_2xx + errors + sse_errors + stalls + not_ready + behind as u64 + u64::from(!stopped.1);
    let pass = errors_total == 0 && rss_ok;
    println!(
        "\nsoak: secs={} warmup={} rate={total_rate} sse_clients={} ingest_rate={} events={events} requests={requests} non_2xx={non_2xx} errors={errors} sse_changes={sse_events} sse_ends={sse_ends} sse_errors={sse_errors} sse_stalls={stalls} sse_behind={behind} not_ready={not_ready} rss_first={first:.1} rss_min={min:.1} rss_max={max:.1} rss_last={last:.1} rss_median={med:.1} rss_ok={rss_ok} result={}",
        k.secs,
        k.warmup,
        k.sse_clients,
        k.ingest_rate,
        if pass { "pass" } else { "FAIL" }
    );
    pass
}

#[tokio::main]
async fn main() {
    let k = Knobs {
        secs: env("SOAK_SECS", 2400).max(1),
        warmup: env("SOAK_WARMUP_SECS", 600),
        rate: env("SOAK_RATE", 200).max(1),
        sse_clients: env("SOAK_SSE_CLIENTS", 50),
        ingest_rate: env("SOAK_INGEST_RATE", 50).max(1),
        assets: env("SOAK_ASSETS", 100_000).max(1),
        versions: env("SOAK_VERSIONS", 3).max(1),
        conns: env("SOAK_CONNS", 4).max(1),
        duckdb_mib: env("SOAK_DUCKDB_MEMORY_MIB", 64).max(64),
        oha: std::env::var("OHA").unwrap_or_else(|_| "oha".into()),
    };
    if !run(&k).await {
        std::process::exit(1);
    }
}
