//! The sweep framework driven by the `file` source against a real `nats-server`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use chrono::Utc;
use common::{all, asset_events, bus, since};
use inventory_bus::{self as bus, ErrorKind};
use inventory_producers::sources::{FileConfig, FileSource};
use inventory_producers::{prepare, run_sweep, SweepOptions};
use inventory_schemas::{
    encode_asset, AssetStatus, ChainLink, EventData, EventType, Provenance, SweepStatus,
};

fn entry(provider: &str, kind: &str, id: &str, name: &str, team: &str) -> String {
    format!(
        "  - provider: {provider}\n    kind: {kind}\n    id: \"{id}\"\n    name: {name}\n    labels: {{team: {team}}}\n"
    )
}

fn four() -> Vec<String> {
    vec![
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
    ]
}

fn write(path: &Path, entries: &[String]) {
    std::fs::write(path, format!("assets:\n{}", entries.concat())).unwrap();
}

fn source(path: &Path) -> FileSource {
    FileSource::new(FileConfig {
        path: path.to_owned(),
        name: None,
    })
    .unwrap()
}

fn yaml(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[tokio::test]
async fn discovered_once_then_only_what_changes_is_published() {
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = yaml(&dir, "assets.yaml");
    let mut entries = four();
    write(&path, &entries);
    let src = source(&path);
    let opts = SweepOptions::default();

    // First sweep: four discoveries and one sweep event.
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Ok, 0));
    assert_eq!(
        (r.counts.seen, r.counts.discovered, r.counts.unchanged),
        (4, 4, 0)
    );
    let msgs = all(&b).await;
    assert_eq!(msgs.len(), 5);
    assert!(msgs[..4]
        .iter()
        .all(|m| m.ty() == Some(EventType::Discovered)));
    for m in &msgs[..4] {
        let ev = m.event.as_ref().unwrap();
        assert_eq!((ev.source.as_str(), ev.prevseq), ("/file/assets", Some(0)));
        assert_eq!(m.asset().status, AssetStatus::Declared);
        assert_eq!(m.asset().provenance.collector, "file");
    }
    let sweep = &msgs[4];
    assert_eq!(sweep.stored.subject, "inventory.sweep.file.assets");
    assert_eq!(sweep.stored.seq, r.sweep_seq);
    let s = sweep.sweep();
    assert_eq!(
        (s.scope.as_str(), s.status, s.counts.discovered),
        ("assets", SweepStatus::Ok, 4)
    );
    let first_of_prod = msgs
        .iter()
        .find(|m| m.key() == "aws/account/111111111111")
        .unwrap()
        .stored
        .seq;

    // Nothing changed: only the sweep event.
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.counts.unchanged, r.counts.discovered, r.counts.changed),
        (4, 0, 0)
    );
    let new = since(&b, 5).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].stored.subject, "inventory.sweep.file.assets");
    assert_eq!(new[0].sweep().counts.unchanged, 4);

    // One label edited: exactly one `changed`, linked to the asset's previous event.
    entries[0] = entry(
        "aws",
        "account",
        "111111111111",
        "prod-payments",
        "payments-eu",
    );
    write(&path, &entries);
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.counts.changed, r.counts.unchanged), (1, 3));
    let new = since(&b, 6).await;
    assert_eq!(
        asset_events(&new),
        vec![("changed", "aws/account/111111111111".to_owned())]
    );
    let changed = new[0].event.as_ref().unwrap();
    assert_eq!(changed.prevseq, Some(first_of_prod));
    assert_eq!(new[0].asset().labels["team"], "payments-eu");
    let changed_seq = new[0].stored.seq;

    // One removed: exactly one tombstone.
    let removed = entries.remove(2);
    write(&path, &entries);
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.deleted, r.counts.unchanged),
        (SweepStatus::Ok, 1, 3)
    );
    let new = since(&b, changed_seq + 1).await;
    assert_eq!(
        asset_events(&new),
        vec![("deleted", "gcp/project/acme-data-prod".to_owned())]
    );
    let EventData::Tombstone(t) = &new[0].event.as_ref().unwrap().data else {
        panic!("not a tombstone")
    };
    assert_eq!(t.reason, "absent from complete sweep of assets");
    assert_eq!(t.name, "data prod");
    let tomb_seq = new[0].stored.seq;

    // Declared again: discovered anew, linked to the tombstone.
    entries.push(removed);
    write(&path, &entries);
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.counts.discovered, r.counts.unchanged), (1, 3));
    let new = since(&b, tomb_seq + 1).await;
    assert_eq!(
        asset_events(&new),
        vec![("discovered", "gcp/project/acme-data-prod".to_owned())]
    );
    assert_eq!(new[0].event.as_ref().unwrap().prevseq, Some(tomb_seq));
}

