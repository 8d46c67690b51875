//! The background check of the stream's signed checkpoints ([`inventory_query_api::integrity`])
//! against a real `nats-server -js`: an untouched stream verifies, incrementally; a checkpoint
//! by an unknown key or over other content does not, and says why; without a key nothing is
//! claimed; `serve()` exposes the outcome at `GET /api/v1/integrity`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use inventory_bus::StreamSettings;
use inventory_evidence::checkpoint::Checkpoint;
use inventory_evidence::nats::{
    default_origin, evidence_stream_config, read_leaves, CHECKPOINT_SUBJECT,
};
use inventory_evidence::{merkle, CheckpointRecord, Hash, Signer, Verifier};
use inventory_query_api::integrity::{Checker, IntegrityConfig};
use inventory_query_api::{Integrity, IntegrityState, ServeConfig};
use inventory_testkit::NatsServer;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Bed {
    _nats: NatsServer,
    js: jetstream::Context,
    stream: Stream,
    signer: Signer,
    published: u64,
}

fn signer(seed: u8) -> Signer {
    Signer::from_seed(&default_origin(), [seed; 32]).unwrap()
}

impl Bed {
    async fn start() -> Self {
        let nats = NatsServer::start();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        let stream = inventory_bus::ensure_stream(&js, &StreamSettings::default())
            .await
            .unwrap();
        js.get_or_create_stream(evidence_stream_config(1))
            .await
            .unwrap();
        Self {
            _nats: nats,
            js,
            stream,
            signer: signer(7),
            published: 0,
        }
    }

