//! The `azure` source against a local server that answers in Azure Resource Manager's REST wire
//! format (`GET /subscriptions` with `nextLink` paging, `POST .../getEntities`, ARM error bodies,
//! `x-ms-request-id` headers, 429 with `Retry-After`), published through a real `nats-server`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{all, asset_events, bus, since};
use inventory_producers::sources::{AzureConfig, AzureSource};
use inventory_producers::{run_sweep, SweepOptions};
use inventory_schemas::{sweep_subject, AssetStatus, SweepStatus};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{handler, EndpointExt, Request, Response, Route, Server};
use serde_json::{json, Value};

/// A JWT-shaped token (unsigned) whose claims name the principal: appid and oid.
const TOKEN: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIiwiYXBwaWQiOiIzZjJhM2I2Yy0xZDRlLTRmNTAtOGE2MS03YjgyYzkzZDBlMWYiLCJvaWQiOiI5YThiN2M2ZC01ZTRmLTQzMjEtODc2NS00MzIxZmVkY2JhOTgiLCJ0aWQiOiI3MmY5ODhiZi04NmYxLTQxYWYtOTFhYi0yZDdjZDAxMWRiNDcifQ.ZmFrZS1zaWduYXR1cmU";
const SIGNATURE: &str = "ZmFrZS1zaWduYXR1cmU";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const PRINCIPAL: &str =
    "appid=3f2a3b6c-1d4e-4f50-8a61-7b82c93d0e1f,oid=9a8b7c6d-5e4f-4321-8765-4321fedcba98";

fn sub_id(n: u32) -> String {
    format!("5f1c1f4e-0b5a-4a4e-9a53-00000000000{n}")
}

fn subscription(n: u32) -> Value {
    let id = sub_id(n);
    json!({
        "id": format!("/subscriptions/{id}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "tags": {"team": format!("team-{n}"), "env": "prod"},
        "subscriptionId": id,
        "tenantId": TENANT,
        "displayName": format!("sub-{n}"),
        "state": if n == 4 { "Disabled" } else { "Enabled" },
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        }
    })
}

fn group(name: &str, parent: Option<&str>, chain: &[&str]) -> Value {
    json!({
        "id": format!("/providers/Microsoft.Management/managementGroups/{name}"),
        "type": "Microsoft.Management/managementGroups",
        "name": name,
        "properties": {
            "tenantId": TENANT,
            "displayName": format!("{name} group"),
            "parent": parent.map(|p| json!({"id": format!("/providers/Microsoft.Management/managementGroups/{p}")})),
            "permissions": "view",
            "inheritedPermissions": "view",
            "parentDisplayNameChain": chain.iter().map(|c| format!("{c} group")).collect::<Vec<_>>(),
            "parentNameChain": chain
        }
    })
}

fn sub_entity(n: u32, chain: &[&str]) -> Value {
    json!({
        "id": format!("/subscriptions/{}", sub_id(n)),
        "type": "/subscriptions",
        "name": sub_id(n),
        "properties": {
            "tenantId": TENANT,
            "displayName": format!("sub-{n}"),
            "parent": {"id": format!("/providers/Microsoft.Management/managementGroups/{}", chain.last().unwrap())},
            "permissions": "view",
            "inheritedPermissions": "view",
            "parentDisplayNameChain": chain.iter().map(|c| format!("{c} group")).collect::<Vec<_>>(),
            "parentNameChain": chain
        }
    })
}

/// What the fake ARM holds and how it misbehaves.
struct Arm {
    base: String,
    subscriptions: Vec<Value>,
    page_size: usize,
    entities: Vec<Value>,
    /// Answer getEntities with this status (403 AuthorizationFailed).
    entities_forbidden: bool,
    /// Answer getEntities 401 InvalidAuthenticationToken.
    entities_unauthorized: bool,
    /// 429s to answer on the first page before serving it.
    throttle: u32,
    retry_after_secs: u64,
    /// Page (1-based) that always answers 500.
    broken_page: Option<usize>,
    /// Every request answers 401 ExpiredAuthenticationToken.
    expired: bool,
    /// `(method, path?query, status, when)` of every request.
    log: Vec<(String, String, u16, Instant)>,
    next_request: u32,
}

