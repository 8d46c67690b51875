//! The `gcp` source against a local server that speaks Resource Manager v3's REST wire format
//! (`GET /v3/projects:search`, `GET /v3/folders/{id}`, Google's error documents), published
//! through a real `nats-server`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{all, asset_events, bus, since};
use inventory_producers::sources::{GcpConfig, GcpSource};
use inventory_producers::{run_sweep, Source, SourceErrorKind, SweepOptions};
use inventory_schemas::{AssetStatus, SweepStatus};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Response, Server};
use serde_json::{json, Value};

const TOKEN: &str = "ya29.test-4b1d9c7e2a_secret";

/// What the fake Resource Manager holds and what it was asked.
#[derive(Default)]
struct Fake {
    /// Projects as the API documents them (enums as names).
    projects: Vec<Value>,
    folders: HashMap<String, Value>,
    /// Folders the principal may not read (403).
    forbidden: HashSet<String>,
    /// Page number (1-based) answered once with 429 + `Retry-After: 1`.
    throttle_page: Option<usize>,
    /// Page number answered with 500 on every attempt.
    broken_page: Option<usize>,
    /// Folders answered with 503 on every attempt.
    broken_folders: HashSet<String>,
    /// Answer SearchProjects with 403 PERMISSION_DENIED.
    deny_search: bool,
    /// Every `$alt` asked for.
    alt: HashSet<String>,
    /// Every SearchProjects request: (page number, pageSize, pageToken, query).
    searches: Vec<(usize, String, String, String)>,
    /// GetFolder calls per folder name.
    folder_calls: HashMap<String, u32>,
    /// Requests without the right bearer token.
    refused: u32,
}

type Shared = Arc<Mutex<Fake>>;

fn google_error(code: u16, status: &str, message: &str, details: Value) -> Response {
    let mut error = json!({"code": code, "message": message, "status": status});
    if details != Value::Null {
        error["details"] = details;
    }
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .content_type("application/json; charset=UTF-8")
        .body(json!({ "error": error }).to_string())
}

fn ok_json(v: &Value) -> Response {
    Response::builder()
        .content_type("application/json; charset=UTF-8")
        .body(v.to_string())
}

/// With `$alt=json;enum-encoding=int` (what the official client asks for), the API answers enums
/// as numbers.
fn encode_enums(mut v: Value, int_enums: bool) -> Value {
    if int_enums {
        let n = match v["state"].as_str() {
            Some("ACTIVE") => 1,
            Some("DELETE_REQUESTED") => 2,
            _ => 0,
        };
        v["state"] = json!(n);
    }
    v
}

#[handler]
fn resource_manager(req: &Request, fake: Data<&Shared>) -> Response {
    let mut f = fake.lock().unwrap();
    if req.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        f.refused += 1;
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            Value::Null,
        );
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if let Some(alt) = query.get("$alt") {
        f.alt.insert(alt.clone());
    }
    let int_enums = query
        .get("$alt")
        .is_some_and(|a| a.contains("enum-encoding=int"));
    let path = req.uri().path();
    if path == "/v3/projects:search" {
        if f.deny_search {
            return google_error(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                Value::Null,
            );
        }
        let size: usize = query.get("pageSize").unwrap().parse().unwrap();
        let token = query.get("pageToken").cloned().unwrap_or_default();
        let page = if token.is_empty() {
            1
        } else {
            token.strip_prefix("CgZwYWdl").unwrap().parse().unwrap()
        };
        f.searches.push((
            page,
            query["pageSize"].clone(),
            token,
            query.get("query").cloned().unwrap_or_default(),
        ));
        if f.broken_page == Some(page) {
            return google_error(
                500,
                "INTERNAL",
                "Internal error encountered.",
                json!([{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "req-500-7f3a", "servingData": ""}]),
            );
        }
        if f.throttle_page == Some(page) {
            f.throttle_page = None;
            let mut r = google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'cloudresourcemanager.googleapis.com'.",
                Value::Null,
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            return r;
        }
        let start = (page - 1) * size;
        let projects: Vec<Value> = f
            .projects
            .iter()
            .skip(start)
            .take(size)
            .map(|p| encode_enums(p.clone(), int_enums))
            .collect();
        let mut body = json!({ "projects": projects });
        if start + size < f.projects.len() {
            body["nextPageToken"] = json!(format!("CgZwYWdl{}", page + 1));
        }
        return ok_json(&body);
    }
    if let Some(id) = path.strip_prefix("/v3/folders/") {
        let name = format!("folders/{id}");
        *f.folder_calls.entry(name.clone()).or_default() += 1;
        if f.broken_folders.contains(&name) {
            return google_error(
                503,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                Value::Null,
            );
        }
        if f.forbidden.contains(&name) {
            return google_error(
                403,
                "PERMISSION_DENIED",
                &format!("Permission 'resourcemanager.folders.get' denied on resource '//cloudresourcemanager.googleapis.com/{name}' (or it may not exist)."),
                Value::Null,
            );
        }
        return match f.folders.get(&name) {
            Some(folder) => ok_json(&encode_enums(folder.clone(), int_enums)),
            None => google_error(
                404,
                "NOT_FOUND",
                "Requested entity was not found.",
                Value::Null,
            ),
        };
    }
    google_error(
        404,
        "NOT_FOUND",
        "Requested entity was not found.",
        Value::Null,
    )
}

