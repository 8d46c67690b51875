//! `make bench-console`: what the web console costs, measured on the real `inventory serve` over
//! a real JetStream stream: `BENCH_ASSETS` AWS accounts (default 100,000; the realistic corpus
//! of `projector/benches/replay.rs`), one of which has `BENCH_ASSET_VERSIONS` versions (100).
//!
//! For each page, a first visit: the shell, the stylesheet and script (cached afterwards, by
//! content), and the data fragment; bytes are the bodies and headers as sent (uncompressed).
//! Every asset has `BENCH_ESTATE_VERSIONS` versions (default 2), so that the inventory page as
//! of the end of the first versions (`as_of=seq:<assets>`) is the worst case of a past view: every
//! asset changed since, and its facets count org paths and labels from the documents of then.
//! Then `BENCH_RUNS` visits (default 50) of the shell and its fragment one after the other,
//! timed at the client on loopback: the time to render a page's HTML, server-side. Acceptance
//! (issue 12): the inventory page ≤ 150 KB and ≤ 200 ms at 100,000 assets; the asset page ≤
//! 100 ms for an asset with 100 versions.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../projector/benches/common/corpus_stream.rs"]
mod corpus_stream;
#[path = "common/serve.rs"]
mod serve;

use std::time::{Duration, Instant};

use chrono::Utc;
use corpus_stream::publish_corpus_links;
use inventory_bus::{ensure_stream, StreamSettings};
use inventory_schemas::{encode_asset, ChainLink, EventType};
use inventory_testkit::corpus::account;
use inventory_testkit::NatsServer;
use serve::{env, machine, thousands, wait_ready, Serve};

/// One GET: (status, bytes of headers and body, body).
async fn fetch(http: &reqwest::Client, url: &str) -> (u16, usize, String) {
    let resp = http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers: usize = resp
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let body = resp.text().await.unwrap();
    (status, headers + body.len(), body)
}

struct Measured {
    name: &'static str,
    bytes: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
}

/// A first visit of `page` (shell, static files, fragment), then `runs` timed visits.
async fn measure(
    http: &reqwest::Client,
    serve: &Serve,
    name: &'static str,
    page: &str,
    fragment: &str,
    runs: u64,
) -> Measured {
    let mut bytes = 0;
    for path in [
        page,
        "/ui/static/console.css",
        "/ui/static/console.js",
        fragment,
    ] {
        let (status, n, _) = fetch(http, &serve.url(path)).await;
        assert_eq!(status, 200, "{path}");
        bytes += n;
    }
    let mut ms = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        fetch(http, &serve.url(page)).await;
        let (status, _, _) = fetch(http, &serve.url(fragment)).await;
        assert_eq!(status, 200, "{fragment}");
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    Measured {
        name,
        bytes,
        p50_ms: at(0.5),
        p95_ms: at(0.95),
        max_ms: at(1.0),
    }
}

#[tokio::main]
async fn main() {
    let assets = env("BENCH_ASSETS", 100_000).max(1);
    let versions = env("BENCH_ASSET_VERSIONS", 100).max(1);
    let estate_versions = env("BENCH_ESTATE_VERSIONS", 2).max(1);
    let runs = env("BENCH_RUNS", 50).max(1);
    println!("machine: {}", machine());
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    let t0 = Instant::now();
    let (_, links) = publish_corpus_links(&js, assets * estate_versions, assets).await;
    let mut link = links[0].clone();
    let mut last = assets * estate_versions;
    for v in estate_versions..versions {
        let ev = encode_asset(
            EventType::Changed,
            &account(0, v),
            "/collectors/aws/o-exampleorgid",
            Utc::now(),
            &link,
        )
        .unwrap();
        last = inventory_bus::publish(&js, &ev).await.unwrap();
        link = ChainLink {
            prevseq: last,
            chainhash: ev.chainhash.clone().unwrap(),
        };
    }
    println!(
        "published {} events ({} assets of {estate_versions} versions, one with {}) in {:.1} s",
        thousands(last),
        thousands(assets),
        versions.max(estate_versions),
        t0.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = Serve::start(&nats.url(), &dir.path().join("api.duckdb"), &log);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    wait_ready(&http, &mut serve, &log, last, Duration::from_secs(1800)).await;
    let key = account(0, 0).key().unwrap().to_string();
    let asset_q = format!("?key={key}");
    let past = format!("?as_of=seq:{assets}");
    let results = [
        measure(
            &http,
            &serve,
            "inventory (`/`, 100 rows, facets over the estate)",
            "/",
            "/ui/f/inventory",
            runs,
        )
        .await,
        measure(
            &http,
            &serve,
            "inventory as of `seq:<assets>` (every asset changed since: facets from then)",
            &format!("/{past}"),
            &format!("/ui/f/inventory{past}"),
            runs,
        )
        .await,
        measure(
            &http,
            &serve,
            "asset page (100 versions)",
            &format!("/ui/asset{asset_q}"),
            &format!("/ui/f/asset{asset_q}"),
            runs,
        )
        .await,
        measure(
            &http,
            &serve,
            "asset page, two versions compared",
            &format!("/ui/asset{asset_q}&a=1&b={last}"),
            &format!("/ui/f/asset{asset_q}&a=1&b={last}"),
            runs,
        )
        .await,
    ];
    println!();
    println!(
        "| page ({} assets) | first visit, bytes | p50 ms | p95 ms | max ms |",
        thousands(assets)
    );
    println!("|---|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            m.name,
            thousands(m.bytes as u64),
            m.p50_ms,
            m.p95_ms,
            m.max_ms
        );
    }
}