impl Arm {
    fn new() -> Self {
        Self {
            base: String::new(),
            subscriptions: (1..=5).map(subscription).collect(),
            page_size: 2,
            entities: vec![
                group(TENANT, None, &[]),
                group("platform", Some(TENANT), &[TENANT]),
                group("prod", Some("platform"), &[TENANT, "platform"]),
                sub_entity(1, &[TENANT, "platform", "prod"]),
                sub_entity(2, &[TENANT, "platform", "prod"]),
                sub_entity(3, &[TENANT, "platform", "prod"]),
                sub_entity(4, &[TENANT]),
            ],
            entities_forbidden: false,
            entities_unauthorized: false,
            throttle: 0,
            retry_after_secs: 1,
            broken_page: None,
            expired: false,
            log: Vec::new(),
            next_request: 0,
        }
    }
}

type Shared = Arc<Mutex<Arm>>;

fn arm_json(status: StatusCode, request_id: &str, body: Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .header("x-ms-request-id", request_id)
        .header("x-ms-correlation-request-id", format!("corr-{request_id}"))
        .header("cache-control", "no-cache")
        .body(body.to_string())
}

fn arm_error(status: StatusCode, request_id: &str, code: &str, message: &str) -> Response {
    arm_json(
        status,
        request_id,
        json!({"error": {"code": code, "message": message}}),
    )
}

/// Decoded query parameters of a request.
type Query = Vec<(String, String)>;

/// Checks what every ARM request must carry; `Err` is the answer ARM would give.
fn check(
    req: &Request,
    arm: &mut Arm,
    api_version: &str,
) -> Result<(String, Query), Box<Response>> {
    arm.next_request += 1;
    let rid = format!("00000000-0000-0000-0000-{:012}", arm.next_request);
    let query: Query =
        url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let version = query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.as_str());
    if version != Some(api_version) {
        return Err(Box::new(arm_error(
            StatusCode::BAD_REQUEST,
            &rid,
            "InvalidApiVersionParameter",
            &format!("The api-version '{version:?}' is invalid."),
        )));
    }
    if arm.expired {
        return Err(Box::new(arm_error(
            StatusCode::UNAUTHORIZED,
            &rid,
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time '11/22/2026 9:00:00 AM' is earlier than current UTC time '11/22/2026 10:00:00 AM'.",
        )));
    }
    if req.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
        return Err(Box::new(arm_error(
            StatusCode::UNAUTHORIZED,
            &rid,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )));
    }
    Ok((rid, query))
}

fn record(arm: &mut Arm, req: &Request, resp: &Response) {
    arm.log.push((
        req.method().to_string(),
        req.uri().to_string(),
        resp.status().as_u16(),
        Instant::now(),
    ));
}

#[handler]
fn subscriptions(req: &Request, state: Data<&Shared>) -> Response {
    let mut arm = state.lock().unwrap();
    let resp = list_page(req, &mut arm);
    record(&mut arm, req, &resp);
    resp
}

fn list_page(req: &Request, arm: &mut Arm) -> Response {
    let (rid, query) = match check(req, arm, "2022-12-01") {
        Ok(ok) => ok,
        Err(resp) => return *resp,
    };
    let page: usize = query
        .iter()
        .find(|(k, _)| k == "$skiptoken")
        .map_or(1, |(_, v)| v.parse().unwrap());
    if page == 1 && arm.throttle > 0 {
        arm.throttle -= 1;
        let mut resp = arm_error(
            StatusCode::TOO_MANY_REQUESTS,
            &rid,
            "TooManyRequests",
            "The request is being throttled.",
        );
        resp.headers_mut().insert(
            "retry-after",
            arm.retry_after_secs.to_string().parse().unwrap(),
        );
        return resp;
    }
    if arm.broken_page == Some(page) {
        return arm_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &rid,
            "InternalServerError",
            "Encountered internal server error. Diagnostic information: timestamp '20261122T100000Z'.",
        );
    }
    let start = (page - 1) * arm.page_size;
    let value: Vec<Value> = arm
        .subscriptions
        .iter()
        .skip(start)
        .take(arm.page_size)
        .cloned()
        .collect();
    let mut body = json!({ "value": value });
    if start + arm.page_size < arm.subscriptions.len() {
        body["nextLink"] = json!(format!(
            "{}/subscriptions?api-version=2022-12-01&%24skiptoken={}",
            arm.base,
            page + 1
        ));
    }
    arm_json(StatusCode::OK, &rid, body)
}

#[handler]
fn get_entities(req: &Request, state: Data<&Shared>) -> Response {
    let mut arm = state.lock().unwrap();
    let resp = match check(req, &mut arm, "2021-04-01") {
        Err(resp) => *resp,
        Ok((rid, _)) if arm.entities_forbidden => arm_error(
            StatusCode::FORBIDDEN,
            &rid,
            "AuthorizationFailed",
            "The client does not have authorization to perform action 'Microsoft.Management/getEntities/action' over scope '/providers/Microsoft.Management'.",
        ),
        Ok((rid, _)) if arm.entities_unauthorized => arm_error(
            StatusCode::UNAUTHORIZED,
            &rid,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ),
        Ok((rid, _)) => arm_json(
            StatusCode::OK,
            &rid,
            json!({"count": arm.entities.len(), "value": arm.entities}),
        ),
    };
    record(&mut arm, req, &resp);
    resp
}

