//! The web console through `TestClient`: shells, data fragments over the service layer, their
//! parameters, exports, static files and tokens; the API's routes unchanged beside it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::Duration as Age;
use common::{asset, json, Fixture};
use inventory_query_api::{Role, TokenSet};
use inventory_schemas::{AssetStatus, SweepStatus};
use poem::test::TestClient;
use serde_json::Value;

/// a1 discovered (1), a2 discovered (2), a1 renamed and labelled (3), a2 deleted (4),
/// p1 discovered (5), a1 suspended (6); one fresh and one stale sweep (7, 8).
fn estate() -> Fixture {
    let mut f = Fixture::new();
    let mut a1 = asset("aws", "account", "111", "one", AssetStatus::Active);
    let a2 = asset("aws", "account", "222", "two", AssetStatus::Active);
    let p1 = asset("gcp", "project", "p-1", "proj", AssetStatus::Active);
    f.put(&a1);
    f.put(&a2);
    a1.name = "one-renamed".into();
    a1.labels.insert("owner".into(), "team-a".into());
    f.put(&a1);
    f.delete(&a2);
    f.put(&p1);
    a1.status = AssetStatus::Suspended;
    f.put(&a1);
    f.sweep("aws", "o-fresh", SweepStatus::Ok, Age::seconds(5));
    f.sweep("gcp", "o-stale", SweepStatus::Failed, Age::days(3));
    f
}

async fn html(client: &TestClient<impl poem::Endpoint>, path: &str) -> (u16, String) {
    let resp = client.get(path).send().await;
    let status = resp.0.status().as_u16();
    (status, resp.0.into_body().into_string().await.unwrap())
}

