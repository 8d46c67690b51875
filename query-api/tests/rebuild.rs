//! The read model belongs to one stream (issue 9, acceptance 3), with a real `serve()` over a real
//! `nats-server -js`: `INVENTORY` is deleted and created again while the API runs, and new events
//! are published. Sampled continuously, the API never answers with a mix of the two streams,
//! `/readyz` says not ready until the read model is rebuilt, then the API serves exactly the new
//! stream; a change feed open across the switch ends instead of announcing the new stream's
//! sequences.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use common::{http, poll_until, serve, serve_in, SseClient};
use inventory_bus::{NatsConfig, StreamSettings};
use inventory_query_api::FeedSettings;
use inventory_schemas::{encode_asset, AssetStatus, ChainLink, EventType, STREAM_NAME};
use inventory_testkit::NatsServer;
use serde_json::Value;

/// Events of the first stream, and of the one created after it: more of them, so that without
/// the identity check sequences above `OLD` would be applied on top of the old state.
const OLD: Range<u64> = 1..6;
const NEW: Range<u64> = 101..221;

/// The current view as `GET /api/v1/assets` lists it: asset key → name.
type View = BTreeMap<String, String>;

fn name(tag: &str, id: u64) -> String {
    format!("{tag}-{id}")
}

async fn publish(js: &jetstream::Context, ids: Range<u64>, tag: &str) {
    for id in ids {
        let a = common::asset(
            "aws",
            "account",
            &format!("{id:012}"),
            &name(tag, id),
            AssetStatus::Active,
        );
        let ev = encode_asset(
            EventType::Discovered,
            &a,
            "/collectors/aws/o-1",
            chrono::Utc::now(),
            &ChainLink::default(),
        )
        .unwrap();
        inventory_bus::publish(js, &ev).await.unwrap();
    }
}

/// The view after the first `n` events of `ids`.
fn fold(ids: Range<u64>, tag: &str, n: usize) -> View {
    ids.take(n)
        .map(|id| (format!("aws/account/{id:012}"), name(tag, id)))
        .collect()
}

