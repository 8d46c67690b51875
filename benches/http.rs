//! `make bench-http`: the real `inventory serve` under a real HTTP load generator (`oha`, from
//! crates.io), route by route, over the realistic corpus of `projector/benches/replay.rs` (AWS
//! accounts, ≈1.3 KB an event) in a real JetStream stream.
//!
//! Two corpora, each in a fresh nats-server and a fresh DuckDB file: `BENCH_ASSETS` assets ×
//! `BENCH_VERSIONS` versions (default 100,000 × 10 = 1,000,000 events), then the same assets × 1
//! version (100,000 events). For each:
//! 1. publish the corpus, start `inventory serve`, time until `/readyz` answers 200 (the
//!    projection), print the server's resident memory (VmRSS);
//! 2. check that every route answers 200, then run oha at maximum throughput (`BENCH_CONNS`
//!    connections for `BENCH_SECS`) on each: `/healthz` first, the baseline every other route's
//!    throughput is compared with; lookups and histories pick a random key per request;
//! 3. the current-view page and the lookup by key at a fixed `BENCH_RATE` req/s, the history
//!    routes at `BENCH_HISTORY_RATE` req/s (diffs at a tenth of it);
//! 4. the same two again while a task publishes `BENCH_INGEST_RATE` new versions a second of
//!    random assets (extending their hash chains), then check the read model applied them;
//! 5. stop `serve` (SIGTERM), start it again on the same DuckDB file, time `/readyz` (≤ 5 s).
//!
//! Then a markdown summary of both corpora side by side. Latencies are oha's (with
//! `--latency-correction` at a fixed rate); req/s counts 200 answers only; any other answer or
//! error is printed. Knobs: `BENCH_ASSETS` (100000), `BENCH_VERSIONS` (10), `BENCH_SECS` (10),
//! `BENCH_CONNS` (8), `BENCH_RATE` (500), `BENCH_HISTORY_RATE` (100), `BENCH_INGEST_RATE` (1000), `OHA` (the oha binary;
//! default `oha` on PATH; `make bench-http` installs one into .deps/oha and sets it).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../projector/benches/common/corpus_stream.rs"]
mod corpus_stream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use corpus_stream::publish_corpus_links;
use inventory_bus::{ensure_stream, finish, publish_start, StreamSettings};
use inventory_schemas::{encode_asset, ChainLink, EventType};
use inventory_testkit::corpus::account;
use inventory_testkit::{free_port, NatsServer};
use rand::seq::SliceRandom;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Where the corpus's event times start (as in `corpus_stream`); event n is n seconds later.
const BASE_TIME: i64 = 1_760_000_000;
/// The corpus's collector source.
const SOURCE: &str = "/collectors/aws/o-exampleorgid";
/// Acceptance: a restarted `serve` is ready within this.
const RESTART_LIMIT: Duration = Duration::from_secs(5);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The knobs, from the environment.
struct Knobs {
    assets: u64,
    versions: u64,
    secs: u64,
    conns: u64,
    rate: u64,
    /// Fixed rate of the history routes (diffs: a tenth).
    history_rate: u64,
    ingest_rate: u64,
    oha: String,
}

/// The native id of corpus asset i (`inventory_testkit::corpus::account`).
fn native_id(i: u64) -> String {
    format!("{:012}", 100_000_000_000 + i)
}

/// An oha `--rand-regex-url` pattern of the native ids of the first 10^k assets (10^k the
/// largest power of ten ≤ `assets`), so that a random key is drawn uniformly among them.
fn id_regex(assets: u64) -> String {
    let k = assets.max(1).ilog10().min(11);
    if k == 0 {
        return native_id(0);
    }
    format!("1{}[0-9]{{{k}}}", "0".repeat(11 - k as usize))
}

/// A running `inventory serve`, stopped (SIGTERM, then SIGKILL) on drop, also on a panic.
struct Serve {
    child: Option<Child>,
    addr: SocketAddr,
}

