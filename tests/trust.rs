//! The trust rule end to end (issue 9, acceptance 1): messages published with a raw NATS client
//! as an attacker holding only the Prometheus collector's rights could — a cross-subject
//! tombstone, a cross-subject `changed`, a sweep claiming another scope, sweeps claiming a future
//! time — change nothing in any API view of a running `inventory serve`, land in `rejected` with
//! their reason (API and /metrics), and make `inventory verify` fail naming them, unless each is
//! accepted explicitly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/stream.rs"]
mod stream;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use inventory_schemas::{
    encode_asset, encode_sweep, encode_tombstone, EventType, Provenance, SweepCompleted,
    SweepCounts, SweepStatus, Tombstone,
};
use inventory_testkit::{free_port, NatsServer};
use serde_json::Value;
use stream::{asset, Writer};

const VICTIM: &str = "aws/account/052718349960";

fn sweep(provider: &str, scope: &str, finished: chrono::DateTime<Utc>) -> SweepCompleted {
    SweepCompleted {
        collector: provider.into(),
        provider: provider.into(),
        scope: scope.into(),
        status: SweepStatus::Ok,
        started_at: finished - chrono::TimeDelta::seconds(2),
        finished_at: finished,
        duration_ms: 2000,
        counts: SweepCounts::default(),
        error: None,
        provenance: Provenance::default(),
    }
}

