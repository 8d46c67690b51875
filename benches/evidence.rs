//! `make bench-evidence`: the cost of signed checkpoints over N realistic events (default
//! 1,000,000 of ≈1.3 KB over 100,000 assets, the corpus of `projector/benches/replay.rs`) in a
//! real JetStream stream, next to a raw ordered consume of the same stream in the same run.
//!
//! Each round: a raw ordered consume (the baseline), then the real `inventory checkpoint` binary
//! (round 1 signs and stores the tiles; later rounds re-hash the whole stream to check the newest
//! checkpoint and find it up to date), then `inventory verify --checkpoints`. Then one `inventory
//! prove` and `inventory verify-proof`. Knobs: `BENCH_EVENTS`, `BENCH_ASSETS`, `BENCH_ROUNDS`
//! (default 3). Prints one line per measurement, the medians and the ratios.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "../projector/benches/common/corpus_stream.rs"]
mod corpus_stream;

use std::process::Command;
use std::time::Instant;

use corpus_stream::{median, publish_corpus, raw_consume};
use inventory_bus::{ensure_stream, StreamSettings};
use inventory_testkit::NatsServer;

/// The allocator of the `inventory` binary, for the in-process baseline.
#[global_allocator]
static GLOBAL: inventory_allocator::MiMalloc = inventory_allocator::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the `inventory` binary against `url`; returns (seconds, stdout). Fails on a non-zero exit.
fn inventory(url: &str, args: &[&str]) -> (f64, String) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_inventory"))
        .env("NATS_URL", url)
        .env("INVENTORY_LOG", "warn")
        .args(args)
        .output()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "inventory {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, stdout)
}

#[tokio::main]
async fn main() {
    inventory_allocator::configure();
    let events = env("BENCH_EVENTS", 1_000_000);
    let assets = env("BENCH_ASSETS", 100_000).min(events).max(1);
    let nats = NatsServer::start();
    let url = nats.url();
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();

    let t0 = Instant::now();
    let bytes = publish_corpus(&js, events, assets).await;
    println!(
        "setup: published {events} events ({:.0} B average) for {assets} assets in {:.1} s",
        bytes as f64 / events as f64,
        t0.elapsed().as_secs_f64()
    );
    let keys = tempfile::tempdir().unwrap();
    let (_, verifier) = inventory(
        &url,
        &["keygen", "--out-dir", keys.path().to_str().unwrap()],
    );
    let verifier = verifier.lines().next().unwrap().trim().to_owned();
    let key_file = keys.path().join("checkpoint-signer.key");
    let key_file = key_file.to_str().unwrap();

    let rounds = env("BENCH_ROUNDS", 3).max(1);
    let (mut raw_rates, mut cp_rates, mut verify_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let raw_s = raw_consume(&stream, events).await;
        raw_rates.push(events as f64 / raw_s);
        println!(
            "round {round}: raw ordered consume:             {events} msgs in {raw_s:>6.2} s = {:>9.0} msg/s",
            events as f64 / raw_s
        );
        let (cp_s, out) = inventory(&url, &["checkpoint", "--signing-key-file", key_file]);
        assert!(
            out.contains(&format!("size {events}")),
            "unexpected checkpoint output: {out}"
        );
        cp_rates.push(events as f64 / cp_s);
        let what = if out.starts_with("checkpoint signed") {
            format!("signs, stores {} tiles", events / 256)
        } else {
            "re-checks: up to date".to_owned()
        };
        println!(
            "round {round}: inventory checkpoint ({what}): {events} msgs in {cp_s:>6.2} s = {:>9.0} msg/s ({:.1} % of raw)",
            events as f64 / cp_s,
            100.0 * raw_s / cp_s
        );
        let (v_s, out) = inventory(&url, &["verify", "--checkpoints", "--key", &verifier]);
        assert!(out.starts_with("verified checkpoints"), "{out}");
        verify_rates.push(events as f64 / v_s);
        println!(
            "round {round}: inventory verify --checkpoints:  {events} msgs in {v_s:>6.2} s = {:>9.0} msg/s ({:.1} % of raw)",
            events as f64 / v_s,
            100.0 * raw_s / v_s
        );
    }
    let seq = (events / 2 + 17).min(events).to_string();
    let proof = keys.path().join("proof.json");
    let (prove_s, _) = inventory(&url, &["prove", &seq, "--out", proof.to_str().unwrap()]);
    let (vp_s, out) = inventory(
        &url,
        &["verify-proof", "--key", &verifier, proof.to_str().unwrap()],
    );
    assert!(out.starts_with("proof verified"), "{out}");
    println!(
        "inventory prove {seq}: {prove_s:.2} s (reads {} tiles); inventory verify-proof (offline): {vp_s:.3} s",
        events / 256
    );
    let (raw, cp, v) = (
        median(&mut raw_rates),
        median(&mut cp_rates),
        median(&mut verify_rates),
    );
    println!("median raw ordered consume:        {raw:>9.0} msg/s");
    println!(
        "median inventory checkpoint:       {cp:>9.0} msg/s = {:.1} % of the raw consume",
        100.0 * cp / raw
    );
    println!(
        "median inventory verify --checkpoints: {v:>9.0} msg/s = {:.1} % of the raw consume",
        100.0 * v / raw
    );
}