async fn view(addr: &str) -> Result<View, String> {
    let (status, body) = http(addr, "GET", "/api/v1/assets?limit=1000", None, None).await;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    let page: Value = serde_json::from_str(&body).unwrap();
    Ok(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_owned(),
                i["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect())
}

/// One answer and when its request started and its response ended.
struct Sample<T> {
    started: Instant,
    ended: Instant,
    answer: T,
}

/// Calls `f` back to back until `stop`, recording every answer.
fn sample<T, F, Fut>(stop: Arc<AtomicBool>, mut f: F) -> tokio::task::JoinHandle<Vec<Sample<T>>>
where
    T: Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    tokio::spawn(async move {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let answer = f().await;
            out.push(Sample {
                started,
                ended: Instant::now(),
                answer,
            });
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        out
    })
}

#[tokio::test]
async fn a_recreated_stream_is_rebuilt_from_scratch_and_never_mixed_with_the_old_one() {
    let nats = NatsServer::start();
    let client = inventory_bus::connect(&NatsConfig {
        url: nats.url(),
        ..NatsConfig::default()
    })
    .await
    .unwrap();
    let js = jetstream::new(client);
    inventory_bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    publish(&js, OLD, "old").await;
    let (addr, cancel, dir) = serve(&nats, FeedSettings::default()).await;
    let old = fold(OLD, "old", OLD.count());
    assert_eq!(view(&addr).await.unwrap(), old);

    // A feed that has read the old stream's changes.
    let mut feed =
        SseClient::connect(&addr, "/api/v1/changes/stream?since=seq:0", None, None).await;
    let seen = feed.changes(OLD.count(), Duration::from_secs(10)).await;
    assert_eq!(
        seen.iter().map(|e| e.id.unwrap()).collect::<Vec<_>>(),
        (1..=OLD.count() as u64).collect::<Vec<_>>()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let views = sample(stop.clone(), {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move { view(&addr).await }
        }
    });
    let readiness = sample(stop.clone(), {
        let addr = addr.clone();
        move || {
            let addr = addr.clone();
            async move {
                let (status, body) = http(&addr, "GET", "/readyz", None, None).await;
                let detail = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                (status, detail)
            }
        }
    });

    // An administrator deletes the stream and creates it again; collectors publish into it.
    let recreated_at = Instant::now();
    js.delete_stream(STREAM_NAME).await.unwrap();
    inventory_bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    publish(&js, NEW, "new").await;
    let new = fold(NEW, "new", NEW.count());
    poll_until(
        "the new stream's view",
        Duration::from_secs(60),
        async || {
            http(&addr, "GET", "/readyz", None, None).await.0 == 200
                && view(&addr).await.as_ref() == Ok(&new)
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let views = views.await.unwrap();
    let readiness = readiness.await.unwrap();

    // Never a mix: every answer is the whole old view or a state of the new stream, and once the
    // new stream was served the old one never comes back.
    let states: Vec<View> = (0..=NEW.count()).map(|n| fold(NEW, "new", n)).collect();
    let mut first_new: Option<Instant> = None;
    for s in &views {
        let v = s
            .answer
            .as_ref()
            .unwrap_or_else(|e| panic!("a read failed: {e}"));
        if *v == old {
            assert!(
                first_new.is_none_or(|t| s.started < t),
                "the old view was served after the new one"
            );
        } else {
            assert!(states.contains(v), "a mix of the two streams: {v:?}");
            first_new.get_or_insert(s.ended);
        }
    }
    assert!(first_new.is_some());

    // Not ready while rebuilding; ready again only with the new read model in place.
    let rebuilding = readiness
        .iter()
        .find(|s| s.answer.0 == 503 && s.answer.1.starts_with("rebuilding"))
        .unwrap_or_else(|| {
            let seen: Vec<_> = readiness.iter().map(|s| &s.answer).collect();
            panic!("/readyz never said it was rebuilding: {seen:?}")
        });
    assert!(rebuilding.started >= recreated_at);
    assert!(
        rebuilding.answer.1.contains("deleted and created again"),
        "{}",
        rebuilding.answer.1
    );
    let ready_again = readiness
        .iter()
        .find(|s| s.started > rebuilding.ended && s.answer.0 == 200)
        .map(|s| s.ended);
    if let Some(ready_again) = ready_again {
        for s in views.iter().filter(|s| s.started > ready_again) {
            assert_ne!(
                s.answer.as_ref().unwrap(),
                &old,
                "ready, but the old read model was served"
            );
        }
    }

    // Exactly the new stream, history included.
    let (status, body) = http(
        &addr,
        "GET",
        "/api/v1/changes?since=seq:0&limit=1000",
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let changes: Vec<(u64, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().unwrap(),
                c["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = NEW
        .enumerate()
        .map(|(i, id)| (i as u64 + 1, name("new", id)))
        .collect();
    assert_eq!(changes, expected);

    // The feed ended at the switch, without a change of the new stream.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match feed.next().await {
                Some(e) if e.event == ":" => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the feed did not end at the switch")
    .expect("the feed closed without an end event");
    assert_eq!(end.event, "end", "{end:?}");
    assert!(
        end.data["reason"].as_str().unwrap().contains("rebuilt"),
        "{end:?}"
    );

    // The old file is gone: the rebuilt one (with its version log) took its place.
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !f.ends_with(".wal"))
        .collect();
    files.sort();
    assert_eq!(files, ["api.duckdb", "api.duckdb.versions"]);
    cancel.cancel();
}

#[tokio::test]
async fn a_read_model_of_another_schema_version_is_rebuilt_from_the_stream() {
    let nats = NatsServer::start();
    let client = inventory_bus::connect(&NatsConfig {
        url: nats.url(),
        ..NatsConfig::default()
    })
    .await
    .unwrap();
    let js = jetstream::new(client);
    inventory_bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    publish(&js, OLD, "old").await;
    // What an older build left: its own schema version and a stale view.
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = inventory_projector::Connection::open(dir.path().join("api.duckdb")).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL); \
             INSERT INTO meta VALUES ('schema_version', '4'); \
             CREATE TABLE stale (x INTEGER);",
        )
        .unwrap();
    }
    let (addr, cancel, dir) = serve_in(&nats, FeedSettings::default(), dir).await;
    assert_eq!(view(&addr).await.unwrap(), fold(OLD, "old", OLD.count()));
    cancel.cancel();
    let conn = inventory_projector::Connection::open(dir.path().join("api.duckdb")).unwrap();
    let stale: u64 = conn
        .query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'stale'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stale, 0, "the old file was replaced, not amended");
}