async fn fake_server(fake: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap())
            .run(resource_manager.data(fake)),
    );
    format!("http://{addr}")
}

fn project(number: u64, id: &str, parent: &str, labels: Value) -> Value {
    json!({
        "name": format!("projects/{number}"),
        "parent": parent,
        "projectId": id,
        "state": "ACTIVE",
        "displayName": format!("Project {id}"),
        "createTime": "2024-03-01T09:00:00.000Z",
        "updateTime": "2025-06-01T10:00:00.000Z",
        "etag": format!("W/\"{number}-1\""),
        "labels": labels,
    })
}

fn folder(id: u64, parent: &str) -> (String, Value) {
    let name = format!("folders/{id}");
    let v = json!({
        "name": name,
        "parent": parent,
        "displayName": format!("Folder {id}"),
        "state": "ACTIVE",
        "createTime": "2023-01-01T00:00:00Z",
        "updateTime": "2023-01-01T00:00:00Z",
        "etag": "BwXz",
    });
    (name, v)
}

/// organizations/1 ← folders/10 ← folders/20; folders/30 (not readable) under the organisation.
fn estate() -> Fake {
    let mut f = Fake {
        projects: vec![
            project(
                101,
                "prod-api",
                "folders/20",
                json!({"env": "prod", "team": "api"}),
            ),
            project(102, "prod-db", "folders/20", json!({"env": "prod"})),
            project(103, "shared-net", "folders/10", json!({})),
            project(104, "sandbox", "folders/30", json!({"env": "dev"})),
            project(105, "billing", "organizations/1", json!({})),
            project(106, "prod-web", "folders/20", json!({"env": "prod"})),
            project(107, "old-thing", "folders/10", json!({})),
        ],
        ..Fake::default()
    };
    f.projects[6]["state"] = json!("DELETE_REQUESTED");
    f.folders
        .extend([folder(10, "organizations/1"), folder(20, "folders/10")]);
    f.forbidden.insert("folders/30".into());
    f
}

fn source(url: &str, token: &str) -> GcpSource {
    GcpSource::new(GcpConfig {
        endpoint: Some(url.to_owned()),
        query: Some("parent:organizations/1".into()),
        scope: "org-1".into(),
        page_size: 3,
        deadline: Duration::from_secs(4),
        timeout: Duration::from_secs(5),
        retry_initial: Duration::from_millis(50),
        access_token: Some(token.to_owned()),
        ..GcpConfig::default()
    })
    .unwrap()
}

