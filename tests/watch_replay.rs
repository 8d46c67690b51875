//! `inventory watch` and `inventory replay` against a real `nats-server -js`.
//! - watch --json --since 1 prints every asset event once, in order, across a broker restart,
//!   and stops cleanly on SIGTERM;
//! - replay --until SEQ|TIME writes a DuckDB file holding exactly that prefix of the history and
//!   the state it folds to; it refuses to overwrite a file unless --force.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use inventory_testkit::NatsServer;
use stream::{asset, project, Writer};

/// Reads lines of a child's stdout on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_json(rx: &mpsc::Receiver<String>) -> serde_json::Value {
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("a line from inventory watch");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("inventory watch did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_each_change_once_across_a_broker_restart() {
    let mut nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    w.upsert(&asset("111111111111", "prod")).await; // 1
    w.upsert(&project("analytics-prod", "Analytics")).await; // 2
    w.sweep().await; // 3: not an asset change, not printed
    w.upsert(&asset("222222222222", "search")).await; // 4

    let mut watch = common::inventory(&nats.url())
        .args(["watch", "--json", "--since", "seq:1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut watch);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_json(&rx));
    }
    let first = &seen[0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["subject"], "inventory.asset.aws.account.111111111111");
    assert_eq!(
        first["event"]["type"],
        "io.companyos.inventory.asset.discovered.v1"
    );
    assert_eq!(first["event"]["subject"], "aws/account/111111111111");
    assert_eq!(first["event"]["data"]["name"], "prod");
    assert!(first["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert!(first.get("rejected").is_none());

    // Live events.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before_5 = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.upsert(&asset("111111111111", "prod v2")).await; // 5
    seen.push(next_json(&rx));
    assert_eq!(
        seen[3]["event"]["type"],
        "io.companyos.inventory.asset.changed.v1"
    );

    // Broker restart: the watch resumes after the last printed seq.
    nats.restart();
    let mut w2 = Writer::connect(&nats.url()).await;
    w2.last = w.last.clone();
    w2.upsert(&asset("333333333333", "sandbox")).await; // 6
    w2.upsert(&asset("111111111111", "prod v3")).await; // 7
    seen.push(next_json(&rx));
    seen.push(next_json(&rx));
    let seqs: Vec<u64> = seen.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 4, 5, 6, 7]);
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "no duplicate"
    );

    let status = terminate(&mut watch);
    assert!(status.success(), "watch exited with {status}");

    // --since TIME: from the first event recorded at or after it.
    let mut since = common::inventory(&nats.url())
        .args(["watch", "--json", "--since"])
        .arg(before_5.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut since);
    let seqs: Vec<u64> = (0..3)
        .map(|_| next_json(&rx)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![5, 6, 7]);
    assert!(terminate(&mut since).success());

    // Human output with filters: one line per event of the provider/kind.
    let mut human = common::inventory(&nats.url())
        .args(["watch", "--provider", "gcp", "--since", "seq:1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut human);
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(line.contains("discovered"), "{line}");
    assert!(line.contains("gcp/project/analytics-prod"), "{line}");
    assert!(line.contains("\"Analytics\""), "{line}");
    assert!(line.contains("active"), "{line}");
    assert!(line.trim_start().starts_with("2 "), "{line}");
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    assert!(terminate(&mut human).success());
}

/// (asset_key, name, version, deleted) of every asset, by key.
fn assets_of(db: &std::path::Path) -> Vec<(String, String, u64, bool)> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT asset_key, name, version, deleted_at IS NOT NULL FROM assets ORDER BY asset_key")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn event_seqs(db: &std::path::Path) -> Vec<u64> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT seq FROM events ORDER BY seq").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn s(x: &str) -> String {
    x.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_exactly_the_prefix_until_a_seq_or_a_time() {
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    let a = asset("111111111111", "prod");
    let b = asset("222222222222", "search");
    w.upsert(&a).await; // 1
    w.upsert(&b).await; // 2
    w.sweep().await; // 3
    tokio::time::sleep(Duration::from_millis(100)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.upsert(&asset("111111111111", "prod v2")).await; // 4
    w.delete(&b).await; // 5
    w.upsert(&project("analytics-prod", "Analytics")).await; // 6

    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = common::inventory(&nats.url()).args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    // Until a sequence.
    let db4 = dir.path().join("until4.duckdb");
    let (code, out) = run(&["replay", "--until", "seq:4", "--db", db4.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed seqs 1..=4"), "{out}");
    assert!(out.contains("4 events"), "{out}");
    assert_eq!(event_seqs(&db4), vec![1, 2, 3, 4]);
    assert_eq!(
        assets_of(&db4),
        vec![
            (s("aws/account/111111111111"), s("prod v2"), 4, false),
            (s("aws/account/222222222222"), s("search"), 2, false),
        ]
    );

    // Until a time: everything recorded at or before it (seqs 1..=3).
    let db_t = dir.path().join("until-time.duckdb");
    let at = between.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (code, out) = run(&["replay", "--until", &at, "--db", db_t.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed seqs 1..=3"), "{out}");
    assert_eq!(
        assets_of(&db_t),
        vec![
            (s("aws/account/111111111111"), s("prod"), 1, false),
            (s("aws/account/222222222222"), s("search"), 2, false),
        ]
    );
    assert_eq!(event_seqs(&db_t), vec![1, 2, 3]);

    // Until the tip (a time in the future), over an existing file only with --force.
    let (code, out) = run(&[
        "replay",
        "--until",
        "2999-01-01T00:00:00Z",
        "--db",
        db4.to_str().unwrap(),
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("exists"), "{out}");
    assert_eq!(assets_of(&db4).len(), 2, "untouched");
    let (code, out) = run(&[
        "replay",
        "--until",
        "2999-01-01T00:00:00Z",
        "--db",
        db4.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replayed seqs 1..=6"), "{out}");
    assert_eq!(
        assets_of(&db4),
        vec![
            (s("aws/account/111111111111"), s("prod v2"), 4, false),
            (s("aws/account/222222222222"), s("search"), 5, true),
            (s("gcp/project/analytics-prod"), s("Analytics"), 6, false),
        ]
    );

    // Bad values: one line naming the flag.
    let (code, out) = run(&["replay", "--until", "last tuesday", "--db", "x.duckdb"]);
    assert_eq!(code, 64, "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("--until"), "{out}");
    let (code, out) = run(&["replay", "--until", "seq:99", "--db", "y.duckdb"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("ends at sequence 6"), "{out}");
}
