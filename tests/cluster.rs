//! The inventory on a 3-node JetStream cluster (stream at 3 replicas), through failures: the
//! stream leader is SIGKILLed while a sweep publishes, while the API's projector catches up and
//! while it follows live; the killed node restarts and catches up; then the cluster loses a
//! different node. Writers ride through every leader change (same `Nats-Msg-Id`, unknown
//! outcomes read back), readers continue from their checkpoint without a gap (a client of the
//! change feed, resuming with `Last-Event-ID`, receives every change once), and nothing is
//! duplicated or lost: `verify` passes and the API's read model equals a fresh projection.
//!
//! Every wait polls with a generous deadline; the kills are placed by watching the stream, and
//! each test asserts that its kill really landed mid-operation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use inventory_testkit::cluster::NatsCluster;
use inventory_testkit::corpus::estate;
use inventory_testkit::{free_port, sse};

const STREAM: &str = "INVENTORY";

/// Assets of the sweep test's file (issue 13: 10,000 assets, 1,000 renamed).
const SWEEP_ASSETS: usize = 10_000;
const SWEEP_RENAMES: usize = 1_000;

fn subject_of(i: usize) -> String {
    format!(
        "inventory.asset.aws.account.{:012}",
        300_000_000_000u64 + i as u64
    )
}

/// `inventory collect file --file FILE` against `url`, creating the stream at 3 replicas.
fn collect(url: &str, file: &Path) -> std::process::Command {
    let mut cmd = common::inventory(url);
    cmd.env("INVENTORY_STREAM_REPLICAS", "3")
        .args(["collect", "file", "--file"])
        .arg(file);
    cmd
}