async fn assert_token_never_published(b: &common::Bus) {
    for m in all(b).await {
        let text = String::from_utf8_lossy(&m.stored.payload);
        assert!(
            !text.contains(TOKEN) && !text.contains("4b1d9c7e2a"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn pages_folder_paths_changes_and_deletions() {
    let b = bus().await;
    let fake: Shared = Arc::new(Mutex::new(estate()));
    let url = fake_server(fake.clone()).await;
    let src = source(&url, TOKEN);
    let opts = SweepOptions::default();

    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.discovered, r.exit_code()),
        (SweepStatus::Ok, 7, 0)
    );
    {
        let f = fake.lock().unwrap();
        // Three pages; the first without a token, the others with the token the server gave.
        let pages: Vec<_> = f
            .searches
            .iter()
            .map(|(p, size, token, q)| (*p, size.as_str(), token.as_str(), q.as_str()))
            .collect();
        assert_eq!(
            pages,
            [
                (1, "3", "", "parent:organizations/1"),
                (2, "3", "CgZwYWdl2", "parent:organizations/1"),
                (3, "3", "CgZwYWdl3", "parent:organizations/1"),
            ]
        );
        // Each folder read once in the sweep, however many projects sit under it.
        let mut calls: Vec<_> = f
            .folder_calls
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        calls.sort_unstable();
        assert_eq!(
            calls,
            [("folders/10", 1), ("folders/20", 1), ("folders/30", 1)]
        );
        assert_eq!(f.refused, 0);
        // The official client asks for enums as numbers; the fake answers accordingly.
        assert_eq!(
            f.alt.iter().collect::<Vec<_>>(),
            [&"json;enum-encoding=int".to_owned()]
        );
    }
    let msgs = all(&b).await;
    let by_id: HashMap<String, &inventory_schemas::Asset> = msgs
        .iter()
        .filter(|m| m.stored.subject.starts_with("inventory.asset."))
        .map(|m| (m.asset().id.clone(), m.asset()))
        .collect();
    assert_eq!(by_id.len(), 7);
    let api = by_id["prod-api"];
    assert_eq!(
        api.org_path,
        ["organizations/1", "folders/10", "folders/20"]
    );
    assert_eq!(
        (api.name.as_str(), api.status),
        ("Project prod-api", AssetStatus::Active)
    );
    assert_eq!(api.labels["team"], "api");
    assert_eq!(api.raw["projectNumber"], "101");
    assert_eq!(api.raw["state"], "ACTIVE");
    assert_eq!(api.raw["parent"], "folders/20");
    assert!(api.raw.get("etag").is_none() && api.raw.get("updateTime").is_none());
    assert_eq!(api.provenance.pages, 3);
    assert_eq!(api.provenance.principal.as_deref(), Some("access-token"));
    assert_eq!(
        by_id["shared-net"].org_path,
        ["organizations/1", "folders/10"]
    );
    assert_eq!(by_id["billing"].org_path, ["organizations/1"]);
    // Not allowed to read folders/30: the path stops there, the project is still reported.
    assert_eq!(by_id["sandbox"].org_path, ["folders/30"]);
    assert_eq!(by_id["old-thing"].status, AssetStatus::PendingClosure);
    // In project id order, under the documented subjects.
    assert_eq!(
        msgs[0].stored.subject,
        "inventory.asset.gcp.project.billing"
    );
    assert_eq!(
        msgs[3].stored.subject,
        "inventory.asset.gcp.project.prod-db"
    );
    assert_eq!(
        msgs[0].event.as_ref().unwrap().source,
        "/collectors/gcp/org-1"
    );
    let sweep = msgs.last().unwrap();
    assert_eq!(sweep.stored.subject, "inventory.sweep.gcp.org-1");
    assert_eq!(sweep.sweep().scope, "org-1");
    assert_eq!(sweep.sweep().provenance.pages, 3);

    // Nothing changed (etag/updateTime may move): no asset events; folders read again once.
    for p in &mut fake.lock().unwrap().projects {
        p["etag"] = json!("W/\"moved\"");
        p["updateTime"] = json!("2026-01-01T00:00:00Z");
    }
    let before = all(&b).await.len() as u64;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.unchanged), (SweepStatus::Ok, 7));
    assert!(asset_events(&since(&b, before).await).is_empty());
    assert!(fake.lock().unwrap().folder_calls.values().all(|&n| n == 2));

    // A changed label: exactly one `changed`.
    fake.lock().unwrap().projects[1]["labels"]["env"] = json!("staging");
    let before = all(&b).await.len() as u64;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.counts.changed, r.counts.unchanged), (1, 6));
    let new = since(&b, before).await;
    assert_eq!(
        asset_events(&new),
        [("changed", "gcp/project/prod-db".to_owned())]
    );
    assert_eq!(new[0].asset().labels["env"], "staging");

    // A project gone from a complete listing: one `deleted`.
    fake.lock().unwrap().projects.remove(4);
    let before = all(&b).await.len() as u64;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.deleted, r.counts.unchanged),
        (SweepStatus::Ok, 1, 6)
    );
    assert_eq!(
        asset_events(&since(&b, before).await),
        [("deleted", "gcp/project/billing".to_owned())]
    );
    assert_token_never_published(&b).await;
}