async fn fake_arm() -> (String, Shared) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(Arm::new()));
    state.lock().unwrap().base = base.clone();
    let app = Route::new()
        .at("/subscriptions", poem::get(subscriptions))
        .at(
            "/providers/Microsoft.Management/getEntities",
            poem::post(get_entities),
        )
        .data(state.clone());
    tokio::spawn(Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(app));
    (base, state)
}

fn azure(endpoint: &str) -> AzureSource {
    let mut c = AzureConfig::new(TENANT);
    c.endpoint = endpoint.to_owned();
    c.access_token = Some(TOKEN.to_owned());
    c.retry_base = Duration::from_millis(50);
    c.deadline = Duration::from_secs(3);
    AzureSource::new(c).unwrap()
}

fn assert_no_token(msgs: &[common::Msg]) {
    for m in msgs {
        let payload = String::from_utf8_lossy(&m.stored.payload);
        assert!(
            !payload.contains(TOKEN) && !payload.contains(SIGNATURE),
            "{payload}"
        );
    }
}

#[tokio::test]
async fn pages_paths_and_changes_are_published_once() {
    let b = bus().await;
    let (url, arm) = fake_arm().await;
    let src = azure(&url);
    let opts = SweepOptions::default();

    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.seen, r.counts.discovered, r.exit_code()),
        (SweepStatus::Ok, 5, 5, 0)
    );
    {
        let arm = arm.lock().unwrap();
        let calls: Vec<(&str, &str)> = arm
            .log
            .iter()
            .map(|(m, u, _, _)| (m.as_str(), u.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("GET", "/subscriptions?api-version=2022-12-01"),
                (
                    "GET",
                    "/subscriptions?api-version=2022-12-01&%24skiptoken=2"
                ),
                (
                    "GET",
                    "/subscriptions?api-version=2022-12-01&%24skiptoken=3"
                ),
                (
                    "POST",
                    "/providers/Microsoft.Management/getEntities?api-version=2021-04-01"
                ),
            ]
        );
    }
    let msgs = all(&b).await;
    assert_eq!(msgs.len(), 6);
    assert_no_token(&msgs);
    let first = msgs
        .iter()
        .find(|m| m.key() == format!("azure/subscription/{}", sub_id(1)))
        .unwrap();
    assert_eq!(
        first.stored.subject,
        format!("inventory.asset.azure.subscription.{}", sub_id(1))
    );
    assert_eq!(
        first.event.as_ref().unwrap().source,
        format!("/collectors/azure/{TENANT}")
    );
    let a = first.asset();
    assert_eq!((a.name.as_str(), a.status), ("sub-1", AssetStatus::Active));
    assert_eq!(a.org_path, [TENANT, "platform", "prod"]);
    assert_eq!(a.labels["team"], "team-1");
    assert_eq!(a.raw, subscription(1));
    assert!(a.region_residency.is_empty());
    assert_eq!(a.provenance.pages, 3);
    assert_eq!(a.provenance.principal.as_deref(), Some(PRINCIPAL));
    assert_eq!(a.provenance.request_ids.len(), 4);
    assert!(a.provenance.request_ids[0].starts_with("00000000-0000-0000-0000-"));
    assert!(a
        .provenance
        .api
        .contains("GET /subscriptions?api-version=2022-12-01"));
    assert!(a.provenance.api.contains("getEntities"));
    let by_key = |n: u32| {
        msgs.iter()
            .find(|m| m.key() == format!("azure/subscription/{}", sub_id(n)))
            .unwrap()
            .asset()
    };
    assert_eq!(by_key(4).org_path, [TENANT]);
    assert_eq!(by_key(4).status, AssetStatus::Suspended);
    assert!(by_key(5).org_path.is_empty());
    let sweep = msgs[5].sweep();
    assert_eq!(msgs[5].stored.subject, sweep_subject("azure", &sweep.scope));
    assert_eq!(
        (sweep.status, sweep.scope.as_str()),
        (SweepStatus::Ok, TENANT)
    );
    assert_eq!(sweep.provenance.pages, 3);

    // Nothing changed: no asset event.
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.counts.unchanged, r.counts.discovered, r.counts.changed),
        (5, 0, 0)
    );
    assert!(asset_events(&since(&b, 6).await).is_empty());

    // A tag changed: one `changed`.
    arm.lock().unwrap().subscriptions[1]["tags"]["env"] = json!("staging");
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.changed), (SweepStatus::Ok, 1));
    let new = since(&b, 7).await;
    assert_eq!(
        asset_events(&new),
        [("changed", format!("azure/subscription/{}", sub_id(2)))]
    );
    assert_eq!(new[0].asset().labels["env"], "staging");

    // A subscription gone from a complete listing: one `deleted`.
    arm.lock().unwrap().subscriptions.pop();
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.deleted), (SweepStatus::Ok, 1));
    let new = since(&b, 9).await;
    assert_eq!(
        asset_events(&new),
        [("deleted", format!("azure/subscription/{}", sub_id(5)))]
    );
    assert_no_token(&all(&b).await);
}

