//! `inventory verify` against a real `nats-server -js`: a clean stream verifies (also with
//! `--from`); an undecodable message fails it unless accepted; a forged chain hash and a
//! prevseq that skips an event, each published raw, are named by sequence and asset; a clean
//! stream of 100,000 events verifies in reasonable time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::process::Output;
use std::time::Instant;

use inventory_schemas::{encode_asset, ChainLink, EventType};
use inventory_testkit::NatsServer;
use stream::{asset, project, subject_of, Writer, SOURCE};

fn verify(url: &str, extra: &[&str]) -> (i32, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = common::inventory(url)
        .arg("verify")
        .args(extra)
        .output()
        .expect("run inventory verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    (status.code().unwrap_or(-1), text)
}

/// 3 AWS accounts and a GCP project, changed, one deleted and re-discovered, with sweeps.
async fn clean_stream(w: &mut Writer) {
    let a = asset("111111111111", "prod");
    let b = asset("222222222222", "search");
    let c = asset("333333333333", "sandbox");
    let p = project("analytics-prod", "Analytics");
    for x in [&a, &b, &c, &p] {
        w.upsert(x).await;
    }
    w.sweep().await;
    w.upsert(&asset("111111111111", "prod v2")).await;
    w.delete(&c).await;
    w.sweep().await;
    w.upsert(&asset("111111111111", "prod v3")).await;
    w.upsert(&c).await; // re-discovered after its tombstone
    w.upsert(&project("analytics-prod", "Analytics 2")).await;
    w.sweep().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stream_verifies_in_full_and_from_a_sequence() {
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    clean_stream(&mut w).await;

    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified: 12 events"), "{out}");
    assert!(out.contains("on 4 assets"), "{out}");
    assert!(out.contains("last seq 12"), "{out}");

    // The newest asset event is printed as an anchor to record elsewhere; a later verify checks it.
    let anchor = out
        .split("--anchor): ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .trim()
        .to_owned();
    assert!(anchor.starts_with("11:"), "{out}");
    let (code, out) = verify(&nats.url(), &["--anchor", &anchor]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 recorded anchors match"), "{out}");
    let other = format!("11:{}", "ab".repeat(32));
    let (code, out) = verify(&nats.url(), &["--anchor", &other]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("history rewritten"), "{out}");
    assert!(
        out.contains("seq 11 (asset gcp/project/analytics-prod"),
        "{out}"
    );

    // From seq 8: asset 1's chain (event 9 links to 6) and asset 3's (10 links to 7) are
    // anchored on messages before the window.
    let (code, out) = verify(&nats.url(), &["--from", "8"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified: 5 events (seqs 8..=12"), "{out}");
    assert!(out.contains("chains anchored before seq 8"), "{out}");

    // An undecodable message on an asset's subject: an integrity breach (it came from a writer
    // with rights on that subject). The collector restarts that subject's chain after it
    // (prevseq = its sequence, previous chainhash "").
    let b = asset("222222222222", "search v2");
    let bad = w
        .publish_raw(&subject_of(&b), b"{\"not\": \"a cloudevent\"}".to_vec())
        .await;
    w.last.insert(
        subject_of(&b),
        ChainLink {
            prevseq: bad,
            chainhash: String::new(),
        },
    );
    let ev = encode_asset(
        EventType::Discovered,
        &b,
        SOURCE,
        chrono::Utc::now(),
        &w.last[&subject_of(&b)],
    )
    .unwrap();
    inventory_bus::publish(&w.js, &ev).await.unwrap();
    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&format!("seq {bad} (subject {})", subject_of(&b))),
        "{out}"
    );
    assert!(out.contains("(undecodable)"), "{out}");
    // Reviewed and accepted: intact, the acceptance listed, the restarted chain checked.
    let (code, out) = verify(&nats.url(), &["--accept", &bad.to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 breaches ACCEPTED"), "{out}");
    assert!(out.contains(&format!("seq {bad} (")), "{out}");
    assert!(out.contains("0 warnings"), "{out}");

    // A window that starts right after the undecodable message anchors on it.
    let (code, out) = verify(&nats.url(), &["--from", &(bad + 1).to_string()]);
    assert_eq!(code, 0, "{out}");

    // Bad value: one line naming the flag.
    let (code, out) = verify(&nats.url(), &["--from", "zero"]);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("--from"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_chainhash_is_named_by_seq_and_asset() {
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    clean_stream(&mut w).await;
    assert_eq!(verify(&nats.url(), &[]).0, 0);

    // A changed event of asset 2 whose chain does not continue from its previous event.
    let b = asset("222222222222", "search (forged)");
    let mut link = w.last[&subject_of(&b)].clone();
    link.chainhash = "0".repeat(64);
    let ev = encode_asset(EventType::Changed, &b, SOURCE, chrono::Utc::now(), &link).unwrap();
    let forged = w.publish_raw(&ev.subject, ev.payload.clone()).await;
    // Honest events keep coming after it.
    w.upsert(&asset("111111111111", "prod v4")).await;

    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("seq {forged} ")), "{out}");
    assert!(out.contains("aws/account/222222222222"), "{out}");
    assert!(out.contains("chainhash is"), "{out}");
    // Exactly one line on stdout.
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("verify FAILED"))
            .count(),
        1,
        "{out}"
    );

    // Also found from a window that starts after the asset's previous event.
    let (code, out) = verify(&nats.url(), &["--from", &forged.to_string()]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("seq {forged} ")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prevseq_that_skips_an_event_is_named_by_seq_and_asset() {
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    let a = asset("111111111111", "prod");
    let first = w.upsert(&a).await;
    let first_link = w.last[&subject_of(&a)].clone();
    w.upsert(&asset("222222222222", "search")).await;
    let second = w.upsert(&asset("111111111111", "prod v2")).await;
    assert_eq!(verify(&nats.url(), &[]).0, 0);

    // Links to the asset's first event (a valid chain from there), skipping the second.
    let ev = encode_asset(
        EventType::Changed,
        &asset("111111111111", "prod v2b"),
        SOURCE,
        chrono::Utc::now(),
        &first_link,
    )
    .unwrap();
    let skipping = w.publish_raw(&ev.subject, ev.payload.clone()).await;

    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("seq {skipping} ")), "{out}");
    assert!(out.contains("aws/account/111111111111"), "{out}");
    assert!(
        out.contains(&format!("prevseq is {first}, expected {second}")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_message_is_named() {
    // A stream that allowed deletion once: a message is removed, then deletion is denied again.
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut config = inventory_bus::stream_config(&inventory_bus::StreamSettings::default());
    config.deny_delete = false;
    let stream = js.create_stream(config.clone()).await.unwrap();
    let mut w = Writer::connect(&nats.url()).await;
    clean_stream(&mut w).await;
    stream.delete_message(5).await.unwrap();

    // While deletion is allowed, the history cannot be proven.
    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("deny_delete false"), "{out}");

    config.deny_delete = true;
    js.update_stream(config).await.unwrap();
    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("seq 5: message 5 is missing"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stream_of_100k_events_verifies() {
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    let t0 = Instant::now();
    let assets_n = 5_000;
    let rounds = 20;
    for round in 0..rounds {
        let batch: Vec<_> = (0..assets_n)
            .map(|i| asset(&format!("{:012}", i), &format!("acct {i} r{round}")))
            .collect();
        w.upsert_many(&batch).await;
    }
    w.sweep().await;
    let events = assets_n * rounds + 1;
    eprintln!(
        "built a stream of {events} events in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let t1 = Instant::now();
    let out = common::inventory(&nats.url())
        .env("INVENTORY_LOG", "warn,inventory::verify=debug")
        .arg("verify")
        .output()
        .unwrap();
    let secs = t1.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "verify of {events} events: {secs:.1}s ({:.0} events/s end to end)\n{stdout}{stderr}",
        events as f64 / secs
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("verified: {events} events")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("on {assets_n} assets")),
        "{stdout}"
    );
    assert!(stderr.contains("verify throughput"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_file_collector_writes_verifies() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("assets.yaml");
    let estate = |names: &[(&str, &str)]| {
        let mut y = String::from("assets:\n");
        for (id, name) in names {
            y.push_str(&format!(
                "  - provider: aws\n    kind: account\n    id: \"{id}\"\n    name: {name}\n    status: active\n"
            ));
        }
        y
    };
    let collect = |yaml: String| {
        std::fs::write(&file, yaml).unwrap();
        let (code, err) = common::run(
            &nats.url(),
            &["collect", "file", "--file", file.to_str().unwrap()],
        );
        assert_eq!(code, 0, "collect failed: {err}");
    };
    collect(estate(&[
        ("111111111111", "prod"),
        ("222222222222", "search"),
        ("333333333333", "sandbox"),
    ]));
    collect(estate(&[
        ("111111111111", "prod-renamed"),
        ("222222222222", "search"),
        ("333333333333", "sandbox"),
    ]));
    // One of three gone: a tombstone (under the 50 % guard).
    collect(estate(&[
        ("111111111111", "prod-renamed"),
        ("222222222222", "search"),
    ]));
    // And back: re-discovered, linked to its tombstone.
    collect(estate(&[
        ("111111111111", "prod-renamed"),
        ("222222222222", "search"),
        ("333333333333", "sandbox"),
    ]));
    let types = common::stream_types(&nats.url()).await;
    let kinds: Vec<&str> = types.iter().map(|(_, t)| t.as_str()).collect();
    assert!(kinds.contains(&"deleted"), "{kinds:?}");

    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("verified: {} events", types.len())),
        "{out}"
    );
    assert!(out.contains("on 3 assets"), "{out}");
    assert!(out.contains("0 warnings"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_max_age_verifies_from_its_first_remaining_message() {
    // With a max_age, old events expire: nothing proves what they held, so a verify of the whole
    // stream fails naming them; the auditor verifies the remaining window explicitly, which takes
    // the chains of assets whose previous event expired as given (warnings).
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let settings = inventory_bus::StreamSettings {
        max_age: std::time::Duration::from_secs(4),
        duplicate_window: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let mut stream = inventory_bus::ensure_stream(&js, &settings).await.unwrap();
    let mut w = Writer::connect(&nats.url()).await;
    w.upsert(&asset("111111111111", "prod")).await; // 1
    w.upsert(&asset("222222222222", "search")).await; // 2
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    w.upsert(&asset("111111111111", "prod v2")).await; // 3, links to 1
    w.upsert(&asset("333333333333", "sandbox")).await; // 4
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let state = stream.info().await.unwrap().state.clone();
        if state.first_sequence == 3 {
            break;
        }
        assert!(state.first_sequence < 3, "expired too much: {state:?}");
        assert!(Instant::now() < deadline, "events 1 and 2 never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (code, out) = verify(&nats.url(), &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("messages 1..=2 are missing"), "{out}");
    assert!(out.contains("--from 3"), "{out}");
    let (code, out) = verify(&nats.url(), &["--from", "3"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified: 2 events (seqs 3..=4"), "{out}");
    assert!(out.contains("previous event 1 expired"), "{out}");
}