#[tokio::test]
async fn throttling_is_retried_and_a_failing_page_makes_a_partial_sweep_without_tombstones() {
    let b = bus().await;
    let fake: Shared = Arc::new(Mutex::new(estate()));
    let url = fake_server(fake.clone()).await;
    let src = source(&url, TOKEN);
    let opts = SweepOptions::default();

    // 429 with Retry-After: 1 on page 2, once: waited for, then the sweep is complete.
    fake.lock().unwrap().throttle_page = Some(2);
    let started = Instant::now();
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 7));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After not honoured"
    );
    let page2 = fake
        .lock()
        .unwrap()
        .searches
        .iter()
        .filter(|s| s.0 == 2)
        .count();
    assert_eq!(page2, 2);

    // Page 2 fails on every attempt: page 1 is published (unchanged here), nothing is
    // tombstoned, the sweep is partial and says why.
    fake.lock().unwrap().broken_page = Some(2);
    let before = all(&b).await.len() as u64;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Partial, 2));
    assert_eq!(
        (r.counts.seen, r.counts.unchanged, r.counts.deleted),
        (3, 3, 0)
    );
    let attempts = fake
        .lock()
        .unwrap()
        .searches
        .iter()
        .filter(|s| s.0 == 2)
        .count()
        - 2;
    assert!(attempts > 1, "page 2 was not retried");
    let new = since(&b, before).await;
    assert!(asset_events(&new).is_empty());
    let sweep = new[0].sweep();
    assert_eq!(sweep.status, SweepStatus::Partial);
    let error = sweep.error.as_deref().unwrap();
    assert!(
        error.contains("SearchProjects page 2")
            && error.contains("HTTP 500 INTERNAL: Internal error encountered.")
            && error.contains("attempts"),
        "{error}"
    );
    assert!(
        sweep
            .provenance
            .request_ids
            .contains(&"req-500-7f3a".to_owned()),
        "{:?}",
        sweep.provenance
    );

    // A folder that cannot be read (503 on every attempt): the projects under it are left out
    // (a truncated path would be a false `changed`), the sweep is partial, nothing is deleted.
    {
        let mut f = fake.lock().unwrap();
        f.broken_page = None;
        f.broken_folders.insert("folders/20".into());
    }
    let before = all(&b).await.len() as u64;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.seen, r.counts.deleted),
        (SweepStatus::Partial, 4, 0)
    );
    let new = since(&b, before).await;
    assert!(asset_events(&new).is_empty());
    let error = new[0].sweep().error.as_deref().unwrap();
    assert!(
        error.contains("incomplete sweep: GetFolder folders/20: still failing after ")
            && error.contains("HTTP 503 UNAVAILABLE"),
        "{error}"
    );
    assert_token_never_published(&b).await;
}

#[tokio::test]
async fn an_expired_token_fails_the_sweep_with_one_clear_line() {
    let b = bus().await;
    let fake: Shared = Arc::new(Mutex::new(estate()));
    let url = fake_server(fake.clone()).await;
    let src = source(&url, "ya29.expired");
    let opts = SweepOptions::default();

    let e = src.collect().await.unwrap_err();
    assert_eq!(e.kind(), SourceErrorKind::Auth);
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    let err = r.error.unwrap();
    assert!(
        err.starts_with("SearchProjects page 1: credentials refused: HTTP 401 UNAUTHENTICATED: Request had invalid authentication credentials.")
            && err.ends_with("(principal access-token)")
            && !err.contains('\n'),
        "{err}"
    );
    // Not retried: one request per attempt to collect.
    assert_eq!(fake.lock().unwrap().refused, 2);
    let msgs = all(&b).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].sweep().status, SweepStatus::Failed);
    assert_eq!(msgs[0].sweep().error.as_deref(), Some(err.as_str()));
    for m in &msgs {
        assert!(!String::from_utf8_lossy(&m.stored.payload).contains("ya29.expired"));
    }

    // A principal without resourcemanager.projects.get anywhere: also refused credentials.
    let good = source(&url, TOKEN);
    fake.lock().unwrap().deny_search = true;
    let r = run_sweep(&b.js, &b.stream, &good, &opts).await.unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    assert_eq!(
        r.error.as_deref(),
        Some("SearchProjects page 1: credentials refused: HTTP 403 PERMISSION_DENIED: The caller does not have permission (principal access-token)")
    );
}