/// A child process killed (SIGKILL) on drop, so a failing test leaves nothing running; its
/// stderr goes to a file (a pipe nobody reads while it runs would fill and block it).
struct Proc(Child, std::path::PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Spawns `cmd` with its stderr in `dir/<name>.log`.
    fn spawn(mut cmd: std::process::Command, dir: &Path, name: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Self(child, log)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// Waits for the process to exit, at most `limit`; its exit code and stderr.
    fn finish(mut self, limit: Duration) -> (i32, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then wait (releases the API's DuckDB file).
    fn terminate(mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// A client of node `i` only (one that is not about to be killed), for the test's own reads.
async fn stream_via(url: &str) -> async_nats::jetstream::stream::Stream {
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(url)
        .await
        .unwrap();
    async_nats::jetstream::new(client)
        .get_stream(STREAM)
        .await
        .unwrap()
}

/// The stream's last sequence, retried through elections.
async fn last_seq(stream: &mut async_nats::jetstream::stream::Stream) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match stream.info().await {
            Ok(i) => return i.state.last_sequence,
            Err(e) => assert!(Instant::now() < deadline, "stream info: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the stream holds a message after `seq`; the last sequence then.
async fn grown_past(stream: &mut async_nats::jetstream::stream::Stream, seq: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(info) = stream.info().await {
            if info.state.last_sequence > seq {
                return info.state.last_sequence;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the stream never grew past {seq}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One stored event: (seq, subject, CloudEvents short type, data).
type Ev = (u64, String, String, serde_json::Value);

/// Every event after `after` up to `last`, decoded as an event of its subject.
async fn events(stream: &async_nats::jetstream::stream::Stream, after: u64, last: u64) -> Vec<Ev> {
    let mut out = Vec::new();
    if last <= after {
        return out;
    }
    let mut msgs = Box::pin(
        inventory_bus::follow(stream, "inventory.>", after + 1)
            .await
            .unwrap(),
    );
    while let Some(m) = tokio::time::timeout(Duration::from_secs(60), msgs.next())
        .await
        .expect("reading the stream stalled")
    {
        let m = m.unwrap();
        let ev = m
            .decode()
            .unwrap_or_else(|r| panic!("seq {}: {r:?}", m.seq));
        out.push((
            m.seq,
            m.subject.clone(),
            ev.ty.short().to_owned(),
            ev.data_json(),
        ));
        if m.seq >= last {
            break;
        }
    }
    out
}

/// Kills the stream leader (SIGKILL) from inside an async test; its index.
fn kill_leader(cluster: &mut NatsCluster) -> usize {
    tokio::task::block_in_place(|| {
        let leader = cluster.wait_for_leader(STREAM, Duration::from_secs(60));
        cluster.kill(leader);
        leader
    })
}

/// Issue 13's first acceptance test: the leader dies 'during a sweep of 10,000 assets that
/// renames 1,000'; the sweep still completes `ok` on its first run, exactly once per rename.
async fn a_sweep_rides_through_the_leader_being_killed(
    url_for: impl Fn(&NatsCluster, usize) -> String,
) {
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(NatsCluster::start);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("estate.yaml");
    std::fs::write(&file, estate(SWEEP_ASSETS, 0)).unwrap();
    let out = collect(&cluster.urls(), &file).output().unwrap();
    assert!(
        out.status.success(),
        "first sweep: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leader =
        tokio::task::block_in_place(|| cluster.wait_for_leader(STREAM, Duration::from_secs(60)));
    let watcher = (leader + 1) % cluster.len();
    let mut stream = stream_via(&cluster.url(watcher)).await;
    let base = last_seq(&mut stream).await;
    assert_eq!(base, SWEEP_ASSETS as u64 + 1, "10,000 discovered + 1 sweep");
    eprintln!("setup (cluster + first sweep): {:?}", started.elapsed());

    // The renaming sweep, its client on the leader's own URL (or the comma list).
    std::fs::write(&file, estate(SWEEP_ASSETS, SWEEP_RENAMES)).unwrap();
    let sweep_url = url_for(&cluster, leader);
    let mut sweep = Proc::spawn(collect(&sweep_url, &file), dir.path(), "sweep");
    let at_kill = grown_past(&mut stream, base).await;
    let killed = kill_leader(&mut cluster);
    assert_eq!(killed, leader, "the leader moved before the kill");
    let sweep_was_running = sweep.running();
    let kill_time = Instant::now();
    let (code, err) = sweep.finish(Duration::from_secs(180));
    let tail: Vec<&str> = err.lines().rev().take(15).collect();
    eprintln!(
        "sweep ended {:?} after the kill (stored at kill: {}); {} stderr lines, the last:\n{}",
        kill_time.elapsed(),
        at_kill - base,
        err.lines().count(),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        sweep_was_running && at_kill < base + SWEEP_RENAMES as u64,
        "the kill must land mid-sweep (stored {} of {SWEEP_RENAMES} before it)",
        at_kill - base
    );
    assert_eq!(
        code, 0,
        "the sweep must complete ok on its first run: {err}"
    );

    // Exactly one `changed` per renamed asset, one `sweep` with status ok, nothing else.
    let last = last_seq(&mut stream).await;
    let evs = events(&stream, base, last).await;
    let changed: Vec<&Ev> = evs.iter().filter(|e| e.2 == "changed").collect();
    let subjects: BTreeSet<&str> = changed.iter().map(|e| e.1.as_str()).collect();
    let expected: BTreeSet<String> = (0..SWEEP_RENAMES).map(subject_of).collect();
    assert_eq!(
        changed.len(),
        SWEEP_RENAMES,
        "one event per rename, no duplicate"
    );
    assert_eq!(
        subjects,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for e in &changed {
        assert!(
            e.3["name"].as_str().unwrap().ends_with("-renamed"),
            "{:?}",
            e.3
        );
    }
    let sweeps: Vec<&Ev> = evs.iter().filter(|e| e.2 == "sweep").collect();
    assert_eq!(sweeps.len(), 1, "one sweep.completed");
    assert_eq!(sweeps[0].3["status"], "ok", "{}", sweeps[0].3);
    assert_eq!(sweeps[0].3["counts"]["changed"], SWEEP_RENAMES as u64);
    assert_eq!(evs.len(), SWEEP_RENAMES + 1, "nothing else was written");

    // The chains are intact, read through the surviving nodes.
    let (code, err) = common::run(&cluster.urls(), &["verify"]);
    assert_eq!(code, 0, "verify: {err}");
    eprintln!("whole test: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_on_the_leaders_url_rides_through_its_sigkill() {
    a_sweep_rides_through_the_leader_being_killed(|c, leader| c.url(leader)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_given_all_three_urls_rides_through_a_leader_sigkill() {
    a_sweep_rides_through_the_leader_being_killed(|c, _| c.urls()).await;
}

/// Events written before the API starts, for its catch-up (issue 13: 100,000; about 20 s to
/// write and 20-40 s to project on a loaded 2-core debug build).
const CATCH_UP_EVENTS: usize = 100_000;
const CATCH_UP_ASSETS: usize = 5_000;

/// Reads the API's change feed (SSE) from after `after` until it has delivered change `last`,
/// resuming with `Last-Event-ID` whenever the server ends the feed or the connection fails, as a
/// client would; returns every change id in the order received.
async fn follow_feed(port: u16, after: u64, last: u64) -> Vec<u64> {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/changes/stream");
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut ids, mut resume) = (Vec::new(), after);
    while resume < last {
        assert!(
            Instant::now() < deadline,
            "the feed delivered changes up to {resume} of {last}"
        );
        let sent = http
            .get(&url)
            .header("Accept", "text/event-stream")
            .header("Last-Event-ID", resume.to_string())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) if r.status() == reqwest::StatusCode::OK => r,
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut buf = Vec::new();
        'feed: while resume < last {
            let Ok(Ok(Some(chunk))) =
                tokio::time::timeout(Duration::from_secs(60), resp.chunk()).await
            else {
                break;
            };
            for ev in sse::feed(&mut buf, &chunk) {
                match ev.event.as_str() {
                    "change" => {
                        let id = ev.id.and_then(|i| i.parse().ok()).expect("a numeric id");
                        ids.push(id);
                        resume = id;
                    }
                    "end" => break 'feed,
                    other => panic!("unexpected feed event {other:?}"),
                }
            }
        }
    }
    ids
}

async fn applied_seq(port: u16) -> Option<u64> {
    let (_, body) = common::get(&format!("http://127.0.0.1:{port}/metrics")).await?;
    common::metric(&body, "inventory_projector_applied_seq").map(|v| v as u64)
}

async fn wait_applied(api: &Proc, port: u16, last: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ready = common::get(&format!("http://127.0.0.1:{port}/readyz"))
            .await
            .is_some_and(|(s, _)| s == 200);
        let applied = applied_seq(port).await;
        if ready && applied == Some(last) {
            return;
        }
        if Instant::now() > deadline {
            let err = api.stderr();
            let tail: Vec<&str> = err.lines().rev().take(30).collect();
            panic!(
                "timed out waiting for {what}: applied {applied:?} of {last}, ready {ready}; the API's last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_survives_leader_kills_while_catching_up_and_following() {
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(NatsCluster::start);
    let dir = tempfile::tempdir().unwrap();

    // The history: CATCH_UP_EVENTS events over CATCH_UP_ASSETS assets, in a 3-replica stream.
    {
        let client = async_nats::connect(cluster.url(0)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        inventory_bus::ensure_stream(
            &js,
            &inventory_bus::StreamSettings {
                replicas: 3,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let mut writer = stream::Writer::connect(&cluster.url(0)).await;
    for round in 0..CATCH_UP_EVENTS / CATCH_UP_ASSETS {
        let assets: Vec<_> = (0..CATCH_UP_ASSETS)
            .map(|i| {
                stream::asset(
                    &format!("{:012}", 400_000_000_000u64 + i as u64),
                    &format!("a{i}-v{round}"),
                )
            })
            .collect();
        writer.upsert_many(&assets).await;
    }
    drop(writer);
    let first_leader =
        tokio::task::block_in_place(|| cluster.wait_for_leader(STREAM, Duration::from_secs(60)));
    let watcher = (first_leader + 1) % cluster.len();
    let mut stream = stream_via(&cluster.url(watcher)).await;
    let last = last_seq(&mut stream).await;
    assert_eq!(last, CATCH_UP_EVENTS as u64);
    eprintln!("setup ({last} events): {:?}", started.elapsed());

    // The API catches up; the leader dies part-way.
    let port = free_port();
    let db = dir.path().join("api.duckdb");
    let mut serve = common::inventory(&cluster.urls());
    serve
        .env("INVENTORY_PROJECTOR_BATCH", "1000")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(&db);
    let api = Proc::spawn(serve, dir.path(), "api");
    let at = common::wait_for(Duration::from_secs(120), "catch-up progress", || async {
        applied_seq(port).await.filter(|&s| s > 0)
    })
    .await;
    let killed = kill_leader(&mut cluster);
    assert!(
        at < last,
        "the kill must land mid-catch-up (applied {at} of {last})"
    );
    wait_applied(&api, port, last, "catch-up after the leader was killed").await;
    eprintln!(
        "caught up through the kill at {at}: {:?}",
        started.elapsed()
    );

    // The killed node restarts and catches up.
    tokio::task::block_in_place(|| {
        cluster.restart(killed);
        cluster.wait_all_current(STREAM, Duration::from_secs(120));
    });

    // The API follows live while a sweep writes and the cluster loses a different node: the
    // stream leader if it is not the node that was killed before, else another.
    let file = dir.path().join("live.yaml");
    std::fs::write(&file, estate(2_000, 0)).unwrap();
    // Make the leader a node other than the one killed before, so the next kill is the
    // leader's and of a different node.
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while cluster.wait_for_leader(STREAM, Duration::from_secs(60)) == killed {
            assert!(
                Instant::now() < deadline,
                "the leadership never left node {killed}"
            );
            cluster.step_down(STREAM);
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let base = last_seq(&mut stream).await;
    // A client follows the change feed through the kill: no gap, no duplicate.
    let feed = tokio::spawn(follow_feed(port, base, base + 2_000));
    let mut sweep = Proc::spawn(collect(&cluster.urls(), &file), dir.path(), "live-sweep");
    let stored_at_kill = grown_past(&mut stream, base).await;
    let second = tokio::task::block_in_place(|| {
        let leader = cluster.wait_for_leader(STREAM, Duration::from_secs(60));
        let victim = if leader == killed {
            (killed + 1..killed + cluster.len())
                .map(|i| i % cluster.len())
                .find(|&i| i != watcher)
                .unwrap()
        } else {
            leader
        };
        cluster.kill(victim);
        victim
    });
    assert_ne!(second, killed);
    let sweep_was_running = sweep.running();
    let (code, err) = sweep.finish(Duration::from_secs(180));
    assert_eq!(code, 0, "live sweep: {err}");
    assert!(
        sweep_was_running && stored_at_kill < base + 2_000,
        "the second kill must land mid-sweep (stored {} of 2000)",
        stored_at_kill - base
    );
    // The watcher may have been the victim's peer; read through any running node.
    let survivor = (0..cluster.len()).find(|&i| cluster.is_running(i)).unwrap();
    let mut stream = stream_via(&cluster.url(survivor)).await;
    let last = last_seq(&mut stream).await;
    assert_eq!(last, base + 2_001, "2,000 discovered + 1 sweep, each once");
    wait_applied(&api, port, last, "the live sweep in the read model").await;
    let ids = feed.await.unwrap();
    assert!(
        ids.iter().copied().eq(base + 1..=base + 2_000),
        "the change feed through the kill: {} changes, first {:?}, last {:?}",
        ids.len(),
        ids.first(),
        ids.last()
    );
    api.terminate();
    eprintln!(
        "followed live through the second kill: {:?}",
        started.elapsed()
    );

    // The API's read model equals a fresh projection; the history verifies.
    let fresh = dir.path().join("fresh.duckdb");
    let (code, err) = common::run(
        &cluster.urls(),
        &["project", "--db", fresh.to_str().unwrap()],
    );
    assert_eq!(code, 0, "project: {err}");
    let served = common::dump_read_model(&db);
    let rebuilt = common::dump_read_model(&fresh);
    assert_eq!(served.len(), rebuilt.len());
    assert!(
        served == rebuilt,
        "the API's read model differs from a fresh projection"
    );
    let (code, err) = common::run(&cluster.urls(), &["verify"]);
    assert_eq!(code, 0, "verify: {err}");
    eprintln!("whole test: {:?}", started.elapsed());
}