impl Serve {
    /// Starts `inventory serve` on a free loopback port; its output is appended to `log`.
    fn start(nats_url: &str, db: &Path, log: &Path) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_inventory"))
            .arg("serve")
            .env("NATS_URL", nats_url)
            .env("INVENTORY_DB", db)
            .env("INVENTORY_LISTEN", addr.to_string())
            .env("INVENTORY_LOG", "warn")
            .env("NO_COLOR", "1")
            .env_remove("INVENTORY_API_TOKENS")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            addr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Panics (with the log) if the process has exited.
    fn check_running(&mut self, log: &Path) {
        let child = self.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "inventory serve exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// Resident memory in MiB (VmRSS of /proc/<pid>/status).
    fn rss_mib(&self) -> f64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024.0
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 60 s). Returns how long it took to stop
    /// and whether it exited successfully.
    fn stop(&mut self) -> Option<(Duration, bool)> {
        let mut child = self.child.take()?;
        let t0 = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((t0.elapsed(), status.success()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        Some((t0.elapsed(), false))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET `url`: (status, body). Panics if the request fails.
async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// `applied_seq` of a 200 `/readyz`, or None while it is not ready.
async fn applied_seq(http: &reqwest::Client, serve: &Serve) -> Option<u64> {
    let resp = http.get(serve.url("/readyz")).send().await.ok()?;
    if resp.status() != reqwest::StatusCode::OK {
        return None;
    }
    let v: Value = resp.json().await.ok()?;
    v["applied_seq"].as_u64()
}

/// Polls `/readyz` until it answers 200 with `applied_seq ≥ min_seq`; panics after `limit` or
/// if the process exits. Returns the applied sequence.
async fn wait_ready(
    http: &reqwest::Client,
    serve: &mut Serve,
    log: &Path,
    min_seq: u64,
    limit: Duration,
) -> u64 {
    let t0 = Instant::now();
    loop {
        if let Some(seq) = applied_seq(http, serve).await {
            if seq >= min_seq {
                return seq;
            }
        }
        serve.check_running(log);
        assert!(
            t0.elapsed() < limit,
            "inventory serve not ready (applied_seq ≥ {min_seq}) after {limit:?}"
        );
        // Every 20 ms at first (restarts are timed), less often during a long projection.
        let pause = Duration::from_millis(20) + t0.elapsed() / 50;
        tokio::time::sleep(pause.min(Duration::from_millis(250))).await;
    }
}

/// One oha run.
#[derive(Debug, Clone)]
struct Load {
    /// 200 answers per second.
    ok_rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers by status code.
    statuses: BTreeMap<String, u64>,
    /// Requests that got no answer, by error.
    errors: BTreeMap<String, u64>,
}

impl Load {
    /// Answers other than 200 and errors, as one line ("" when none).
    fn failures(&self) -> String {
        let mut out: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| s.as_str() != "200")
            .map(|(s, n)| format!("{n} × HTTP {s}"))
            .collect();
        out.extend(self.errors.iter().map(|(e, n)| format!("{n} × {e}")));
        out.join(", ")
    }
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs oha on `url` for `BENCH_SECS` with `BENCH_CONNS` connections, at maximum throughput or
/// at `rate` req/s; `rand_url`: `url` is a regex, a URL is drawn from it for each request.
async fn oha(k: &Knobs, url: &str, rate: Option<u64>, rand_url: bool) -> Load {
    let mut cmd = tokio::process::Command::new(&k.oha);
    cmd.args(["--no-tui", "--output-format", "json"])
        // Wait for the requests in flight at the deadline instead of counting them as errors.
        .arg("-w")
        .args(["-t", "60s"])
        .args(["-c", &k.conns.to_string()])
        .args(["-z", &format!("{}s", k.secs)]);
    if let Some(q) = rate {
        cmd.args(["-q", &q.to_string(), "--latency-correction"]);
    }
    if rand_url {
        cmd.arg("--rand-regex-url");
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run oha ({}): {e}; run `make bench-http` or set OHA",
                k.oha
            )
        });
    assert!(
        out.status.success(),
        "oha {url}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("oha's JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let secs = v["summary"]["total"].as_f64().unwrap();
    let statuses = counts(&v["statusCodeDistribution"]);
    let ok = statuses.get("200").copied().unwrap_or(0);
    let latency = &v["metrics"]["latency_ms"];
    Load {
        ok_rps: ok as f64 / secs,
        p50_ms: latency["p50"].as_f64().unwrap_or(f64::NAN),
        p99_ms: latency["p99"].as_f64().unwrap_or(f64::NAN),
        statuses,
        errors: counts(&v["errorDistribution"]),
    }
}

/// What the ingesting task did.
struct Ingested {
    published: u64,
    secs: f64,
    /// Stream sequence of the last event published.
    last_seq: u64,
    /// (asset, version) of the last event published.
    last: (u64, u64),
}

/// Publishes `rate` events a second until `stop`: new versions (`versions`, `versions + 1`, ...)
/// of the assets in a random order (each asset once per round), each extending its asset's hash
/// chain (`links`, from `publish_corpus_links`, updated with each acknowledged sequence).
/// `first_n`: events already in the stream (event times continue the corpus's).
async fn ingest(
    js: async_nats::jetstream::Context,
    mut links: Vec<ChainLink>,
    versions: u64,
    first_n: u64,
    rate: u64,
    stop: CancellationToken,
) -> Ingested {
    let assets = links.len();
    let mut order: Vec<usize> = (0..assets).collect();
    order.shuffle(&mut rand::thread_rng());
    let mut next_v = vec![versions; assets];
    let base = Utc.timestamp_opt(BASE_TIME, 0).unwrap();
    let (mut published, mut pos, mut last_seq, mut last) = (0u64, 0usize, 0u64, (0u64, 0u64));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let t0 = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let due = (rate as f64 * t0.elapsed().as_secs_f64()) as u64;
        while published < due {
            // Distinct assets within a batch: each asset's previous sequence is known when its
            // next version is encoded.
            let n = (due - published).min(assets as u64).min(512);
            let mut pending = Vec::with_capacity(n as usize);
            for j in 0..n {
                let i = order[pos % assets];
                pos += 1;
                let v = next_v[i];
                next_v[i] += 1;
                let at = base + chrono::Duration::seconds((first_n + published + j) as i64);
                let ev = encode_asset(
                    EventType::Changed,
                    &account(i as u64, v),
                    SOURCE,
                    at,
                    &links[i],
                )
                .unwrap();
                pending.push((i, v, publish_start(&js, &ev).await.unwrap(), ev));
            }
            for (i, v, ack, ev) in pending {
                let seq = finish(ack, &ev).await.unwrap();
                links[i] = ChainLink {
                    prevseq: seq,
                    chainhash: ev.chainhash.clone().unwrap(),
                };
                (last_seq, last) = (seq, (i as u64, v));
                published += 1;
            }
        }
    }
    Ingested {
        published,
        secs: t0.elapsed().as_secs_f64(),
        last_seq,
        last,
    }
}

/// A route measured at maximum throughput.
struct Route {
    /// As shown in the table.
    name: String,
    /// A concrete path, checked before the load.
    check: String,
    /// What oha requests: a path, or with `rand` a regex of paths.
    load: String,
    rand: bool,
}

/// Everything measured on one corpus.
struct Report {
    events: u64,
    publish_s: f64,
    project_s: f64,
    rss_ready: f64,
    rss_loaded: f64,
    rss_ingested: f64,
    rss_restarted: f64,
    restart_s: f64,
    /// (route, load) at maximum throughput, `/healthz` first.
    max: Vec<(String, Load)>,
    /// (what, load) at a fixed rate: page, lookup, page while ingesting, lookup while ingesting.
    fixed: Vec<(String, Load)>,
    ingest_rate: f64,
    applied_during_load: u64,
    server_log_lines: usize,
}

fn print_load(what: &str, load: &Load, baseline: Option<f64>) {
    let ratio = baseline
        .map(|b| format!("  = {:5.1} % of /healthz", 100.0 * load.ok_rps / b))
        .unwrap_or_default();
    println!(
        "  {what:<62} {:>9.0} req/s  p50 {:>8.2} ms  p99 {:>8.2} ms{ratio}",
        load.ok_rps, load.p50_ms, load.p99_ms
    );
    let failures = load.failures();
    if !failures.is_empty() {
        println!("  !! {what}: not 200: {failures}");
    }
}

async fn run_corpus(k: &Knobs, http: &reqwest::Client, versions: u64) -> Report {
    let assets = k.assets;
    let events = assets * versions;
    println!("\n## {events} events: {assets} assets × {versions} versions");
    let nats = NatsServer::start();
    let nats_url = nats.url();
    let client = async_nats::connect(&nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let t0 = Instant::now();
    let (bytes, links) = publish_corpus_links(&js, events, assets).await;
    let publish_s = t0.elapsed().as_secs_f64();
    println!(
        "publish: {events} events ({:.0} B average) in {publish_s:.1} s",
        bytes as f64 / events as f64
    );

    let dir = tempfile::Builder::new()
        .prefix("inventory-bench-http-")
        .tempdir()
        .unwrap();
    let db = dir.path().join("api.duckdb");
    let log = dir.path().join("serve.log");
    let t0 = Instant::now();
    let mut serve = Serve::start(&nats_url, &db, &log);
    let seq = wait_ready(http, &mut serve, &log, events, Duration::from_secs(3600)).await;
    let project_s = t0.elapsed().as_secs_f64();
    let rss_ready = serve.rss_mib();
    println!(
        "serve: /readyz 200 after {project_s:.1} s (projection of {events} events = {:.0} events/s, applied_seq {seq}); RSS {rss_ready:.0} MiB",
        events as f64 / project_s
    );

    let key = format!("aws/account/{}", native_id(assets / 2));
    let key_re = format!("aws/account/{}", id_regex(assets));
    let mut routes = vec![Route {
        name: "/healthz".into(),
        check: "/healthz".into(),
        load: "/healthz".into(),
        rand: false,
    }];
    let fixed_route = |name: &str, path: String| Route {
        name: name.to_owned(),
        check: path.clone(),
        load: path,
        rand: false,
    };
    routes.push(fixed_route(
        "/api/v1/assets?limit=100 (current view)",
        "/api/v1/assets?limit=100".into(),
    ));
    routes.push(Route {
        name: "/api/v1/assets/{key} (random key)".into(),
        check: format!("/api/v1/assets/{key}"),
        load: format!("/api/v1/assets/{key_re}"),
        rand: true,
    });
    routes.push(fixed_route(
        "/api/v1/accounts?provider=aws&limit=100",
        "/api/v1/accounts?provider=aws&limit=100".into(),
    ));
    routes.push(fixed_route(
        "/api/v1/assets?provider=aws&name=payments&limit=50",
        "/api/v1/assets?provider=aws&name=payments&limit=50".into(),
    ));
    routes.push(fixed_route(
        "/api/v1/assets?limit=100&as_of=seq:{events/2}",
        format!("/api/v1/assets?limit=100&as_of=seq:{}", events / 2),
    ));
    routes.push(fixed_route(
        "/api/v1/changes?limit=100&since=seq:{events/2}",
        format!("/api/v1/changes?limit=100&since=seq:{}", events / 2),
    ));
    routes.push(Route {
        name: "/api/v1/assets/{key}/history (random key)".into(),
        check: format!("/api/v1/assets/{key}/history"),
        load: format!("/api/v1/assets/{key_re}/history"),
        rand: true,
    });
    routes.push(fixed_route(
        "/api/v1/diff?from=seq:{events/4}&to=seq:{events}",
        format!(
            "/api/v1/diff?from=seq:{}&to=seq:{events}",
            (events / 4).max(1)
        ),
    ));

    // Every route answers 200 before anything is measured.
    println!("check (one request each):");
    for r in &routes {
        let t = Instant::now();
        let (status, body) = get(http, &serve.url(&r.check)).await;
        assert!(status == 200, "GET {} answered {status}: {body}", r.check);
        println!(
            "  200 {:>8} B {:>8.1} ms  GET {}",
            body.len(),
            t.elapsed().as_secs_f64() * 1e3,
            r.check
        );
    }

    println!("maximum throughput (oha -c {} -z {}s):", k.conns, k.secs);
    let mut max = Vec::new();
    let mut baseline = None;
    for r in &routes {
        let load = oha(k, &serve.url(&r.load), None, r.rand).await;
        print_load(&r.name, &load, baseline);
        baseline.get_or_insert(load.ok_rps);
        max.push((r.name.clone(), load));
    }

    let page = serve.url("/api/v1/assets?limit=100");
    let lookup = serve.url(&format!("/api/v1/assets/{key_re}"));
    println!(
        "fixed rate (oha -q {} -c {} -z {}s):",
        k.rate, k.conns, k.secs
    );
    let mut fixed = Vec::new();
    for (what, url, rand) in [
        ("current view page", &page, false),
        ("lookup by key", &lookup, true),
    ] {
        let load = oha(k, url, Some(k.rate), rand).await;
        let what = format!("{what} @ {} req/s", k.rate);
        print_load(&what, &load, None);
        fixed.push((what, load));
    }
    // The history routes at a fixed rate well below what they sustain (their latency, not
    // queueing behind eight saturating connections): `BENCH_HISTORY_RATE`, diffs a tenth of it.
    for r in routes.iter().skip(5) {
        let rate = if r.name.contains("diff") {
            (k.history_rate / 10).max(1)
        } else {
            k.history_rate
        };
        let load = oha(k, &serve.url(&r.load), Some(rate), r.rand).await;
        let what = format!("{} @ {rate} req/s", r.name);
        print_load(&what, &load, None);
        fixed.push((what, load));
    }
    let rss_loaded = serve.rss_mib();
    println!("serve: RSS after the loads {rss_loaded:.0} MiB");

    // The same while the projector ingests.
    let s0 = applied_seq(http, &serve).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest(
        js.clone(),
        links,
        versions,
        events,
        k.ingest_rate,
        stop.clone(),
    ));
    println!(
        "while ingesting {} events/s (oha -q {} -c {} -z {}s):",
        k.ingest_rate, k.rate, k.conns, k.secs
    );
    let t_load = Instant::now();
    for (what, url, rand) in [
        ("current view page", &page, false),
        ("lookup by key", &lookup, true),
    ] {
        let load = oha(k, url, Some(k.rate), rand).await;
        let what = format!("{what} @ {} req/s, ingesting {}/s", k.rate, k.ingest_rate);
        print_load(&what, &load, None);
        fixed.push((what, load));
    }
    let load_s = t_load.elapsed().as_secs_f64();
    let s1 = applied_seq(http, &serve).await.unwrap();
    stop.cancel();
    let ing = task.await.unwrap();
    let ingest_rate = ing.published as f64 / ing.secs;
    let t_catch = Instant::now();
    let s2 = wait_ready(
        http,
        &mut serve,
        &log,
        ing.last_seq,
        Duration::from_secs(120),
    )
    .await;
    let applied_during_load = s1 - s0;
    println!(
        "ingest: published {} events in {:.1} s = {ingest_rate:.0} events/s; applied_seq {s0} → {s1} during the {load_s:.1} s of load (+{applied_during_load}, expected ≈ {:.0}); caught up to {s2} {:.2} s after the ingest stopped",
        ing.published,
        ing.secs,
        k.ingest_rate as f64 * load_s,
        t_catch.elapsed().as_secs_f64()
    );
    assert!(
        applied_during_load * 2 >= ing.published.min(k.ingest_rate * k.secs),
        "the read model applied only {applied_during_load} of {} events published while loaded",
        ing.published
    );
    // The last version published is the one served, and nothing was rejected.
    let (i, v) = ing.last;
    let (status, body) = get(
        http,
        &serve.url(&format!("/api/v1/assets/aws/account/{}", native_id(i))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["labels"]["revision"].as_str(),
        Some(v.to_string().as_str()),
        "asset {i} should be at version {v}: {body}"
    );
    let (status, body) = get(http, &serve.url("/api/v1/rejected?limit=10")).await;
    assert_eq!(status, 200, "{body}");
    let rejected: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        rejected["items"].as_array().map(Vec::len),
        Some(0),
        "events were rejected: {body}"
    );
    println!("ingest: asset {i} is served at version {v}; no event rejected");
    let rss_ingested = serve.rss_mib();
    println!("serve: RSS after ingesting {rss_ingested:.0} MiB");

    // Restart on the same DuckDB file.
    let (stop_d, clean) = serve.stop().unwrap();
    println!(
        "restart: serve stopped {:.2} s after SIGTERM ({})",
        stop_d.as_secs_f64(),
        if clean { "exit 0" } else { "NOT a clean exit" }
    );
    let t0 = Instant::now();
    let mut serve = Serve::start(&nats_url, &db, &log);
    let seq = wait_ready(http, &mut serve, &log, s2, Duration::from_secs(600)).await;
    let restart_s = t0.elapsed().as_secs_f64();
    let rss_restarted = serve.rss_mib();
    println!(
        "restart: /readyz 200 after {restart_s:.2} s (applied_seq {seq}; acceptance ≤ {} s: {}); RSS {rss_restarted:.0} MiB",
        RESTART_LIMIT.as_secs(),
        if restart_s <= RESTART_LIMIT.as_secs_f64() {
            "pass"
        } else {
            "FAIL"
        }
    );
    let (status, body) = get(http, &serve.url("/api/v1/assets?limit=100")).await;
    assert_eq!(status, 200, "after the restart: {body}");
    drop(serve);

    // The server's warnings, less those about the bench's own readiness polls.
    let server_log = std::fs::read_to_string(&log).unwrap_or_default();
    let (polls, lines): (Vec<&str>, Vec<&str>) = server_log
        .lines()
        .partition(|l| l.contains("path=/readyz status=503"));
    println!(
        "server log (INVENTORY_LOG=warn): {} lines, and {} warnings of a 503 /readyz (the polls above)",
        lines.len(),
        polls.len()
    );
    for l in lines.iter().take(30) {
        println!("  | {l}");
    }
    Report {
        events,
        publish_s,
        project_s,
        rss_ready,
        rss_loaded,
        rss_ingested,
        rss_restarted,
        restart_s,
        max,
        fixed,
        ingest_rate,
        applied_during_load,
        server_log_lines: lines.len(),
    }
}

/// "1,000,000".
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A line of the summary's second table: what, and its cell for one corpus.
type SummaryRow = (&'static str, fn(&Report) -> String);

fn summary(k: &Knobs, reports: &[Report], machine: &str, oha_version: &str) {
    println!("\n## Summary\n");
    println!(
        "{machine}; {oha_version}; oha -c {} -z {}s",
        k.conns, k.secs
    );
    println!();
    let mut head = "| route |".to_owned();
    let mut rule = "| --- |".to_owned();
    for r in reports {
        let e = thousands(r.events);
        head += &format!(" {e} ev: req/s | p50 ms | p99 ms | ÷ /healthz |");
        rule += " ---: | ---: | ---: | ---: |";
    }
    println!("{head}\n{rule}");
    let first = &reports[0];
    for (n, (name, _)) in first.max.iter().enumerate() {
        let mut row = format!("| `{name}` |");
        for r in reports {
            let base = r.max[0].1.ok_rps;
            let l = &r.max[n].1;
            row += &format!(
                " {:.0} | {:.2} | {:.2} | {:.1} % |",
                l.ok_rps,
                l.p50_ms,
                l.p99_ms,
                100.0 * l.ok_rps / base
            );
        }
        println!("{row}");
    }
    for (n, (name, _)) in first.fixed.iter().enumerate() {
        let mut row = format!("| {name} |");
        for r in reports {
            let l = &r.fixed[n].1;
            row += &format!(" {:.0} | {:.2} | {:.2} | |", l.ok_rps, l.p50_ms, l.p99_ms);
        }
        println!("{row}");
    }
    println!();
    let mut head = "| | ".to_owned();
    let mut rule = "| --- |".to_owned();
    for r in reports {
        head += &format!("{} events | ", thousands(r.events));
        rule += " ---: |";
    }
    println!("{}\n{rule}", head.trim_end());
    let rows: [SummaryRow; 10] = [
        ("publish the corpus", |r| format!("{:.1} s", r.publish_s)),
        ("projection until /readyz", |r| {
            format!("{:.1} s", r.project_s)
        }),
        ("RSS when ready", |r| format!("{:.0} MiB", r.rss_ready)),
        ("RSS after the loads", |r| {
            format!("{:.0} MiB", r.rss_loaded)
        }),
        ("RSS after ingesting", |r| {
            format!("{:.0} MiB", r.rss_ingested)
        }),
        ("ingest achieved", |r| {
            format!("{:.0} events/s", r.ingest_rate)
        }),
        ("applied while loaded", |r| {
            format!("{} events", r.applied_during_load)
        }),
        ("restart until /readyz (≤ 5 s)", |r| {
            format!("{:.2} s", r.restart_s)
        }),
        ("RSS after restart", |r| {
            format!("{:.0} MiB", r.rss_restarted)
        }),
        ("server log lines (warn, less /readyz 503)", |r| {
            r.server_log_lines.to_string()
        }),
    ];
    for (what, f) in rows {
        let cells: Vec<String> = reports.iter().map(f).collect();
        println!("| {what} | {} |", cells.join(" | "));
    }
    let failures: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.max.iter().chain(&r.fixed).filter_map(move |(name, l)| {
                let f = l.failures();
                (!f.is_empty()).then(|| format!("{} events, {name}: {f}", thousands(r.events)))
            })
        })
        .collect();
    println!();
    if failures.is_empty() {
        println!("every answer under load was 200");
    } else {
        for f in failures {
            println!("not 200 under load: {f}");
        }
    }
    if reports.len() == 2 {
        let (a, b) = (&reports[0], &reports[1]);
        println!(
            "current view p99, {} vs {} events: {:.2}× at maximum throughput, {:.2}× at {} req/s",
            thousands(a.events),
            thousands(b.events),
            a.max[1].1.p99_ms / b.max[1].1.p99_ms,
            a.fixed[0].1.p99_ms / b.fixed[0].1.p99_ms,
            k.rate
        );
    }
}

/// "2 × Intel(R) Xeon(R) ..., 23 GiB".
fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cpus} × {model}, {mem_gib:.0} GiB")
}

#[tokio::main]
async fn main() {
    let k = Knobs {
        assets: env("BENCH_ASSETS", 100_000).max(1),
        versions: env("BENCH_VERSIONS", 10).max(1),
        secs: env("BENCH_SECS", 10).max(1),
        conns: env("BENCH_CONNS", 8).max(1),
        rate: env("BENCH_RATE", 500).max(1),
        history_rate: env("BENCH_HISTORY_RATE", 100).max(1),
        ingest_rate: env("BENCH_INGEST_RATE", 1000).max(1),
        oha: std::env::var("OHA").unwrap_or_else(|_| "oha".into()),
    };
    let version = Command::new(&k.oha)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run oha ({}): {e}; run `make bench-http` or set OHA",
                k.oha
            )
        });
    let oha_version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let machine = machine();
    println!("machine: {machine}");
    println!("load generator: {oha_version} ({})", k.oha);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let mut reports = Vec::new();
    let mut corpora = vec![k.versions];
    if k.versions != 1 {
        corpora.push(1);
    }
    for versions in corpora {
        reports.push(run_corpus(&k, &http, versions).await);
    }
    summary(&k, &reports, &machine, &oha_version);
}