async fn ok(client: &TestClient<impl poem::Endpoint>, path: &str) -> String {
    let (status, body) = html(client, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test]
async fn the_shell_holds_no_data_and_a_strict_policy() {
    let f = estate();
    let c = f.client();
    let resp = c.get("/").send().await;
    resp.assert_status_is_ok();
    let csp = resp.0.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let body = resp.0.into_body().into_string().await.unwrap();
    assert!(body.contains("data-fragment=\"/ui/f/inventory\""), "{body}");
    assert!(!body.contains("one-renamed"), "the shell carries no data");
    assert!(!body.contains("<script>"), "no inline script");
    for page in [
        "/ui/diff",
        "/ui/changes",
        "/ui/live",
        "/ui/collectors",
        "/ui/asset?key=aws/account/111",
    ] {
        let body = ok(&c, page).await;
        assert!(
            body.contains("id=\"as_of\""),
            "{page} has the as-of control"
        );
    }
    // The shell keeps the URL's parameters for the as-of form, escaped.
    let body = ok(&c, "/?provider=aws&q=%3Cb%3E").await;
    assert!(body.contains("name=\"provider\" value=\"aws\""), "{body}");
    assert!(body.contains("value=\"&lt;b&gt;\""), "{body}");
    assert!(!body.contains("<b>"));
}

#[tokio::test]
async fn static_files_are_embedded_and_cached_by_content() {
    let f = Fixture::new();
    let c = f.client();
    let shell = ok(&c, "/").await;
    let href = shell
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(href.starts_with("/ui/static/console.js?v="), "{href}");
    let resp = c.get(&href).send().await;
    resp.assert_status_is_ok();
    let h = resp.0.headers().clone();
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(href.ends_with(etag.trim_matches('"')), "{href} {etag}");
    let again = c
        .get("/ui/static/console.css")
        .header("if-none-match", "\"nope\"")
        .send()
        .await;
    again.assert_status_is_ok();
    let etag = again.0.headers()["etag"].to_str().unwrap().to_owned();
    let cached = c
        .get("/ui/static/console.css")
        .header("if-none-match", &etag)
        .send()
        .await;
    cached.assert_status(poem::http::StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn search_facets_paging_and_as_of_narrow_the_inventory() {
    let f = estate();
    let c = f.client();
    let all = ok(&c, "/ui/f/inventory").await;
    assert!(all.contains("one-renamed") && all.contains("proj"), "{all}");
    assert!(
        !all.contains(">two<"),
        "deleted assets are hidden by default"
    );
    assert!(all.contains("id=\"total\">2<"), "{all}");
    // Facets count the whole query.
    assert!(
        all.contains(
            "data-facet=\"provider\" data-value=\"aws\">aws (<span class=\"count\">1</span>)"
        ),
        "{all}"
    );
    assert!(
        all.contains("data-value=\"suspended\">suspended (<span class=\"count\">1</span>)"),
        "{all}"
    );
    // A facet narrows the list.
    let gcp = ok(&c, "/ui/f/inventory?provider=gcp").await;
    assert!(
        gcp.contains("proj") && !gcp.contains("one-renamed"),
        "{gcp}"
    );
    // Search by name, and by key.
    let named = ok(&c, "/ui/f/inventory?q=RENAMED").await;
    assert!(
        named.contains("one-renamed") && !named.contains(">proj<"),
        "{named}"
    );
    let by_key = ok(&c, "/ui/f/inventory?q=gcp/project/p-1").await;
    assert!(by_key.contains("Exact key match"), "{by_key}");
    // Deleted ones on request.
    let with_deleted = ok(&c, "/ui/f/inventory?include_deleted=true").await;
    assert!(with_deleted.contains(">two<"), "{with_deleted}");
    // As of seq 3 (before the deletion) the deleted asset is back, with its name then.
    let before = ok(&c, "/ui/f/inventory?as_of=seq:3").await;
    assert!(
        before.contains(">two<") && before.contains("one-renamed"),
        "{before}"
    );
    assert!(before.contains("data-as-of-seq=\"3\""), "{before}");
    assert!(!before.contains(">proj<"), "{before}");
    // Keyset paging: one per page, the cursor leads to the next.
    let first = ok(&c, "/ui/f/inventory?limit=1").await;
    assert!(first.contains("one-renamed") && !first.contains(">proj<"));
    let next = first
        .split("id=\"next-page\" rel=\"next\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let second = ok(&c, &format!("/ui/f{}", next.replacen('/', "/inventory", 1))).await;
    assert!(
        second.contains(">proj<") && !second.contains("one-renamed"),
        "{second}"
    );
    // The equivalent API call names the same query.
    assert!(
        gcp.contains("/api/v1/assets?provider=gcp&amp;limit=100"),
        "{gcp}"
    );
}

#[tokio::test]
async fn refused_parameters_read_like_the_apis() {
    let f = estate();
    let c = f.client();
    let (status, body) = html(&c, "/ui/f/inventory?provider=AWS").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("role=\"alert\"") && body.contains("provider must be"),
        "{body}"
    );
    let (status, body) = html(&c, "/ui/f/inventory?as_of=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<code>as_of</code>"), "{body}");
    let (status, body) = html(&c, "/ui/f/inventory?as_of=seq:99").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = html(&c, "/ui/f/asset?key=nope").await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = html(&c, "/ui/f/asset?key=aws/account/999").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = html(&c, "/ui/f/asset?key=aws/account/111&a=1&b=5").await;
    assert_eq!(status, 400, "seq 5 is not a version of this asset");
}

#[tokio::test]
async fn the_asset_page_shows_its_timeline_and_the_diff_of_two_versions() {
    let f = estate();
    let c = f.client();
    let page = ok(&c, "/ui/f/asset?key=aws/account/111").await;
    for seq in [1, 3, 6] {
        assert!(page.contains(&format!("<tr data-seq=\"{seq}\">")), "{page}");
    }
    assert!(
        page.contains("r-root") && page.contains("ou-prod"),
        "breadcrumb: {page}"
    );
    assert!(page.contains("team-a"), "labels: {page}");
    assert!(page.contains("id=\"chain-status\" class=\"ok\""), "{page}");
    assert!(
        page.contains("href=\"/?as_of=seq:3\""),
        "estate at this event: {page}"
    );
    let diff = ok(&c, "/ui/f/asset?key=aws/account/111&a=1&b=3").await;
    assert!(diff.contains("id=\"version-diff\""), "{diff}");
    assert!(diff.contains("data-path=\"/name\""), "{diff}");
    assert!(diff.contains("data-path=\"/labels/owner\""), "{diff}");
    assert!(
        diff.contains("&quot;one&quot;") && diff.contains("&quot;one-renamed&quot;"),
        "{diff}"
    );
    // As of seq 2 the asset had its first name and one version.
    let then = ok(&c, "/ui/f/asset?key=aws/account/111&as_of=seq:2").await;
    assert!(then.contains("<h1>one "), "{then}");
    assert!(!then.contains("<tr data-seq=\"3\">"), "{then}");
}

#[tokio::test]
async fn estate_diff_totals_are_the_apis() {
    let f = estate();
    let c = f.client();
    let (_, _, api) = json(c.get("/api/v1/diff?from=seq:2&to=seq:6").send().await).await;
    let page = ok(&c, "/ui/f/diff?from=seq:2&to=seq:6").await;
    for (id, field) in [
        ("diff-added", "added"),
        ("diff-removed", "removed"),
        ("diff-changed", "changed"),
    ] {
        let n = api["counts"][field].as_u64().unwrap();
        assert!(
            page.contains(&format!("id=\"{id}\">{n}<")),
            "{field}={n}: {page}"
        );
    }
    assert!(page.contains("data-change=\"removed\"") && page.contains("data-change=\"added\""));
    assert!(page.contains("replace /status"), "per-asset patch: {page}");
    // `to` defaults to the global as of.
    let as_of = ok(&c, "/ui/f/diff?from=seq:2&as_of=seq:3").await;
    assert!(as_of.contains("to seq 3"), "{as_of}");
    // Without `from`, the form alone.
    let form = ok(&c, "/ui/f/diff").await;
    assert!(form.contains("id=\"from\""));
}

#[tokio::test]
async fn collectors_changes_chart_and_exports() {
    let f = estate();
    let c = f.client();
    let page = ok(&c, "/ui/f/collectors").await;
    assert!(
        page.contains("class=\"stale\" data-source=\"/collectors/gcp/o-stale\""),
        "{page}"
    );
    assert!(
        !page.contains("class=\"stale\" data-source=\"/collectors/aws/o-fresh\""),
        "{page}"
    );
    let chart = ok(&c, "/ui/f/changes").await;
    assert!(
        chart.contains("data-provider=\"aws\"") && chart.contains("<svg"),
        "{chart}"
    );
    let csv = ok(&c, "/ui/export.csv?include_deleted=true").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("key,provider,kind"));
    assert!(lines[1].starts_with("aws/account/111,aws,account,111,one-renamed,suspended"));
    let (_, _, exported) = json(c.get("/ui/export.json?provider=gcp").send().await).await;
    assert_eq!(exported.as_array().unwrap().len(), 1);
    assert_eq!(exported[0]["key"], "gcp/project/p-1");
}

#[tokio::test]
async fn with_viewer_tokens_no_data_without_one() {
    let f = estate();
    let state = f.state(TokenSet::from_tokens(&[(Role::Viewer, "viewer-secret")]));
    let c = TestClient::new(inventory_query_api::app(state));
    // The shell loads (it holds no data) and can ask for the token.
    let shell = ok(&c, "/").await;
    assert!(shell.contains("id=\"token-form\""));
    for path in [
        "/ui/f/inventory",
        "/ui/f/asset?key=aws/account/111",
        "/ui/f/diff?from=seq:1",
        "/ui/f/changes",
        "/ui/f/collectors",
        "/ui/export.csv",
        "/ui/export.json",
    ] {
        let (status, body) = html(&c, path).await;
        assert_eq!(status, 401, "{path}");
        assert!(
            !body.contains("one-renamed") && !body.contains("o-stale"),
            "{path}: {body}"
        );
        let resp = c
            .get(path)
            .header("authorization", "Bearer wrong")
            .send()
            .await;
        resp.assert_status(poem::http::StatusCode::UNAUTHORIZED);
        let resp = c
            .get(path)
            .header("authorization", "Bearer viewer-secret")
            .send()
            .await;
        resp.assert_status_is_ok();
    }
    let (status, body) = html(&c, "/ui/f/inventory").await;
    assert_eq!(status, 401);
    assert!(body.contains("data-auth-required"), "{body}");
}

#[tokio::test]
async fn the_api_routes_are_unchanged_beside_the_console() {
    let f = estate();
    let c = f.client();
    for path in [
        "/api/v1/assets",
        "/healthz",
        "/openapi.json",
        "/api/v1/collectors",
    ] {
        c.get(path).send().await.assert_status_is_ok();
    }
    let (status, _, problem) = json(c.get("/api/v1/nothing").send().await).await;
    assert_eq!(status, 404, "{problem}");
    let resp = c.post("/").send().await;
    resp.assert_status(poem::http::StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.0.headers()["allow"], "GET");
    let (status, _) = html(&c, "/ui/nothing").await;
    assert_eq!(status, 404);
    // Console routes have bounded metric labels.
    ok(&c, "/ui/f/inventory?provider=aws").await;
    ok(&c, "/ui/asset?key=aws/account/111").await;
    let metrics = ok(&c, "/metrics").await;
    assert!(metrics.contains("route=\"/ui/f/inventory\""), "{metrics}");
    assert!(metrics.contains("route=\"/ui/asset\""), "{metrics}");
    assert!(!metrics.contains("aws/account/111"));
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Six accounts over two org units, labelled by team and owner; one deleted.
fn labelled_estate() -> Fixture {
    let mut f = Fixture::new();
    for (id, ou, team, owner) in [
        ("100000000001", "ou-prod", "payments", "ana"),
        ("100000000002", "ou-prod", "payments", "bo"),
        ("100000000003", "ou-prod", "search", "ana"),
        ("100000000004", "ou-production", "payments", "cy"),
        ("100000000005", "ou-dev", "search", "bo"),
        ("100000000006", "ou-dev", "payments", "bo"),
    ] {
        let mut a = asset(
            "aws",
            "account",
            id,
            &format!("acct-{id}"),
            AssetStatus::Active,
        );
        a.org_path = vec!["o-root".into(), ou.into()];
        a.labels = [
            ("team".to_owned(), team.to_owned()),
            ("owner".to_owned(), owner.to_owned()),
        ]
        .into();
        f.put(&a);
        if id == "100000000006" {
            f.delete(&a);
        }
    }
    f
}

fn facet<'a>(facets: &'a Value, name: &str) -> Vec<(&'a str, u64)> {
    let list = facets[name]["values"].as_array().unwrap_or_else(|| {
        facets[name]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {facets}"))
    });
    list.iter()
        .map(|v| (v["value"].as_str().unwrap(), v["count"].as_u64().unwrap()))
        .collect()
}

async fn listed(c: &TestClient<impl poem::Endpoint>, query: &str) -> Vec<String> {
    let (status, _, body) = json(
        c.get(format!("/api/v1/assets?limit=1000&{query}"))
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 200, "{query}: {body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn label_and_org_path_facets_count_what_the_listing_lists() {
    let f = labelled_estate();
    let c = f.client();
    for filter in [
        "",
        "label=owner:bo",
        "org_path=o-root/ou-prod",
        "provider=aws&label=team:payments",
    ] {
        let (status, _, facets) = json(
            c.get(format!("/api/v1/assets/facets?{filter}"))
                .send()
                .await,
        )
        .await;
        assert_eq!(status, 200, "{filter}: {facets}");
        let total = facets["total"].as_u64().unwrap();
        assert_eq!(total, listed(&c, filter).await.len() as u64, "{filter}");
        // Each label and org path count is the length of the listing filtered on it too.
        for (name, param) in [("labels", "label"), ("org_path", "org_path")] {
            if filter.contains(param) {
                continue; // one label and one org path per query
            }
            for (value, count) in facet(&facets, name) {
                let narrowed = format!("{filter}&{param}={value}");
                assert_eq!(
                    listed(&c, &narrowed).await.len() as u64,
                    count,
                    "{narrowed}"
                );
            }
        }
    }
    let (_, _, all) = json(c.get("/api/v1/assets/facets").send().await).await;
    assert_eq!(all["total"], 5, "the deleted one is not counted: {all}");
    assert_eq!(
        facet(&all, "labels"),
        [
            ("team:payments", 3),
            ("owner:ana", 2),
            ("owner:bo", 2),
            ("team:search", 2),
            ("owner:cy", 1),
        ]
    );
    assert_eq!(
        facet(&all, "org_path"),
        [
            ("o-root", 5),
            ("o-root/ou-prod", 3),
            ("o-root/ou-dev", 1),
            ("o-root/ou-production", 1)
        ]
    );
    // An org path prefix is whole segments: ou-prod is not ou-production.
    assert_eq!(
        listed(&c, "org_path=o-root/ou-prod/").await,
        [
            "aws/account/100000000001",
            "aws/account/100000000002",
            "aws/account/100000000003"
        ]
    );
    assert_eq!(
        listed(&c, "label=team:payments&org_path=o-root/ou-prod").await,
        ["aws/account/100000000001", "aws/account/100000000002"]
    );
    // Past views count labels and org paths as the assets stood then.
    let (status, _, past) = json(c.get("/api/v1/assets/facets?as_of=seq:3").send().await).await;
    assert_eq!(status, 200, "{past}");
    assert_eq!(
        facet(&past, "labels"),
        [
            ("owner:ana", 2),
            ("team:payments", 2),
            ("owner:bo", 1),
            ("team:search", 1)
        ]
    );
    assert_eq!(
        facet(&past, "org_path"),
        [("o-root", 3), ("o-root/ou-prod", 3)]
    );
    assert_eq!(
        (past["total"].as_u64(), past["as_of_seq"].as_u64()),
        (Some(3), Some(3))
    );
    let refused = common::problem(c.get("/api/v1/assets?label=team").send().await, 400).await;
    assert_eq!(refused["parameter"], "label", "{refused}");
    // The console's label facet narrows the list.
    let page = ok(&c, "/ui/f/inventory").await;
    assert!(
        page.contains("data-facet=\"label\" data-value=\"team:search\">team:search (<span class=\"count\">2</span>)"),
        "{page}"
    );
    let search = ok(&c, "/ui/f/inventory?label=team:search").await;
    assert!(search.contains("id=\"total\">2<"), "{search}");
    assert!(!search.contains("acct-100000000001"), "{search}");
    let past = ok(&c, "/ui/f/inventory?as_of=seq:3").await;
    assert!(!past.contains("id=\"tags-note\""), "{past}");
    assert!(
        past.contains("data-facet=\"label\" data-value=\"team:search\">team:search (<span class=\"count\">1</span>)"),
        "{past}"
    );
}

#[tokio::test]
async fn past_views_filter_on_the_labels_and_org_path_of_then() {
    let mut f = labelled_estate();
    let mut two = asset(
        "aws",
        "account",
        "100000000002",
        "acct-100000000002",
        AssetStatus::Active,
    );
    two.org_path = vec!["o-root".into(), "ou-dev".into()];
    two.labels = [("team".to_owned(), "search".to_owned())].into();
    let moved = f.put(&two);
    let c = f.client();
    let before = format!("as_of=seq:{}", moved - 1);
    assert_eq!(
        listed(
            &c,
            &format!("label=team:payments&org_path=o-root/ou-prod&{before}")
        )
        .await,
        ["aws/account/100000000001", "aws/account/100000000002"]
    );
    assert_eq!(
        listed(&c, "label=team:payments&org_path=o-root/ou-prod").await,
        ["aws/account/100000000001"]
    );
    assert_eq!(
        listed(&c, &format!("label=team:payments&{before}")).await,
        [
            "aws/account/100000000001",
            "aws/account/100000000002",
            "aws/account/100000000004"
        ]
    );
    // A page of one skips the candidates whose document then does not match.
    let (_, _, page) = json(
        c.get(format!("/api/v1/assets?label=team:search&{before}&limit=1&cursor=YXdzL2FjY291bnQvMTAwMDAwMDAwMDAx"))
            .send()
            .await,
    )
    .await;
    // (002's version then is read from its record: team:payments, skipped.)
    assert_eq!(
        page["items"][0]["key"], "aws/account/100000000003",
        "{page}"
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    let (_, _, past) = json(
        c.get(format!(
            "/api/v1/assets/facets?label=team:payments&{before}"
        ))
        .send()
        .await,
    )
    .await;
    assert_eq!(past["total"], 3, "{past}");
    // The labels of then: 002 still carried team:payments and owner:bo (its record is read),
    // 001 and 004 unchanged since (from memory).
    assert_eq!(
        facet(&past, "labels"),
        [
            ("team:payments", 3),
            ("owner:ana", 1),
            ("owner:bo", 1),
            ("owner:cy", 1)
        ]
    );
    let (_, _, now) = json(
        c.get("/api/v1/assets/facets?label=team:payments")
            .send()
            .await,
    )
    .await;
    assert_eq!(now["total"], 2, "{now}");
}

#[tokio::test]
async fn search_finds_a_bare_native_id() {
    let f = labelled_estate();
    let c = f.client();
    assert_eq!(
        listed(&c, "name=100000000003").await,
        ["aws/account/100000000003"]
    );
    assert_eq!(
        listed(&c, "name=AWS/account/100000000004").await,
        ["aws/account/100000000004"]
    );
    // A part of an id is not an id (the name still matches substrings).
    assert_eq!(
        listed(&c, "name=0000000003").await,
        ["aws/account/100000000003"]
    );
    assert!(listed(&c, "name=00000003x").await.is_empty());
    // As of a past point too.
    assert_eq!(
        listed(&c, "name=100000000001&as_of=seq:1").await,
        ["aws/account/100000000001"]
    );
    let page = ok(&c, "/ui/f/inventory?q=100000000005").await;
    assert!(
        page.contains("id=\"total\">1<") && page.contains("acct-100000000005"),
        "{page}"
    );
}

#[tokio::test]
async fn the_asset_page_verifies_the_chain_and_names_a_forged_link() {
    let mut f = labelled_estate();
    let mut a = asset(
        "aws",
        "account",
        "100000000001",
        "renamed",
        AssetStatus::Active,
    );
    a.org_path = vec!["o-root".into(), "ou-prod".into()];
    let good = f.put(&a);
    let c = f.client();
    let page = ok(&c, "/ui/f/asset?key=aws/account/100000000001").await;
    assert!(page.contains("id=\"chain-status\" class=\"ok\""), "{page}");
    assert!(page.contains("verified over 2 versions"), "{page}");
    assert!(page.contains("inventory verify --checkpoints"), "{page}");
    a.name = "forged".into();
    let forged = f.put_forged_link(&a);
    let c = f.client();
    let page = ok(&c, "/ui/f/asset?key=aws/account/100000000001").await;
    assert!(page.contains("id=\"chain-status\" class=\"bad\""), "{page}");
    assert!(page.contains(&format!("broken at seq {forged}")), "{page}");
    // The version before the forged one still verifies.
    let then = ok(
        &c,
        &format!("/ui/f/asset?key=aws/account/100000000001&as_of=seq:{good}"),
    )
    .await;
    assert!(then.contains("class=\"ok\""), "{then}");
}

#[tokio::test]
async fn the_asset_page_says_which_versions_the_verified_checkpoint_covers() {
    use inventory_query_api::integrity::CheckpointDoc;
    use inventory_query_api::{Integrity, IntegrityState};

    let f = estate();
    // a1 has versions at seq 1, 3 and 6.
    let page_with = |i: Integrity| {
        let (_tx, rx) = tokio::sync::watch::channel(i);
        let state = f.state(TokenSet::default()).with_integrity(rx);
        TestClient::new(inventory_query_api::app(state))
    };

    // No key: nothing is claimed, the page points to the setting.
    let c = f.client();
    let page = ok(&c, "/ui/f/asset?key=aws/account/111").await;
    assert!(
        page.contains("id=\"checkpoint-status\" class=\"unknown\""),
        "{page}"
    );
    assert!(page.contains("no verifier key is configured"), "{page}");
    assert!(page.contains("INVENTORY_VERIFIER_KEY"), "{page}");
    assert!(!page.contains("verified."), "{page}");
    assert!(page.contains(">not checked<"), "{page}");
    let body = json(c.get("/api/v1/integrity").send().await).await.2;
    assert_eq!(body["state"], "no_key", "{body}");

    // Verified up to seq 4: two of a1's three versions are covered.
    let cp = CheckpointDoc {
        evidence_seq: 2,
        origin: "asset-inventory/INVENTORY".into(),
        size: 4,
        root: "ab".repeat(32),
        signers: vec!["asset-inventory/INVENTORY+0badcafe".into()],
    };
    let mut verified = Integrity::initial(&[]);
    verified.state = IntegrityState::Verified;
    verified.reason = None;
    verified.keys = vec!["asset-inventory/INVENTORY+0badcafe".into()];
    verified.checkpoint = Some(cp.clone());
    verified.verified = Some(cp.clone());
    verified.verified_at = Some(chrono::Utc::now());
    let c = page_with(verified.clone());
    let page = ok(&c, "/ui/f/asset?key=aws/account/111").await;
    assert!(
        page.contains("id=\"checkpoint-status\" class=\"ok\""),
        "{page}"
    );
    assert!(page.contains("Signed checkpoints: verified."), "{page}");
    assert!(
        page.contains("Of the 3 versions shown, 2 are covered by it (seq ≤ 4)"),
        "{page}"
    );
    assert_eq!(page.matches(">covered<").count(), 2, "{page}");
    assert_eq!(page.matches(">not yet<").count(), 1, "{page}");
    let page = ok(&c, "/ui/f/collectors").await;
    assert!(
        page.contains("id=\"integrity-status\" class=\"ok\""),
        "{page}"
    );
    let (status, _, body) = json(c.get("/api/v1/integrity").send().await).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "verified");
    assert_eq!(body["verified"]["size"], 4);

    // The newest checkpoint failed: said so, with the reason; the older one still covers.
    let mut failed = verified;
    failed.state = IntegrityState::Failed;
    failed.reason = Some("root mismatch: the stream differs".into());
    failed.checkpoint = Some(CheckpointDoc { size: 6, ..cp });
    let c = page_with(failed);
    let page = ok(&c, "/ui/f/asset?key=aws/account/111").await;
    assert!(
        page.contains("id=\"checkpoint-status\" class=\"bad\""),
        "{page}"
    );
    assert!(
        page.contains("did NOT verify: root mismatch: the stream differs"),
        "{page}"
    );
    assert!(page.contains("covers seq 1..4"), "{page}");

    // The route is read like the others: a token where tokens are configured.
    let state = f.state(TokenSet::from_tokens(&[(Role::Viewer, "viewer-secret")]));
    let c = TestClient::new(inventory_query_api::app(state));
    let resp = c.get("/api/v1/integrity").send().await;
    let problem = common::problem(resp, 401).await;
    assert_eq!(problem["status"], 401, "{problem}");
}

#[tokio::test]
async fn several_label_filters_must_all_hold_in_the_listing_the_facets_and_the_console() {
    let f = labelled_estate();
    let c = f.client();
    let both = "label=team:payments&label=owner:ana";
    assert_eq!(listed(&c, both).await, ["aws/account/100000000001"]);
    assert_eq!(
        listed(&c, "label=team:payments&label=owner:bo").await,
        ["aws/account/100000000002"]
    );
    assert!(listed(&c, "label=team:search&label=team:payments")
        .await
        .is_empty());
    // An empty value (a form's unset field) is no filter.
    assert_eq!(listed(&c, "label=&label=owner:cy").await.len(), 1);
    // As of a past point too: before 100000000003 was written only one payments/ana account.
    assert_eq!(
        listed(&c, &format!("{both}&as_of=seq:3")).await,
        ["aws/account/100000000001"]
    );

    let (status, _, facets) =
        json(c.get(format!("/api/v1/assets/facets?{both}")).send().await).await;
    assert_eq!(status, 200, "{facets}");
    assert_eq!(facets["total"], 1, "{facets}");
    assert_eq!(
        facet(&facets, "labels"),
        [("owner:ana", 1), ("team:payments", 1)]
    );

    // At most 16: beyond, 400 naming the parameter, on both routes and the console.
    let many: String = (0..17)
        .map(|i| format!("label=k{i}:v"))
        .collect::<Vec<_>>()
        .join("&");
    for path in [
        format!("/api/v1/assets?{many}"),
        format!("/api/v1/assets/facets?{many}"),
    ] {
        let p = common::problem(c.get(&path).send().await, 400).await;
        assert_eq!(p["parameter"], "label", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("at most 16"), "{p}");
    }
    let sixteen: String = (0..16)
        .map(|i| format!("label=k{i}:v"))
        .collect::<Vec<_>>()
        .join("&");
    assert!(listed(&c, &sixteen).await.is_empty());
    let (status, page) = html(&c, &format!("/ui/f/inventory?{many}")).await;
    assert_eq!(status, 400, "{page}");

    // The console: both filters apply, the label facet adds a label and removes only its own.
    let page = ok(&c, &format!("/ui/f/inventory?{both}")).await;
    assert!(page.contains("id=\"total\">1<"), "{page}");
    assert!(
        page.contains("href=\"/?label=owner%3Aana\" aria-current=\"true\""),
        "removing team:payments keeps owner:ana: {page}"
    );
    let page = ok(&c, "/ui/f/inventory?label=team:payments").await;
    assert!(
        page.contains("href=\"/?label=team%3Apayments&amp;label=owner%3Aana\""),
        "picking owner:ana adds it: {page}"
    );
}
