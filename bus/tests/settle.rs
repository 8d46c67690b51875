//! The one retry machinery for publishes, against a real nats-server: an event whose earlier
//! attempt was stored is settled by reading it back (never stored twice), a racing writer is a
//! conflict, and a publish waits out an outage within its budget — or gives up when the budget
//! ends.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use async_nats::jetstream;
use chrono::Utc;
use inventory_bus::{
    ensure_stream, last_sequence, publish, publish_settled, RetryPolicy, Settled, StreamSettings,
};
use inventory_schemas::{encode_asset, Asset, AssetStatus, ChainLink, EventType, OutgoingEvent};
use inventory_testkit::NatsServer;

fn asset(name: &str) -> Asset {
    Asset {
        id: "123456789012".into(),
        provider: "aws".into(),
        kind: "account".into(),
        name: name.into(),
        status: AssetStatus::Active,
        org_path: vec![],
        region_residency: vec![],
        url: None,
        auth_mode: None,
        labels: Default::default(),
        raw: serde_json::json!({}),
        provenance: Default::default(),
    }
}

fn event(ty: EventType, name: &str, prev: &ChainLink) -> OutgoingEvent {
    encode_asset(ty, &asset(name), "/file/test", Utc::now(), prev).unwrap()
}

fn link(seq: u64, ev: &OutgoingEvent) -> ChainLink {
    ChainLink {
        prevseq: seq,
        chainhash: ev.chainhash.clone().unwrap(),
    }
}

async fn stream_on(
    nats: &NatsServer,
    duplicate_window: Duration,
) -> (jetstream::Context, jetstream::stream::Stream) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let stream = ensure_stream(
        &js,
        &StreamSettings {
            duplicate_window,
            ..StreamSettings::default()
        },
    )
    .await
    .unwrap();
    (js, stream)
}

#[tokio::test]
async fn a_stored_event_is_read_back_not_stored_twice_and_a_racing_writer_is_a_conflict() {
    let nats = NatsServer::start();
    // A duplicate window this short lets the test see past JetStream's own de-duplication.
    let (js, mut stream) = stream_on(&nats, Duration::from_millis(100)).await;
    let budget = RetryPolicy::with_budget(Duration::from_secs(10));
    let first = event(EventType::Discovered, "a", &ChainLink::default());
    let seq = publish(&js, &first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Published again (its first attempt's acknowledgement lost): the server refuses it as
    // `wrong last sequence`, and reading back finds this very event.
    let again = publish_settled(&js, &stream, &first, budget.backoff(), false).await;
    assert_eq!(again.unwrap(), Settled::Stored(seq));
    // An unknown outcome is read back before anything is sent.
    let unknown = publish_settled(&js, &stream, &first, budget.backoff(), true).await;
    assert_eq!(unknown.unwrap(), Settled::Stored(seq));
    assert_eq!(
        last_sequence(&mut stream).await.unwrap(),
        seq,
        "stored once"
    );

    // Two writers read the same state; the second is refused, after reading back, as a conflict.
    let mine = event(EventType::Changed, "b", &link(seq, &first));
    let theirs = event(EventType::Changed, "c", &link(seq, &first));
    let stored = publish_settled(&js, &stream, &theirs, budget.backoff(), false).await;
    assert_eq!(stored.unwrap(), Settled::Stored(seq + 1));
    for maybe_stored in [false, true] {
        let r = publish_settled(&js, &stream, &mine, budget.backoff(), maybe_stored).await;
        assert_eq!(r.unwrap(), Settled::Conflict, "maybe_stored {maybe_stored}");
    }
    assert_eq!(last_sequence(&mut stream).await.unwrap(), seq + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_waits_out_an_outage_within_its_budget_and_gives_up_after_it() {
    let mut nats = NatsServer::start();
    let (js, mut stream) = stream_on(&nats, Duration::from_secs(120)).await;
    let first = event(EventType::Discovered, "a", &ChainLink::default());
    tokio::task::block_in_place(|| nats.stop());

    // Down for longer than a short budget: the publish gives up with an error, in time.
    let started = Instant::now();
    let short = RetryPolicy::with_budget(Duration::from_secs(1));
    let r = publish_settled(&js, &stream, &first, short.backoff(), false).await;
    assert!(r.is_err(), "{r:?}");
    let took = started.elapsed();
    // One attempt may wait out the client's own ack timeout (5 s) before the budget is checked.
    assert!(took < Duration::from_secs(12), "{took:?}");

    // Back 2 s later: a publish with a budget that outlasts it is stored, exactly once.
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        nats.restart();
        nats
    });
    let long = RetryPolicy::with_budget(Duration::from_secs(60));
    let r = publish_settled(&js, &stream, &first, long.backoff(), true).await;
    let _nats = restart.join().unwrap();
    let Settled::Stored(seq) = r.unwrap() else {
        panic!("not stored")
    };
    assert_eq!(last_sequence(&mut stream).await.unwrap(), seq);
    assert_eq!(seq, 1, "one copy, whatever the attempts");
}
