//! `as_of`, history, changes and diff through `TestClient`, over a real DuckDB store filled with
//! real encoded events.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::{asset, json, keys, problem, Fixture};
use inventory_schemas::AssetStatus;
use serde_json::Value;

async fn get(f: &Fixture, path: &str) -> Value {
    let (status, _, body) = json(f.client().get(path).send().await).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn ops(change: &Value) -> Vec<(String, String)> {
    change["patch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["op"].as_str().unwrap().to_owned(),
                o["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// a1 discovered (1), a2 discovered (2), a1 renamed (3), a2 deleted (4), p1 discovered (5),
/// a1 suspended (6), a2 rediscovered (7).
fn estate() -> (Fixture, Vec<chrono::DateTime<Utc>>) {
    let mut f = Fixture::new();
    let mut a1 = asset("aws", "account", "111", "one", AssetStatus::Active);
    let a2 = asset("aws", "account", "222", "two", AssetStatus::Active);
    let p1 = asset("gcp", "project", "p-1", "proj", AssetStatus::Active);
    let mut after = Vec::new();
    let mut step = |f: &mut Fixture, what: &dyn Fn(&mut Fixture) -> u64| {
        what(f);
        std::thread::sleep(Duration::from_millis(15));
        after.push(Utc::now());
        std::thread::sleep(Duration::from_millis(15));
    };
    step(&mut f, &|f| f.put(&a1));
    step(&mut f, &|f| f.put(&a2));
    a1.name = "one-renamed".into();
    a1.labels.insert("owner".into(), "team-a".into());
    let a1b = a1.clone();
    step(&mut f, &|f| f.put(&a1b));
    step(&mut f, &|f| f.delete(&a2));
    step(&mut f, &|f| f.put(&p1));
    a1.status = AssetStatus::Suspended;
    let a1c = a1.clone();
    step(&mut f, &|f| f.put(&a1c));
    step(&mut f, &|f| f.put(&a2));
    (f, after)
}

#[tokio::test]
async fn as_of_shows_the_estate_as_it_stood() {
    let (f, after) = estate();
    let want: [&[&str]; 7] = [
        &["aws/account/111"],
        &["aws/account/111", "aws/account/222"],
        &["aws/account/111", "aws/account/222"],
        &["aws/account/111"],
        &["aws/account/111", "gcp/project/p-1"],
        &["aws/account/111", "gcp/project/p-1"],
        &["aws/account/111", "aws/account/222", "gcp/project/p-1"],
    ];
    for (i, keys_then) in want.iter().enumerate() {
        let seq = i + 1;
        let page = get(&f, &format!("/api/v1/assets?as_of=seq:{seq}")).await;
        assert_eq!(keys(&page), *keys_then, "as_of seq:{seq}");
        assert_eq!(page["as_of_seq"], seq);
        // The same point named by time.
        let t = after[i].to_rfc3339_opts(SecondsFormat::Micros, true);
        let page = get(&f, &format!("/api/v1/assets?as_of={}", urlencode(&t))).await;
        assert_eq!(keys(&page), *keys_then, "as_of {t}");
        assert_eq!(page["as_of_seq"], seq);
    }
    // Names, status and data are those of the time.
    let a1 = get(&f, "/api/v1/assets/aws/account/111?as_of=seq:2").await;
    assert_eq!(
        (a1["name"].as_str(), a1["status"].as_str()),
        (Some("one"), Some("active"))
    );
    assert_eq!(a1["version"], 1);
    assert!(a1["labels"].get("owner").is_none());
    let a1 = get(&f, "/api/v1/assets/aws/account/111?as_of=seq:6").await;
    assert_eq!(a1["status"], "suspended");
    assert_eq!(a1["labels"]["owner"], "team-a");
    // Filters apply to the past state; accounts and deleted ones too.
    let page = get(&f, "/api/v1/assets?as_of=seq:3&name=renamed").await;
    assert_eq!(keys(&page), ["aws/account/111"]);
    let page = get(&f, "/api/v1/accounts?provider=gcp&as_of=seq:4").await;
    assert!(keys(&page).is_empty());
    let page = get(&f, "/api/v1/assets?as_of=seq:4&include_deleted=true").await;
    assert_eq!(keys(&page), ["aws/account/111", "aws/account/222"]);
    assert!(page["items"][1]["deleted_at"].is_string());
    assert_eq!(
        page["items"][1]["name"], "two",
        "last known state of a deleted asset"
    );
    // Before anything: empty; a key unknown then: 404.
    let t0 = "2001-01-01T00:00:00Z";
    assert!(keys(&get(&f, &format!("/api/v1/assets?as_of={t0}")).await).is_empty());
    problem(
        f.client()
            .get("/api/v1/assets/gcp/project/p-1?as_of=seq:4")
            .send()
            .await,
        404,
    )
    .await;
    // The current view is the view at the newest sequence.
    let now = get(&f, "/api/v1/assets").await;
    let at_tip = get(&f, "/api/v1/assets?as_of=seq:7").await;
    assert_eq!(keys(&now), keys(&at_tip));
    assert!(now["as_of_seq"].is_null());
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn bad_points_are_refused_with_the_parameter_named() {
    let (f, _) = estate();
    for (path, param) in [
        ("/api/v1/assets?as_of=yesterday", "as_of"),
        ("/api/v1/assets?as_of=seq:x", "as_of"),
        ("/api/v1/monitoring?as_of=2026-13-01T00:00:00Z", "as_of"),
        ("/api/v1/assets/aws/account/111?as_of=seq:-1", "as_of"),
        ("/api/v1/changes?since=soon", "since"),
        ("/api/v1/changes?type=renamed", "type"),
        ("/api/v1/changes?cursor=abc", "cursor"),
        ("/api/v1/diff?to=seq:2", "from"),
        ("/api/v1/diff?from=seq:1", "to"),
        ("/api/v1/assets/not-a-key/history", "key"),
    ] {
        let body = problem(f.client().get(path).send().await, 400).await;
        assert_eq!(body["parameter"], param, "{path}: {body}");
    }
    // Well-formed points beyond the newest event the read model holds: no such view (yet).
    for (path, param) in [
        ("/api/v1/assets?as_of=seq:99", "as_of"),
        ("/api/v1/changes?until=seq:100", "until"),
        ("/api/v1/diff?from=seq:1&to=seq:500", "to"),
    ] {
        let body = problem(f.client().get(path).send().await, 404).await;
        assert_eq!(body["parameter"], param, "{path}: {body}");
    }
    problem(
        f.client()
            .get("/api/v1/assets/aws/account/999/history")
            .send()
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn history_is_newest_first_with_patches_and_provenance() {
    let (f, _) = estate();
    let h = get(&f, "/api/v1/assets/aws/account/111/history").await;
    let items = h["items"].as_array().unwrap();
    let seqs: Vec<u64> = items.iter().map(|i| i["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [6, 3, 1]);
    assert_eq!(items[2]["type"], "discovered");
    assert!(
        items[2]["patch"].is_null(),
        "nothing before the first version"
    );
    let mut renamed = ops(&items[1]);
    renamed.sort();
    assert_eq!(
        renamed,
        [
            ("add".to_owned(), "/labels/owner".to_owned()),
            ("replace".to_owned(), "/name".to_owned())
        ],
        "{}",
        items[1]["patch"]
    );
    assert_eq!(
        ops(&items[0]),
        [("replace".to_owned(), "/status".to_owned())]
    );
    assert_eq!(items[0]["provenance"]["collector"], "aws");
    assert_eq!(items[0]["prevseq"], 3);
    assert_eq!(items[0]["data"]["status"], "suspended");
    // Paged.
    let p1 = get(&f, "/api/v1/assets/aws/account/111/history?limit=2").await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2 = get(
        &f,
        &format!("/api/v1/assets/aws%2Faccount%2F111/history?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(p2["items"][0]["seq"], 1);
    assert!(p2["next_cursor"].is_null());
    // A deleted and rediscovered asset: the tombstone has no patch, the rediscovery has one
    // against the last state before the tombstone (here: empty, same content).
    let h = get(&f, "/api/v1/assets/aws/account/222/history").await;
    let types: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].as_str().unwrap())
        .collect();
    // (The fixture writes a rediscovery as `changed`, linked to the tombstone.)
    assert_eq!(types, ["changed", "deleted", "discovered"]);
    assert!(h["items"][1]["patch"].is_null());
    assert_eq!(h["items"][0]["patch"], serde_json::json!([]));
}

#[tokio::test]
async fn changes_are_windowed_filtered_and_paged_by_sequence() {
    let (f, after) = estate();
    let all = get(&f, "/api/v1/changes").await;
    let seqs = |v: &Value| -> Vec<u64> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        seqs(&get(&f, "/api/v1/changes?since=seq:2&until=seq:5").await),
        [3, 4, 5]
    );
    let t = urlencode(&after[3].to_rfc3339_opts(SecondsFormat::Micros, true));
    assert_eq!(
        seqs(&get(&f, &format!("/api/v1/changes?since={t}")).await),
        [5, 6, 7]
    );
    assert_eq!(seqs(&get(&f, "/api/v1/changes?type=deleted").await), [4]);
    assert_eq!(seqs(&get(&f, "/api/v1/changes?provider=gcp").await), [5]);
    assert_eq!(
        seqs(&get(&f, "/api/v1/changes?kind=account&type=changed").await),
        [3, 6, 7]
    );
    let p1 = get(&f, "/api/v1/changes?limit=3").await;
    assert_eq!(seqs(&p1), [1, 2, 3]);
    let c = p1["next_cursor"].as_str().unwrap();
    let p2 = get(&f, &format!("/api/v1/changes?limit=3&cursor={c}")).await;
    assert_eq!(seqs(&p2), [4, 5, 6]);
}

#[tokio::test]
async fn diff_lists_added_removed_and_changed_with_totals() {
    let (f, _) = estate();
    let d = get(&f, "/api/v1/diff?from=seq:2&to=seq:6").await;
    assert_eq!(
        (d["from_seq"].as_u64(), d["to_seq"].as_u64()),
        (Some(2), Some(6))
    );
    assert_eq!(
        d["counts"],
        serde_json::json!({"added": 1, "removed": 1, "changed": 1})
    );
    let items = d["items"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), i["change"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("aws/account/111", "changed"),
            ("aws/account/222", "removed"),
            ("gcp/project/p-1", "added")
        ]
    );
    assert_eq!(items[0]["from"]["name"], "one");
    assert_eq!(items[0]["to"]["status"], "suspended");
    assert_eq!(ops(&items[0]).len(), 3, "{}", items[0]["patch"]);
    assert!(items[1]["to"].is_null() && items[2]["from"].is_null());
    // Filtered and paged; the totals stay those of the whole (filtered) diff.
    let d = get(&f, "/api/v1/diff?from=seq:2&to=seq:6&provider=aws&limit=1").await;
    assert_eq!(d["counts"]["added"], 0);
    assert_eq!(keys(&d), ["aws/account/111"]);
    let c = d["next_cursor"].as_str().unwrap();
    let d2 = get(
        &f,
        &format!("/api/v1/diff?from=seq:2&to=seq:6&provider=aws&limit=1&cursor={c}"),
    )
    .await;
    assert_eq!(keys(&d2), ["aws/account/222"]);
    // Identical points: nothing.
    let d = get(&f, "/api/v1/diff?from=seq:7&to=seq:7").await;
    assert!(d["items"].as_array().unwrap().is_empty());
}
