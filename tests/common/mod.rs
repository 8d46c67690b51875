//! Helpers for the end-to-end tests of the `inventory` binary.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;

/// The `inventory` binary with NATS pointed at `nats_url` and quiet logs.
pub fn inventory(nats_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_inventory"));
    cmd.env("NATS_URL", nats_url)
        .env("INVENTORY_LOG", "warn")
        .env_remove("INVENTORY_API_TOKENS")
        .env_remove("GRAFANA_URL")
        .env_remove("GRAFANA_TOKEN")
        .stdin(Stdio::null());
    cmd
}

/// Runs `inventory <args>` to completion, returning (exit code, stderr).
pub fn run(nats_url: &str, args: &[&str]) -> (i32, String) {
    let out = inventory(nats_url)
        .args(args)
        .output()
        .expect("run inventory");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `inventory serve` on a free port with its DuckDB file at `db`.
pub fn serve(nats_url: &str, db: &Path, port: u16) -> Child {
    inventory(nats_url)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn inventory serve")
}

/// GET `url`: (status, body), or None when nothing answers.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Polls `f` until it returns Some or `limit` passes.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Prometheus gauge/counter value from a /metrics body.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every message of the INVENTORY stream as (subject, CloudEvents type).
pub async fn stream_types(nats_url: &str) -> Vec<(String, String)> {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("INVENTORY").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return out;
    }
    let mut msgs = Box::pin(
        inventory_bus::follow(&stream, "inventory.>", 1)
            .await
            .unwrap(),
    );
    while let Some(m) = msgs.next().await {
        let m = m.unwrap();
        let ev = inventory_schemas::decode(&m.payload).unwrap();
        out.push((m.subject.clone(), ev.ty.short().to_owned()));
        if m.seq >= last {
            break;
        }
    }
    out
}

/// Dumps the tables that make up the read model, as text rows, for comparisons.
pub fn dump_read_model(db: &Path) -> Vec<String> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT CAST(e AS VARCHAR) FROM (SELECT * FROM events ORDER BY seq) e",
        "SELECT CAST(a AS VARCHAR) FROM (SELECT * FROM assets ORDER BY asset_key) a",
        "SELECT CAST(s AS VARCHAR) FROM (SELECT * FROM sweeps ORDER BY source) s",
        "SELECT CAST(r AS VARCHAR) FROM (SELECT * FROM rejected ORDER BY seq) r",
        "SELECT CAST(last_seq AS VARCHAR) FROM checkpoint",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap);
        out.extend(rows);
        out.push("--".into());
    }
    out
}
