//! Shared by the benchmarks that drive the real `inventory serve` (`benches/http.rs`,
//! `benches/soak.rs`): the process (started on a free loopback port, its resident memory read
//! from /proc, stopped with SIGTERM), readiness polls, oha runs and their JSON, and the task that
//! ingests new versions of the corpus at a fixed rate through JetStream.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use inventory_bus::{finish, publish_start};
use inventory_schemas::{encode_asset, ChainLink, EventType};
use inventory_testkit::corpus::account;
use inventory_testkit::free_port;
use rand::seq::SliceRandom;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Where the corpus's event times start (as in `corpus_stream`); event n is n seconds later.
pub const BASE_TIME: i64 = 1_760_000_000;
/// The corpus's collector source.
pub const SOURCE: &str = "/collectors/aws/o-exampleorgid";

/// A knob from the environment (`default` when unset or not a number).
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The native id of corpus asset i (`inventory_testkit::corpus::account`).
pub fn native_id(i: u64) -> String {
    format!("{:012}", 100_000_000_000 + i)
}

/// An oha `--rand-regex-url` pattern of the native ids of the first 10^k assets (10^k the
/// largest power of ten ≤ `assets`), so that a random key is drawn uniformly among them.
pub fn id_regex(assets: u64) -> String {
    let k = assets.max(1).ilog10().min(11);
    if k == 0 {
        return native_id(0);
    }
    format!("1{}[0-9]{{{k}}}", "0".repeat(11 - k as usize))
}

/// A running `inventory serve`, stopped (SIGTERM, then SIGKILL) on drop, also on a panic.
pub struct Serve {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl Serve {
    /// Starts `inventory serve` on a free loopback port, without API tokens; its output is
    /// appended to `log`.
    pub fn start(nats_url: &str, db: &Path, log: &Path) -> Self {
        Self::start_with(nats_url, db, log, &[])
    }

    /// [`Serve::start`] with further environment variables (`INVENTORY_API_TOKENS`, limits).
    pub fn start_with(nats_url: &str, db: &Path, log: &Path, envs: &[(&str, String)]) -> Self {
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
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Panics (with the log) if the process has exited.
    pub fn check_running(&mut self, log: &Path) {
        let child = self.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "inventory serve exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// Resident memory in MiB (VmRSS of /proc/<pid>/status).
    pub fn rss_mib(&self) -> f64 {
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
    pub fn stop(&mut self) -> Option<(Duration, bool)> {
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
pub async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// `applied_seq` of a 200 `/readyz`, or None while it is not ready.
pub async fn applied_seq(http: &reqwest::Client, serve: &Serve) -> Option<u64> {
    let resp = http.get(serve.url("/readyz")).send().await.ok()?;
    if resp.status() != reqwest::StatusCode::OK {
        return None;
    }
    let v: Value = resp.json().await.ok()?;
    v["applied_seq"].as_u64()
}

/// Polls `/readyz` until it answers 200 with `applied_seq ≥ min_seq`; panics after `limit` or
/// if the process exits. Returns the applied sequence.
pub async fn wait_ready(
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
pub struct Load {
    /// 200 answers per second.
    pub ok_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The slowest answer.
    pub max_ms: f64,
    /// Answers by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that got no answer, by error.
    pub errors: BTreeMap<String, u64>,
}

impl Load {
    /// Answers other than 200 and errors, as one line ("" when none).
    pub fn failures(&self) -> String {
        let mut out: Vec<String> = self
            .statuses
            .iter()
            .filter(|(s, _)| s.as_str() != "200")
            .map(|(s, n)| format!("{n} × HTTP {s}"))
            .collect();
        out.extend(self.errors.iter().map(|(e, n)| format!("{n} × {e}")));
        out.join(", ")
    }

    /// Requests sent: answered (any status) and failed.
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors()
    }

    /// Answers with a status outside 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !s.starts_with('2'))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that got no answer.
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
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

/// How to run oha.
pub struct Oha<'a> {
    /// The oha binary.
    pub bin: &'a str,
    /// Connections (`-c`).
    pub conns: u64,
    /// Duration (`-z`).
    pub secs: u64,
    /// A fixed rate in req/s (`-q`, with `--latency-correction`); None: maximum throughput.
    pub rate: Option<u64>,
    /// The URL is a regex; a URL is drawn from it for each request (`--rand-regex-url`).
    pub rand_url: bool,
    /// Request headers (`-H`), e.g. `Authorization: Bearer …`.
    pub headers: &'a [String],
}

/// The version line of the oha binary (`oha 1.16.0`); panics if it cannot be run.
pub fn oha_version(bin: &str) -> String {
    let version = Command::new(bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("cannot run oha ({bin}): {e}; {OHA_HINT}"));
    String::from_utf8_lossy(&version.stdout).trim().to_owned()
}

const OHA_HINT: &str = "run `make bench-http` (or `make bench-soak`) or set OHA";

/// Runs oha on `url` as `o` says and reads its JSON report.
pub async fn oha(o: &Oha<'_>, url: &str) -> Load {
    let mut cmd = tokio::process::Command::new(o.bin);
    cmd.args(["--no-tui", "--output-format", "json"])
        // Wait for the requests in flight at the deadline instead of counting them as errors.
        .arg("-w")
        .args(["-t", "60s"])
        .args(["-c", &o.conns.to_string()])
        .args(["-z", &format!("{}s", o.secs)]);
    if let Some(q) = o.rate {
        cmd.args(["-q", &q.to_string(), "--latency-correction"]);
    }
    if o.rand_url {
        cmd.arg("--rand-regex-url");
    }
    for h in o.headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run oha ({}): {e}; {OHA_HINT}", o.bin));
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
        max_ms: latency["max"].as_f64().unwrap_or(f64::NAN),
        statuses,
        errors: counts(&v["errorDistribution"]),
    }
}

/// What the ingesting task did.
pub struct Ingested {
    pub published: u64,
    pub secs: f64,
    /// Stream sequence of the last event published.
    pub last_seq: u64,
    /// (asset, version) of the last event published.
    pub last: (u64, u64),
}

/// Publishes `rate` events a second until `stop`: new versions (`versions`, `versions + 1`, ...)
/// of the assets in a random order (each asset once per round), each extending its asset's hash
/// chain (`links`, from `publish_corpus_links`, updated with each acknowledged sequence).
/// `first_n`: events already in the stream (event times continue the corpus's).
pub async fn ingest(
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

/// Checks that the last event published (`last`: asset i, version v) is the version served and
/// that no event was rejected; panics otherwise.
pub async fn check_ingested(http: &reqwest::Client, serve: &Serve, last: (u64, u64)) {
    let (i, v) = last;
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
}

/// The server's log, less the warnings about the bench's own readiness polls (503 `/readyz`
/// while it projects): (the other lines, the number of poll warnings).
pub fn server_log(log: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (polls, lines): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|l| l.contains("path=/readyz status=503"));
    (lines.into_iter().map(str::to_owned).collect(), polls.len())
}

/// "1,000,000".
pub fn thousands(n: u64) -> String {
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

/// "2 × Intel(R) Xeon(R) ..., 23 GiB".
pub fn machine() -> String {
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
