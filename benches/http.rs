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
#[path = "common/serve.rs"]
mod serve;

use std::time::{Duration, Instant};

use corpus_stream::publish_corpus_links;
use inventory_bus::{ensure_stream, StreamSettings};
use inventory_testkit::NatsServer;
use serve::{
    applied_seq, check_ingested, env, get, id_regex, ingest, machine, native_id, oha_version,
    server_log, thousands, wait_ready, Load, Oha, Serve,
};
use tokio_util::sync::CancellationToken;

/// Acceptance: a restarted `serve` is ready within this.
const RESTART_LIMIT: Duration = Duration::from_secs(5);

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

/// Runs oha on `url` for `BENCH_SECS` with `BENCH_CONNS` connections, at maximum throughput or
/// at `rate` req/s; `rand_url`: `url` is a regex, a URL is drawn from it for each request.
async fn oha(k: &Knobs, url: &str, rate: Option<u64>, rand_url: bool) -> Load {
    let o = Oha {
        bin: &k.oha,
        conns: k.conns,
        secs: k.secs,
        rate,
        rand_url,
        headers: &[],
    };
    serve::oha(&o, url).await
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
    check_ingested(http, &serve, ing.last).await;
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
    let (lines, polls) = server_log(&log);
    println!(
        "server log (INVENTORY_LOG=warn): {} lines, and {} warnings of a 503 /readyz (the polls above)",
        lines.len(),
        polls
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
    let oha_version = oha_version(&k.oha);
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