#[tokio::test]
async fn throttling_waits_as_long_as_retry_after_says() {
    let b = bus().await;
    let (url, arm) = fake_arm().await;
    arm.lock().unwrap().throttle = 1;
    let r = run_sweep(&b.js, &b.stream, &azure(&url), &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 5));
    let arm = arm.lock().unwrap();
    let page1: Vec<_> = arm
        .log
        .iter()
        .filter(|(_, u, _, _)| u == "/subscriptions?api-version=2022-12-01")
        .collect();
    assert_eq!(
        page1.iter().map(|(_, _, s, _)| *s).collect::<Vec<_>>(),
        [429, 200]
    );
    let waited = page1[1].3 - page1[0].3;
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_later_page_that_keeps_failing_is_partial_and_tombstones_nothing() {
    let b = bus().await;
    let (url, arm) = fake_arm().await;
    let src = azure(&url);
    let opts = SweepOptions::default();
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 5));

    arm.lock().unwrap().broken_page = Some(2);
    let started = Instant::now();
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (r.status, r.counts.seen, r.counts.deleted, r.exit_code()),
        (SweepStatus::Partial, 2, 0, 2)
    );
    let error = r.error.unwrap();
    assert!(
        error.contains("page 2") && error.contains("500 InternalServerError"),
        "{error}"
    );
    let new = since(&b, 6).await;
    assert!(asset_events(&new).is_empty());
    assert_eq!(new.len(), 1);
    let sweep = new[0].sweep();
    assert_eq!(sweep.status, SweepStatus::Partial);
    assert_eq!(sweep.error.as_deref(), Some(error.as_str()));
    let retried = arm
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|(_, _, s, _)| *s == 500)
        .count();
    assert!(retried > 1, "page 2 was tried {retried} times");
}

#[tokio::test]
async fn an_expired_token_fails_the_sweep_with_one_clear_line() {
    let b = bus().await;
    let (url, arm) = fake_arm().await;
    arm.lock().unwrap().expired = true;
    let r = run_sweep(&b.js, &b.stream, &azure(&url), &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    assert_eq!(
        r.error.as_deref(),
        Some("ARM GET /subscriptions: 401 ExpiredAuthenticationToken: The access token expiry UTC time '11/22/2026 9:00:00 AM' is earlier than current UTC time '11/22/2026 10:00:00 AM'.")
    );
    let msgs = all(&b).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].sweep().status, SweepStatus::Failed);
    assert_no_token(&msgs);
    // Not retried (a refused token does not get better), and nothing asked after it.
    let arm = arm.lock().unwrap();
    assert_eq!(arm.log.len(), 1);
    assert_eq!(arm.log[0].2, 401);
}

#[tokio::test]
async fn unreadable_management_groups_leave_paths_empty_but_the_sweep_ok() {
    let b = bus().await;
    let (url, arm) = fake_arm().await;
    arm.lock().unwrap().entities_forbidden = true;
    let r = run_sweep(&b.js, &b.stream, &azure(&url), &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!((r.status, r.counts.discovered), (SweepStatus::Ok, 5));
    let msgs = all(&b).await;
    assert!(msgs[..5].iter().all(|m| m.asset().org_path.is_empty()));
    assert!(!msgs[0].asset().provenance.api.contains("getEntities"));

    // A refused token (401) is not a missing role: the sweep fails and nothing changes.
    {
        let mut arm = arm.lock().unwrap();
        arm.entities_forbidden = false;
        arm.entities_unauthorized = true;
    }
    let r = run_sweep(&b.js, &b.stream, &azure(&url), &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    assert_eq!(
        r.error.as_deref(),
        Some("ARM POST /providers/Microsoft.Management/getEntities: 401 InvalidAuthenticationToken: The access token is invalid.")
    );
    assert!(asset_events(&since(&b, 6).await).is_empty());
}