#[tokio::test]
async fn the_mass_deletion_guard_withholds_until_forced() {
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = yaml(&dir, "assets.yaml");
    let entries = four();
    write(&path, &entries);
    let src = source(&path);
    let opts = SweepOptions::default();
    run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();

    // A broken file that lists one asset: three deletions of four are refused.
    write(&path, &entries[..1]);
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Partial, 2));
    assert_eq!((r.counts.deleted, r.counts.deletions_withheld), (0, 3));
    let expected = "mass-deletion guard: would delete 3 of 4 assets (> 50%); rerun with --force-deletions if intended";
    assert_eq!(r.error.as_deref(), Some(expected));
    let new = since(&b, 5).await;
    assert!(asset_events(&new).is_empty());
    assert_eq!(new[0].sweep().status, SweepStatus::Partial);
    assert_eq!(new[0].sweep().error.as_deref(), Some(expected));
    assert_eq!(new[0].sweep().counts.deletions_withheld, 3);

    // Forced: the three go.
    let forced = SweepOptions {
        force_deletions: true,
        ..SweepOptions::default()
    };
    let r = run_sweep(&b.js, &b.stream, &src, &forced).await.unwrap();
    assert_eq!((r.status, r.counts.deleted), (SweepStatus::Ok, 3));
    let new = since(&b, 6).await;
    let mut deleted: Vec<String> = asset_events(&new)
        .into_iter()
        .map(|(ty, key)| {
            assert_eq!(ty, "deleted");
            key
        })
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            "aws/account/222222222222",
            "azure/subscription/0b1f6471-1bf0-4dda-aec3-cb9272f09590",
            "gcp/project/acme-data-prod"
        ]
    );
    // Tombstoned assets are not ours-and-live any more: the next sweep is a clean no-op.
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.deleted, r.counts.unchanged),
        (SweepStatus::Ok, 0, 1)
    );
}

#[tokio::test]
async fn only_assets_last_written_by_this_source_are_tombstoned() {
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (yaml(&dir, "team-a.yaml"), yaml(&dir, "team-b.yaml"));
    let entries = four();
    write(&pa, &entries[..2]);
    write(&pb, &entries[2..]);
    let (a, bsrc) = (source(&pa), source(&pb));
    let opts = SweepOptions::default();
    run_sweep(&b.js, &b.stream, &a, &opts).await.unwrap();
    run_sweep(&b.js, &b.stream, &bsrc, &opts).await.unwrap();
    // An asset declared through the API.
    let mut api_asset = inventory_producers::sources::file::parse(
        Path::new("api"),
        &format!(
            "assets:\n{}",
            entry("aws", "account", "555555555555", "via api", "x")
        ),
    )
    .unwrap()
    .remove(0);
    api_asset.provenance = Provenance::default();
    let ev = encode_asset(
        EventType::Discovered,
        &api_asset,
        "/api",
        Utc::now(),
        &ChainLink::default(),
    )
    .unwrap();
    bus::publish(&b.js, &ev).await.unwrap();
    let mark = all(&b).await.len() as u64;

    // team-a's sweep sees team-b's and the API's assets but tombstones neither; a share of 1/2
    // of its own two is not a mass deletion.
    write(&pa, &entries[..1]);
    let r = run_sweep(&b.js, &b.stream, &a, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.deleted, r.counts.unchanged),
        (SweepStatus::Ok, 1, 1)
    );
    assert_eq!(
        asset_events(&since(&b, mark).await),
        vec![("deleted", "aws/account/222222222222".to_owned())]
    );
}