    /// Appends `n` messages to INVENTORY (their content does not matter to the tree).
    async fn publish(&mut self, n: u64, tag: &str) {
        for _ in 0..n {
            self.published += 1;
            let payload = format!("{{\"tag\":\"{tag}\",\"n\":{}}}", self.published);
            self.js
                .publish(format!("inventory.test.{tag}"), payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }

    /// The leaf hashes of messages 1..=upto as stored.
    async fn leaves(&self, upto: u64) -> Vec<Hash> {
        let mut out = Vec::new();
        read_leaves(&self.stream, 1, upto, &CancellationToken::new(), |_, l| {
            out.push(l)
        })
        .await
        .unwrap()
        .unwrap();
        out
    }

    /// Appends a checkpoint of `size` and `root` signed by `by` to the evidence stream.
    async fn checkpoint(&self, by: &Signer, size: u64, root: Hash) {
        let note = Checkpoint::new(&default_origin(), size, root)
            .unwrap()
            .sign(by)
            .unwrap();
        self.js
            .publish(
                CHECKPOINT_SUBJECT,
                CheckpointRecord::new(note, &[]).to_json().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// A true checkpoint of the first `size` messages by the bed's signer.
    async fn honest_checkpoint(&self, size: u64) {
        let root = merkle::root(&self.leaves(size).await);
        self.checkpoint(&self.signer, size, root).await;
    }

    fn checker(&self, keys: Vec<Verifier>) -> (Checker, watch::Receiver<Integrity>) {
        let (tx, rx) = watch::channel(Integrity::initial(&keys));
        (
            Checker::new(self.js.clone(), self.stream.clone(), keys, tx),
            rx,
        )
    }
}

#[tokio::test]
async fn an_untouched_stream_verifies_incrementally_and_a_shrinking_checkpoint_fails() {
    let mut bed = Bed::start().await;
    let (mut checker, rx) = bed.checker(vec![bed.signer.verifier()]);
    let cancel = CancellationToken::new();

    // Nothing signed yet.
    assert_eq!(checker.check(&cancel).await.unwrap(), 0);
    assert_eq!(rx.borrow().state, IntegrityState::NoCheckpoint);

    bed.publish(300, "a").await;
    bed.honest_checkpoint(300).await;
    assert_eq!(checker.check(&cancel).await.unwrap(), 300);
    {
        let s = rx.borrow();
        assert_eq!(s.state, IntegrityState::Verified, "{s:?}");
        let v = s.verified.as_ref().unwrap();
        assert_eq!(v.size, 300);
        assert_eq!(v.origin, default_origin());
        assert_eq!(
            v.signers,
            [format!("{}+{:08x}", bed.signer.name(), bed.signer.key_id())]
        );
        assert!(s.verified_at.is_some() && s.covers(300) && !s.covers(301));
    }

    // The same checkpoint again: nothing is read.
    assert_eq!(checker.check(&cancel).await.unwrap(), 0);

    // More events and a second checkpoint: only the new messages are read.
    bed.publish(57, "b").await;
    bed.honest_checkpoint(357).await;
    assert_eq!(checker.check(&cancel).await.unwrap(), 57);
    assert_eq!(checker.verified_size(), 357);
    assert_eq!(rx.borrow().state, IntegrityState::Verified);
    assert_eq!(rx.borrow().verified.as_ref().unwrap().size, 357);

    // A validly signed checkpoint of fewer messages than were verified.
    bed.honest_checkpoint(100).await;
    assert_eq!(checker.check(&cancel).await.unwrap(), 0);
    let s = rx.borrow().clone();
    assert_eq!(s.state, IntegrityState::Failed);
    let reason = s.reason.unwrap();
    assert!(
        reason.contains("signs 100 messages, fewer than the 357 already verified"),
        "{reason}"
    );
    // The newest verified checkpoint still covers what it covered.
    assert_eq!(s.verified.unwrap().size, 357);
    assert_eq!(s.checkpoint.unwrap().size, 100);
}

#[tokio::test]
async fn a_checkpoint_by_an_unknown_key_is_not_verified_and_no_key_claims_nothing() {
    let mut bed = Bed::start().await;
    bed.publish(20, "a").await;
    let stranger = signer(9);
    let root = merkle::root(&bed.leaves(20).await);
    bed.checkpoint(&stranger, 20, root).await;
    let cancel = CancellationToken::new();

    let (mut checker, rx) = bed.checker(vec![bed.signer.verifier()]);
    checker.check(&cancel).await.unwrap();
    let s = rx.borrow().clone();
    assert_eq!(s.state, IntegrityState::Failed);
    let reason = s.reason.clone().unwrap();
    assert!(
        reason.contains("is not validly signed by a configured key"),
        "{reason}"
    );
    assert!(s.verified.is_none() && !s.covers(1));
    // What it claims is shown, with no signer vouching for it.
    let seen = s.checkpoint.unwrap();
    assert_eq!((seen.size, seen.signers.len()), (20, 0));

    // Without a key nothing is read and nothing is called verified, even over a true checkpoint.
    bed.honest_checkpoint(20).await;
    let (mut checker, rx) = bed.checker(vec![]);
    assert_eq!(checker.check(&cancel).await.unwrap(), 0);
    let s = rx.borrow().clone();
    assert_eq!(s.state, IntegrityState::NoKey);
    assert!(
        s.reason.unwrap().contains("INVENTORY_VERIFIER_KEY"),
        "points to the setting"
    );
    assert!(s.verified.is_none());
    assert_eq!(s.checkpoint.unwrap().size, 20);
}

#[tokio::test]
async fn a_checkpoint_over_other_content_fails_with_a_root_mismatch_in_the_new_range() {
    let mut bed = Bed::start().await;
    bed.publish(40, "a").await;
    let cancel = CancellationToken::new();
    let (mut checker, rx) = bed.checker(vec![bed.signer.verifier()]);
    bed.honest_checkpoint(25).await;
    checker.check(&cancel).await.unwrap();
    assert_eq!(rx.borrow().state, IntegrityState::Verified);

    // A checkpoint signed over other content than the stream holds: message 31 differs.
    let mut leaves = bed.leaves(40).await;
    leaves[30] = merkle::leaf_hash(b"what was signed at seq 31");
    bed.checkpoint(&bed.signer, 40, merkle::root(&leaves)).await;
    assert_eq!(checker.check(&cancel).await.unwrap(), 15);
    let s = rx.borrow().clone();
    assert_eq!(s.state, IntegrityState::Failed);
    let reason = s.reason.unwrap();
    assert!(reason.starts_with("root mismatch"), "{reason}");
    assert!(
        reason.contains("the first differing message lies in seq 26..=40"),
        "{reason}"
    );
    assert_eq!(s.verified.unwrap().size, 25);

    // A checkpoint signing more messages than the stream holds.
    bed.honest_checkpoint(40).await;
    checker.check(&cancel).await.unwrap();
    assert_eq!(
        rx.borrow().state,
        IntegrityState::Verified,
        "{:?}",
        rx.borrow()
    );
    bed.checkpoint(&bed.signer, 45, merkle::root(&leaves)).await;
    checker.check(&cancel).await.unwrap();
    let reason = rx.borrow().reason.clone().unwrap();
    assert!(
        reason.contains("signs 45 messages, the stream ends at 40"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_fresh_stream_signed_over_other_content_fails_from_its_first_message() {
    let mut bed = Bed::start().await;
    bed.publish(12, "fresh").await;
    // The checkpoint signs another stream's content (the same size).
    let other: Vec<Hash> = (0..12u8).map(|i| merkle::leaf_hash(&[i])).collect();
    bed.checkpoint(&bed.signer, 12, merkle::root(&other)).await;
    let (mut checker, rx) = bed.checker(vec![bed.signer.verifier()]);
    assert_eq!(checker.check(&CancellationToken::new()).await.unwrap(), 12);
    let s = rx.borrow().clone();
    assert_eq!(s.state, IntegrityState::Failed);
    let reason = s.reason.unwrap();
    assert!(
        reason.contains("root mismatch") && reason.contains("messages 1..=12 hash to root"),
        "{reason}"
    );
    assert!(s.verified.is_none());
}

#[tokio::test]
async fn serve_checks_in_the_background_and_answers_at_api_v1_integrity() {
    let mut bed = Bed::start().await;
    bed.publish(5, "a").await;
    bed.honest_checkpoint(5).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", inventory_testkit::free_port());
    let cfg = ServeConfig {
        integrity: IntegrityConfig {
            keys: vec![bed.signer.verifier()],
            every: Duration::from_millis(100),
        },
        ..common::serve_config(&bed._nats, &addr, dir.path())
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(inventory_query_api::serve(cfg, cancel.clone()));
    let mut last = Value::Null;
    common::poll_until(
        "a verified checkpoint",
        Duration::from_secs(20),
        async || {
            if tokio::net::TcpStream::connect(&addr).await.is_err() {
                return false;
            }
            let (status, body) = common::http(&addr, "GET", "/api/v1/integrity", None, None).await;
            assert_eq!(status, 200, "{body}");
            last = serde_json::from_str(&body).unwrap();
            last["state"] == "verified"
        },
    )
    .await;
    assert_eq!(last["verified"]["size"], 5);
    assert_eq!(last["checkpoint"]["origin"], default_origin());
    assert!(last["verified_at"].is_string(), "{last}");
    assert_eq!(last["keys"].as_array().unwrap().len(), 1);

    // A newer checkpoint is picked up.
    bed.publish(3, "b").await;
    bed.honest_checkpoint(8).await;
    common::poll_until(
        "the newer checkpoint",
        Duration::from_secs(20),
        async || {
            let (_, body) = common::http(&addr, "GET", "/api/v1/integrity", None, None).await;
            last = serde_json::from_str(&body).unwrap();
            last["verified"]["size"] == 8
        },
    )
    .await;

    // The spec documents it.
    let (_, spec) = common::http(&addr, "GET", "/openapi.json", None, None).await;
    assert!(
        spec.contains("\"/api/v1/integrity\""),
        "the route is in the spec"
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