async fn get_json(url: &str) -> (u16, Value) {
    let (status, body) = common::get(url).await.expect("the API answers");
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// Waits until the API has applied everything up to `seq`.
async fn applied(base: &str, seq: u64) {
    common::wait_for(
        Duration::from_secs(30),
        "the projector to apply",
        || async {
            let (_, body) = common::get(&format!("{base}/metrics")).await?;
            let at = common::metric(&body, "inventory_projector_applied_seq")?;
            (at >= seq as f64).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_messages_change_nothing_are_rejected_and_fail_verify() {
    let nats = NatsServer::start();
    let mut w = Writer::connect(&nats.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = common::serve(&nats.url(), &dir.path().join("api.duckdb"), port);

    // The honest history: the account, another one, and the AWS collector's sweep of o-abc.
    let victim = asset("052718349960", "payments-prod");
    w.upsert(&victim).await;
    w.upsert(&asset("111111111111", "search")).await;
    let honest_at = Utc::now();
    let honest = encode_sweep(&sweep("aws", "o-abc", honest_at), "/collectors/aws/o-abc").unwrap();
    assert_eq!(honest.subject, "inventory.sweep.aws.o-abc");
    let honest_seq = w.publish_raw(&honest.subject, honest.payload).await;
    applied(&base, honest_seq).await;
    let (_, before) = get_json(&format!("{base}/api/v1/assets/{VICTIM}")).await;
    let (_, collectors_before) = get_json(&format!("{base}/api/v1/collectors")).await;
    let (_, changes_before) = get_json(&format!("{base}/api/v1/changes?limit=1000")).await;
    assert_eq!(before["name"], "payments-prod", "{before}");

    // The forgeries, each a plain JetStream publish of a well-formed CloudEvent.
    let tomb = Tombstone {
        id: "052718349960".into(),
        provider: "aws".into(),
        kind: "account".into(),
        name: "payments-prod".into(),
        reason: "forged".into(),
        last_contenthash: String::new(),
        provenance: Provenance::default(),
    };
    let link = w.last[&stream::subject_of(&victim)].clone();
    let forged_tombstone = encode_tombstone(&tomb, "/collectors/aws/o-abc", Utc::now(), &link)
        .unwrap()
        .payload;
    let forged_change = encode_asset(
        EventType::Changed,
        &asset("052718349960", "owned"),
        "/collectors/aws/o-abc",
        Utc::now(),
        &link,
    )
    .unwrap()
    .payload;
    let far = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
    let other_scope = encode_sweep(&sweep("aws", "o-abc", Utc::now()), "/collectors/aws/o-abc")
        .unwrap()
        .payload;
    let future_own = encode_sweep(
        &sweep("prometheus", "prom-default", far),
        "/collectors/prometheus/prom-default",
    )
    .unwrap();
    let future_aws = encode_sweep(&sweep("aws", "o-abc", far), "/collectors/aws/o-abc").unwrap();
    let forged = [
        (
            "inventory.asset.prometheus.endpoint.forged",
            forged_tombstone,
            "subject_mismatch",
        ),
        (
            "inventory.asset.prometheus.endpoint.forged2",
            forged_change.clone(),
            "subject_mismatch",
        ),
        (
            "inventory.sweep.prometheus.prom-default",
            other_scope,
            "subject_mismatch",
        ),
        (
            future_own.subject.as_str(),
            future_own.payload.clone(),
            "future_time",
        ),
        (
            future_aws.subject.as_str(),
            future_aws.payload.clone(),
            "future_time",
        ),
    ];
    let mut seqs = Vec::new();
    for (subject, payload, _) in &forged {
        seqs.push(w.publish_raw(subject, payload.clone()).await);
    }
    // An honest event after them: the API is past the forgeries once it shows it.
    let after = w.upsert(&asset("111111111111", "search v2")).await;
    applied(&base, after).await;

    // No API view changed.
    let (status, now) = get_json(&format!("{base}/api/v1/assets/{VICTIM}")).await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now, before, "the victim is untouched");
    let (_, accounts) = get_json(&format!("{base}/api/v1/accounts?provider=aws")).await;
    let names: Vec<&str> = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["payments-prod", "search v2"], "{accounts}");
    let (_, history) = get_json(&format!("{base}/api/v1/assets/{VICTIM}/history")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    let (_, collectors) = get_json(&format!("{base}/api/v1/collectors")).await;
    assert_eq!(
        collectors["items"], collectors_before["items"],
        "no forged sweep moved any freshness"
    );
    let (_, changes) = get_json(&format!("{base}/api/v1/changes?limit=1000")).await;
    let changed: Vec<u64> = changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        changed.len(),
        changes_before["items"].as_array().unwrap().len() + 1,
        "{changes}"
    );
    assert!(seqs.iter().all(|s| !changed.contains(s)), "{changes}");
    // The victim's last_seen did not move to 9999 either.
    assert!(
        now["last_seen"].as_str().unwrap().starts_with("20"),
        "{now}"
    );

    // Each forgery is in `rejected`, with its reason, for operators.
    let (status, rejected) = get_json(&format!("{base}/api/v1/rejected")).await;
    assert_eq!(status, 200, "{rejected}");
    let items = rejected["items"].as_array().unwrap();
    assert_eq!(items.len(), forged.len(), "{rejected}");
    for ((subject, _, reason), (item, seq)) in forged.iter().zip(items.iter().zip(&seqs)) {
        assert_eq!(item["seq"].as_u64(), Some(*seq), "{item}");
        assert_eq!(item["subject"], *subject, "{item}");
        assert_eq!(item["reason_code"], *reason, "{item}");
    }
    let (_, only_future) = get_json(&format!("{base}/api/v1/rejected?reason=future_time")).await;
    assert_eq!(only_future["items"].as_array().unwrap().len(), 2);
    let (status, bad) = get_json(&format!("{base}/api/v1/rejected?reason=nonsense")).await;
    assert_eq!(status, 400, "{bad}");
    // ... and counted in /metrics by reason.
    let (_, metrics) = common::get(&format!("{base}/metrics")).await.unwrap();
    assert!(
        metrics.contains("inventory_events_rejected_total{reason=\"subject_mismatch\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("inventory_events_rejected_total{reason=\"future_time\"} 2"),
        "{metrics}"
    );

    // verify fails on the first forgery, naming its sequence and reason.
    let verify = |extra: &[&str]| {
        let out = common::inventory(&nats.url())
            .arg("verify")
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = verify(&[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("seq {}", seqs[0])), "{out}");
    assert!(out.contains("subject_mismatch"), "{out}");
    // Accepting only some still fails on the next.
    let (code, out) = verify(&["--accept", &seqs[0].to_string()]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("seq {}", seqs[1])), "{out}");
    // Every one accepted after review: intact, and the summary lists each.
    let all: Vec<String> = seqs.iter().map(u64::to_string).collect();
    let (code, out) = verify(&["--accept", &all.join(",")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 breaches ACCEPTED"), "{out}");
    // An acceptance that names no breach is refused.
    let (code, out) = verify(&["--accept", &format!("{},{after}", all.join(","))]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains(&format!("--accept {after}")), "{out}");

    // A window applies the same rule.
    let (code, out) = verify(&["--accept", &all.join(","), "--from", "2"]);
    assert_eq!(code, 0, "{out}");

    let _ = api.kill();
    let _ = api.wait();
}
