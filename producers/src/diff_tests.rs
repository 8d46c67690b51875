#![allow(clippy::unwrap_used)]

use super::*;
use inventory_schemas::{
    encode_sweep, AssetStatus, ChainLink, EventData, SweepCompleted, SweepCounts, SweepStatus,
};

const OURS: &str = "/file/assets";

fn asset(id: &str, name: &str) -> Asset {
    Asset {
        id: id.into(),
        provider: "aws".into(),
        kind: "account".into(),
        name: name.into(),
        status: AssetStatus::Declared,
        org_path: vec!["root".into()],
        region_residency: vec![],
        url: None,
        auth_mode: None,
        labels: Default::default(),
        raw: serde_json::json!({}),
        provenance: crate::source::provenance("file", "file:test.yaml"),
    }
}

fn cx() -> Context<'static> {
    Context {
        source_uri: OURS,
        scope: "assets",
        filter: "inventory.asset.>",
        observed: Utc::now(),
    }
}

fn stored(seq: u64, subject: &str, payload: Vec<u8>) -> StoredMessage {
    StoredMessage {
        seq,
        subject: subject.into(),
        // Recorded now: events observed "now" are not from the future.
        recorded_at_nanos: Utc::now().timestamp_nanos_opt().unwrap().into(),
        payload: payload.into(),
    }
}

/// The stream's view after `asset` was published by `source` at `seq`.
fn last_of(asset: &Asset, source: &str, seq: u64) -> (String, LastLink) {
    let ev = encode_asset(
        EventType::Discovered,
        asset,
        source,
        Utc::now(),
        &ChainLink::default(),
    )
    .unwrap();
    let subject = ev.subject.clone();
    (
        subject.clone(),
        classify(&stored(seq, &subject, ev.payload)),
    )
}

fn collected(assets: Vec<Asset>) -> Collected {
    Collected::complete(assets, crate::source::provenance("file", "file:test.yaml"))
}

const GUARD: Guard = Guard {
    max_delete_share: 0.5,
    force: false,
};

#[test]
fn classify_reads_valid_events_and_tolerates_garbage() {
    let a = asset("111111111111", "prod");
    let (subject, last) = last_of(&a, OURS, 7);
    let LastLink::Event(e) = &last else {
        panic!("{last:?}")
    };
    assert_eq!((e.seq, e.deleted, e.source.as_str()), (7, false, OURS));
    assert_eq!(e.contenthash, asset_content_hash(&a).unwrap());
    assert_eq!(last.link().prevseq, 7);
    assert_eq!(last.link().chainhash, e.chainhash);

    assert_eq!(
        classify(&stored(9, &subject, b"\x00garbage".to_vec())),
        LastLink::Unreadable { seq: 9 }
    );
    // A valid event published on another asset's subject is not trusted.
    let ev = encode_asset(
        EventType::Discovered,
        &a,
        OURS,
        Utc::now(),
        &ChainLink::default(),
    )
    .unwrap();
    assert_eq!(
        classify(&stored(
            3,
            "inventory.asset.aws.account.222222222222",
            ev.payload
        )),
        LastLink::Unreadable { seq: 3 }
    );
    // So is a sweep event on an asset subject.
    let now = Utc::now();
    let sweep = SweepCompleted {
        collector: "file".into(),
        provider: "file".into(),
        scope: "assets".into(),
        status: SweepStatus::Ok,
        started_at: now,
        finished_at: now,
        duration_ms: 0,
        counts: SweepCounts::default(),
        error: None,
        provenance: Provenance::default(),
    };
    let sw = encode_sweep(&sweep, OURS).unwrap();
    assert_eq!(
        classify(&stored(4, &subject, sw.payload)),
        LastLink::Unreadable { seq: 4 }
    );
}

#[test]
fn subject_filters_match_like_nats() {
    assert!(subject_matches(
        "inventory.asset.>",
        "inventory.asset.aws.account.1"
    ));
    assert!(subject_matches(
        "inventory.asset.prometheus.endpoint.*",
        "inventory.asset.prometheus.endpoint.p1"
    ));
    assert!(!subject_matches(
        "inventory.asset.prometheus.endpoint.*",
        "inventory.asset.grafana.endpoint.p1"
    ));
    assert!(!subject_matches("inventory.asset.*", "inventory.asset.a.b"));
    assert!(!subject_matches("inventory.asset.>", "inventory.asset"));
    assert!(subject_matches("a.b", "a.b"));
}

#[test]
fn upserts_are_classified_by_the_last_event() {
    let a = asset("1", "x");
    let hash = asset_content_hash(&a).unwrap();
    assert_eq!(
        decide_upsert(&hash, None),
        Some((EventType::Discovered, ChainLink::default()))
    );
    let (_, same) = last_of(&a, "/api", 5);
    assert_eq!(
        decide_upsert(&hash, Some(&same)),
        None,
        "other writers count for the diff"
    );
    let (_, other) = last_of(&asset("1", "renamed"), OURS, 6);
    let (ty, link) = decide_upsert(&hash, Some(&other)).unwrap();
    assert_eq!((ty, link.prevseq), (EventType::Changed, 6));
    let (ty, link) = decide_upsert(&hash, Some(&LastLink::Unreadable { seq: 8 })).unwrap();
    assert_eq!(
        (ty, link.prevseq, link.chainhash.as_str()),
        (EventType::Discovered, 8, "")
    );
    let LastLink::Event(mut dead) = same else {
        unreachable!()
    };
    dead.deleted = true;
    let (ty, link) = decide_upsert(&hash, Some(&LastLink::Event(dead))).unwrap();
    assert_eq!((ty, link.prevseq), (EventType::Discovered, 5));
}

