//! `run_every` against a real `nats-server` that goes away and comes back.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{all, asset_events, bus};
use inventory_producers::sources::{FileConfig, FileSource};
use inventory_producers::{run_every, SweepOptions};
use inventory_schemas::{EventType, SweepStatus};
use tokio_util::sync::CancellationToken;

fn entry(provider: &str, kind: &str, id: &str, name: &str, team: &str) -> String {
    format!(
        "  - provider: {provider}\n    kind: {kind}\n    id: \"{id}\"\n    name: {name}\n    labels: {{team: {team}}}\n"
    )
}

fn write(path: &Path, entries: &[String]) {
    std::fs::write(path, format!("assets:\n{}", entries.concat())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_survives_a_broker_restart_and_loses_nothing() {
    let mut b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assets.yaml");
    let mut entries = vec![
        entry(
            "aws",
            "account",
            "111111111111",
            "prod-payments",
            "payments",
        ),
        entry("aws", "account", "222222222222", "staging", "platform"),
        entry("gcp", "project", "acme-data-prod", "data prod", "data"),
        entry(
            "azure",
            "subscription",
            "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
            "corp",
            "it",
        ),
    ];
    write(&path, &entries);
    let src = FileSource::new(FileConfig {
        path: path.clone(),
        name: None,
    })
    .unwrap();
    let opts = SweepOptions {
        retry: inventory_bus::RetryPolicy::with_budget(Duration::from_secs(1)),
        ..SweepOptions::default()
    };
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn({
        let (js, stream, cancel) = (b.js.clone(), b.stream.clone(), cancel.clone());
        async move {
            run_every(
                &js,
                &stream,
                &src,
                &opts,
                Duration::from_millis(250),
                cancel,
                move |r| {
                    let _ = tx.send(
                        r.as_ref()
                            .map(|r| (r.status, r.counts))
                            .map_err(|e| e.to_string()),
                    );
                },
            )
            .await
        }
    });
    let first = rx.recv().await.unwrap().unwrap();
    assert_eq!((first.0, first.1.discovered), (SweepStatus::Ok, 4));
    let before: Vec<(u64, Vec<u8>)> = all(&b)
        .await
        .iter()
        .map(|m| (m.stored.seq, m.stored.payload.to_vec()))
        .collect();

    // The broker goes away: sweeps fail (and say so) but the loop keeps going.
    tokio::task::block_in_place(|| b.server.stop());
    let outage = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match rx.recv().await.unwrap() {
                Err(e) => break e,
                Ok((status, _)) if status == SweepStatus::Failed => break format!("{status:?}"),
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("no sweep failed while the broker was down");
    assert!(
        outage.contains("could not be recorded") || outage == "Failed",
        "{outage}"
    );
    tokio::task::block_in_place(|| b.server.restart());
    entries[3] = entry(
        "azure",
        "subscription",
        "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        "corp",
        "it-ops",
    );
    write(&path, &entries);

    // Sweeps may fail while the client reconnects; one soon records the change.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        match next
            .expect("no successful sweep within 60 s of the restart")
            .unwrap()
        {
            Ok((SweepStatus::Ok, counts)) if counts.changed == 1 => break,
            Ok((status, counts)) => assert!(counts.changed == 0, "{status:?} {counts:?}"),
            Err(_) => {}
        }
    }
    cancel.cancel();
    let summary = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap();
    assert!(summary.sweeps >= 2);

    let after = all(&b).await;
    // Nothing stored before the restart was lost or altered.
    for (seq, payload) in &before {
        let m = after.iter().find(|m| m.stored.seq == *seq).unwrap();
        assert_eq!(&m.stored.payload.to_vec(), payload);
    }
    // Every message decodes and the asset history is exactly: 4 discovered, 1 changed.
    assert!(after.iter().all(|m| m.event.is_some()));
    let mut history = asset_events(&after);
    history.sort();
    assert_eq!(history.len(), 5, "{history:?}");
    assert_eq!(
        history.iter().filter(|(ty, _)| *ty == "changed").count(),
        1,
        "{history:?}"
    );
    let changed = after
        .iter()
        .find(|m| m.ty() == Some(EventType::Changed))
        .unwrap();
    let discovered = after
        .iter()
        .find(|m| m.key() == changed.key() && m.ty() == Some(EventType::Discovered))
        .unwrap();
    assert_eq!(
        changed.event.as_ref().unwrap().prevseq,
        Some(discovered.stored.seq)
    );
    assert_eq!(changed.asset().labels["team"], "it-ops");
}