#[tokio::test]
async fn a_malformed_message_on_a_subject_does_not_crash_a_sweep() {
    let b = bus().await;
    let garbage_seq =
        b.js.publish(
            "inventory.asset.aws.account.999",
            "\u{0}not an event".into(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;
    let dir = tempfile::tempdir().unwrap();
    let path = yaml(&dir, "assets.yaml");
    let mut entries = four();
    write(&path, &entries);
    let src = source(&path);
    let r = run_sweep(&b.js, &b.stream, &src, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.counts.discovered, r.counts.deleted),
        (SweepStatus::Ok, 4, 0)
    );

    // Declaring the asset on that subject links past the garbage (the server accepts it).
    entries.push(entry("aws", "account", "999", "nine", "x"));
    write(&path, &entries);
    let r = run_sweep(&b.js, &b.stream, &src, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.counts.discovered, r.counts.unchanged),
        (SweepStatus::Ok, 1, 4)
    );
    let m = all(&b).await;
    let nine = m.iter().rfind(|m| m.key() == "aws/account/999").unwrap();
    assert_eq!(nine.ty(), Some(EventType::Discovered));
    assert_eq!(nine.event.as_ref().unwrap().prevseq, Some(garbage_seq));
}

#[tokio::test]
async fn a_failed_collect_publishes_only_a_failed_sweep() {
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = yaml(&dir, "assets.yaml");
    write(&path, &four());
    let src = source(&path);
    run_sweep(&b.js, &b.stream, &src, &SweepOptions::default())
        .await
        .unwrap();
    std::fs::write(&path, "assets:\n  - provider: aws\n    kind: [\n").unwrap();
    let r = run_sweep(&b.js, &b.stream, &src, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    let err = r.error.unwrap();
    assert!(err.starts_with(&format!("{}: ", path.display())), "{err}");
    let new = since(&b, 5).await;
    assert_eq!(new.len(), 1, "no tombstones after a failed collect");
    assert_eq!(new[0].sweep().status, SweepStatus::Failed);
    assert_eq!(new[0].sweep().error.as_deref(), Some(err.as_str()));
}

#[tokio::test]
async fn a_racing_writer_is_refused_and_the_sweep_re_diffs() {
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = yaml(&dir, "assets.yaml");
    let mut entries = four();
    write(&path, &entries);
    let src = source(&path);
    let opts = SweepOptions::default();
    run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    let key = "aws/account/222222222222";
    let subject = "inventory.asset.aws.account.222222222222";
    let discovered = all(&b).await.into_iter().find(|m| m.key() == key).unwrap();

    // The sweep reads and diffs...
    entries[1] = entry("aws", "account", "222222222222", "staging", "platform-2");
    write(&path, &entries);
    let plan = prepare(&b.stream, &src, &opts).await;
    assert_eq!(
        plan.writes().collect::<Vec<_>>(),
        vec![(EventType::Changed, key)]
    );

    // ...then another writer moves the subject first.
    let mut theirs = discovered.asset().clone();
    theirs.name = "renamed via api".into();
    let link = ChainLink {
        prevseq: discovered.stored.seq,
        chainhash: discovered
            .event
            .as_ref()
            .unwrap()
            .chainhash
            .clone()
            .unwrap(),
    };
    let racer = encode_asset(EventType::Changed, &theirs, "/api", Utc::now(), &link).unwrap();
    let racer_seq = bus::publish(&b.js, &racer).await.unwrap();

    // A stale expected sequence is refused by the server.
    let mut stale = theirs.clone();
    stale.name = "stale".into();
    let stale = encode_asset(EventType::Changed, &stale, "/api", Utc::now(), &link).unwrap();
    let err = bus::publish(&b.js, &stale).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    // The sweep's write is refused too, and re-done against the racer's event.
    let r = plan.execute(&b.js, &b.stream).await.unwrap();
    assert_eq!((r.status, r.counts.changed), (SweepStatus::Ok, 1));
    assert_eq!((r.conflicts_retried, r.conflicts_unresolved), (1, 0));
    let on_subject: Vec<_> = all(&b)
        .await
        .into_iter()
        .filter(|m| m.stored.subject == subject)
        .collect();
    assert_eq!(
        on_subject.len(),
        3,
        "discovered, racer, ours; the stale one refused"
    );
    let ours = on_subject[2].event.as_ref().unwrap();
    assert_eq!(
        (ours.source.as_str(), ours.prevseq),
        ("/file/assets", Some(racer_seq))
    );
    assert_eq!(on_subject[2].asset().labels["team"], "platform-2");
    assert_eq!(on_subject[2].asset().name, "staging");

    // A racer that moves the subject twice, ending on exactly our state: the re-diff finds
    // nothing left to do.
    entries[1] = entry("aws", "account", "222222222222", "staging", "platform-3");
    write(&path, &entries);
    let plan = prepare(&b.stream, &src, &opts).await;
    assert_eq!(plan.writes().count(), 1);
    let mut other = on_subject[2].asset().clone();
    other.name = "intermediate".into();
    let link = ChainLink {
        prevseq: on_subject[2].stored.seq,
        chainhash: ours.chainhash.clone().unwrap(),
    };
    let first = encode_asset(EventType::Changed, &other, "/api", Utc::now(), &link).unwrap();
    let first_seq = bus::publish(&b.js, &first).await.unwrap();
    let mut same = on_subject[2].asset().clone();
    same.labels.insert("team".into(), "platform-3".into());
    let link = ChainLink {
        prevseq: first_seq,
        chainhash: first.chainhash.clone().unwrap(),
    };
    let twin = encode_asset(EventType::Changed, &same, "/api", Utc::now(), &link).unwrap();
    let twin_seq = bus::publish(&b.js, &twin).await.unwrap();
    let r = plan.execute(&b.js, &b.stream).await.unwrap();
    assert_eq!(
        (r.status, r.counts.changed, r.counts.unchanged),
        (SweepStatus::Ok, 0, 4)
    );
    assert_eq!((r.conflicts_retried, r.conflicts_unresolved), (1, 0));
    assert!(asset_events(&since(&b, twin_seq).await).is_empty());
}

#[tokio::test]
async fn the_same_state_written_twice_at_the_same_sequence_is_stored_once() {
    // Event ids hash (key, prevseq, contenthash): a second writer recording the very state the
    // sweep is about to write, on the same predecessor, carries the same id, and JetStream drops
    // the sweep's publish as a duplicate instead of storing the state twice.
    let b = bus().await;
    let dir = tempfile::tempdir().unwrap();
    let path = yaml(&dir, "assets.yaml");
    let mut entries = four();
    write(&path, &entries);
    let src = source(&path);
    let opts = SweepOptions::default();
    run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    let discovered = all(&b).await.remove(0);
    entries[0] = entry(
        "aws",
        "account",
        "111111111111",
        "prod-payments",
        "payments-2",
    );
    write(&path, &entries);
    let plan = prepare(&b.stream, &src, &opts).await;
    let mut same = discovered.asset().clone();
    same.labels.insert("team".into(), "payments-2".into());
    let link = ChainLink {
        prevseq: discovered.stored.seq,
        chainhash: discovered
            .event
            .as_ref()
            .unwrap()
            .chainhash
            .clone()
            .unwrap(),
    };
    let twin = encode_asset(EventType::Changed, &same, "/api", Utc::now(), &link).unwrap();
    let twin_seq = bus::publish(&b.js, &twin).await.unwrap();
    let r = plan.execute(&b.js, &b.stream).await.unwrap();
    assert_eq!((r.status, r.conflicts_unresolved), (SweepStatus::Ok, 0));
    let history: Vec<_> = all(&b)
        .await
        .into_iter()
        .filter(|m| m.key() == "aws/account/111111111111")
        .map(|m| m.stored.seq)
        .collect();
    assert_eq!(history, vec![discovered.stored.seq, twin_seq]);
}