#[test]
fn a_sweep_plans_discoveries_changes_and_our_deletions_only() {
    let kept = asset("1", "kept");
    let renamed = asset("2", "new name");
    let fresh = asset("3", "fresh");
    let mut last = HashMap::new();
    for (i, (a, src)) in [
        (kept.clone(), OURS),
        (asset("2", "old name"), OURS),
        (asset("4", "gone, ours"), OURS),
        (asset("5", "gone, not ours"), "/api"),
        (asset("6", "ours 6"), OURS),
        (asset("7", "ours 7"), OURS),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, l) = last_of(&a, src, i as u64 + 1);
        last.insert(s, l);
    }
    let listing = collected(vec![
        kept,
        renamed,
        fresh,
        asset("6", "ours 6"),
        asset("7", "ours 7"),
    ]);
    let plan = plan(&listing, &last, &cx(), GUARD).unwrap();
    let got: Vec<(EventType, &str)> = plan.writes.iter().map(|w| (w.ty, w.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (EventType::Changed, "aws/account/2"),
            (EventType::Discovered, "aws/account/3"),
            (EventType::Deleted, "aws/account/4"),
        ]
    );
    assert_eq!(
        (plan.seen, plan.unchanged, plan.deletions_withheld),
        (5, 3, 0)
    );
    assert!(plan.notes.is_empty());
    let tomb = &plan.writes[2];
    assert_eq!(tomb.event.prevseq, Some(3));
    let EventData::Tombstone(t) = inventory_schemas::decode(&tomb.event.payload).unwrap().data
    else {
        panic!("not a tombstone")
    };
    assert_eq!(t.name, "gone, ours");
    assert_eq!(t.reason, "absent from complete sweep of assets");
}

fn ours(n: usize) -> HashMap<String, LastLink> {
    (1..=n)
        .map(|i| last_of(&asset(&i.to_string(), "a"), OURS, i as u64))
        .collect()
}

#[test]
fn the_mass_deletion_guard_refuses_more_than_the_share_unless_forced() {
    // 3 of 4 gone: refused.
    let keep = collected(vec![asset("1", "a")]);
    let p = plan(&keep, &ours(4), &cx(), GUARD).unwrap();
    assert!(p.writes.is_empty());
    assert_eq!(p.deletions_withheld, 3);
    assert_eq!(
        p.notes,
        vec!["mass-deletion guard: would delete 3 of 4 assets (> 50%); rerun with --force-deletions if intended"]
    );
    // Forced: deleted.
    let forced = Guard {
        force: true,
        ..GUARD
    };
    let p = plan(&keep, &ours(4), &cx(), forced).unwrap();
    assert_eq!(
        p.writes
            .iter()
            .filter(|w| w.ty == EventType::Deleted)
            .count(),
        3
    );
    assert_eq!(p.deletions_withheld, 0);
    // Exactly half is not more than half.
    let half = collected(vec![asset("1", "a"), asset("2", "a")]);
    let p = plan(&half, &ours(4), &cx(), GUARD).unwrap();
    assert_eq!(p.writes.len(), 2);
    // A single deletion always passes, even of a scope's only asset.
    let p = plan(&collected(vec![]), &ours(1), &cx(), GUARD).unwrap();
    assert_eq!(p.writes.len(), 1);
}

#[test]
fn an_incomplete_listing_withholds_every_deletion() {
    let mut listing = collected(vec![asset("1", "a"), asset("9", "new")]);
    listing.complete = false;
    listing.error = Some("page 3 failed: HTTP 503".into());
    let p = plan(&listing, &ours(3), &cx(), GUARD).unwrap();
    assert_eq!(p.writes.len(), 1, "the discovery is still published");
    assert_eq!(p.deletions_withheld, 2);
    assert_eq!(
        p.notes,
        vec!["incomplete sweep: page 3 failed: HTTP 503; 2 deletion(s) withheld"]
    );
}

#[test]
fn listings_a_source_cannot_publish_are_refused() {
    let dup = collected(vec![asset("1", "a"), asset("1", "b")]);
    let err = plan(&dup, &HashMap::new(), &cx(), GUARD).unwrap_err();
    assert_eq!(err.to_string(), "the source reported aws/account/1 twice");

    let narrow = Context {
        filter: "inventory.asset.prometheus.endpoint.*",
        ..cx()
    };
    let err = plan(
        &collected(vec![asset("1", "a")]),
        &HashMap::new(),
        &narrow,
        GUARD,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("outside its subject filter"),
        "{err}"
    );

    let mut bad = asset("1", "a");
    bad.provider = "AWS".into();
    let err = plan(&collected(vec![bad]), &HashMap::new(), &cx(), GUARD).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("asset 0 of the listing (AWS/account/1): invalid asset key"),
        "{err}"
    );
}
