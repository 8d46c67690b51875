//! The `aws` source against a real `moto` server (AWS Organizations and STS, installed from
//! PyPI by `make test`), published through a real `nats-server`. The organisation is built
//! through the Organizations API; failures are injected by a small proxy in front of moto.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_organizations::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_organizations::types::Tag;
use aws_sdk_organizations::Client;
use common::{all, asset_events, bus, since};
use futures::{stream, StreamExt};
use inventory_producers::sources::{AwsConfig, AwsSource};
use inventory_producers::{run_sweep, Source, SweepOptions};
use inventory_schemas::{sweep_subject, AssetStatus, SweepStatus};
use inventory_testkit::Moto;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::web::Data;
use poem::{handler, Body, EndpointExt, Request, Response, Route, Server};

const MASTER: &str = "123456789012";

async fn last_seq(b: &common::Bus) -> u64 {
    inventory_bus::last_sequence(&mut b.stream.clone())
        .await
        .unwrap()
}

fn creds() -> Credentials {
    Credentials::new("testing", "testing", None, None, "test")
}

/// The same SDK the collector uses, as the organisation's administrator (test set-up).
fn admin(url: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_sdk_organizations::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(creds())
        .endpoint_url(url)
        .http_client(http)
        .build();
    Client::from_conf(conf)
}

fn config(url: &str) -> AwsConfig {
    AwsConfig {
        endpoint_url: Some(url.to_owned()),
        sts_endpoint_url: Some(url.to_owned()),
        credentials: Some(creds()),
        initial_backoff: Duration::from_millis(10),
        max_attempts: 3,
        concurrency: 8,
        ..AwsConfig::new()
    }
}

/// The organisation built for a test: OU ids by name, and the accounts made in each.
struct Org {
    root: String,
    ous: BTreeMap<&'static str, String>,
    /// account id → the path of OU ids (root first) it was placed under.
    placed: BTreeMap<String, Vec<String>>,
}

/// Root → Prod → EU → Payments → PCI (four OU levels), Root → Dev → TeamA, Root → Sandbox;
/// `n` accounts spread over the root and every OU, every tenth one tagged.
async fn build_org(c: &Client, n: usize) -> Org {
    c.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .unwrap();
    let root = c.list_roots().send().await.unwrap().roots()[0]
        .id()
        .unwrap()
        .to_owned();
    let tree: [(&str, &str); 7] = [
        ("Prod", ""),
        ("EU", "Prod"),
        ("Payments", "EU"),
        ("PCI", "Payments"),
        ("Dev", ""),
        ("TeamA", "Dev"),
        ("Sandbox", ""),
    ];
    let mut ous: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut paths: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (name, parent) in tree {
        let (pid, mut path) = if parent.is_empty() {
            (root.clone(), vec![root.clone()])
        } else {
            (ous[parent].clone(), paths[parent].clone())
        };
        let ou = c
            .create_organizational_unit()
            .parent_id(&pid)
            .name(name)
            .send()
            .await
            .unwrap();
        let id = ou.organizational_unit().unwrap().id().unwrap().to_owned();
        path.push(id.clone());
        ous.insert(name, id);
        paths.insert(name, path);
    }
    let targets: Vec<(Option<&str>, Vec<String>)> = std::iter::once((None, vec![root.clone()]))
        .chain(
            tree.iter()
                .map(|(name, _)| (Some(*name), paths[name].clone())),
        )
        .collect();
    let made: Vec<(String, Vec<String>)> = stream::iter(0..n)
        .map(|i| {
            let (ou, path) = targets[i % targets.len()].clone();
            let ou = ou.map(|name| ous[name].clone());
            let root = root.clone();
            async move {
                let out = c
                    .create_account()
                    .email(format!("acct{i}@example.com"))
                    .account_name(format!("acct-{i:04}"))
                    .send()
                    .await
                    .unwrap();
                let id = out
                    .create_account_status()
                    .unwrap()
                    .account_id()
                    .unwrap()
                    .to_owned();
                if let Some(ou) = ou {
                    c.move_account()
                        .account_id(&id)
                        .source_parent_id(&root)
                        .destination_parent_id(ou)
                        .send()
                        .await
                        .unwrap();
                }
                if i % 10 == 0 {
                    c.tag_resource()
                        .resource_id(&id)
                        .tags(
                            Tag::builder()
                                .key("team")
                                .value(format!("t{i}"))
                                .build()
                                .unwrap(),
                        )
                        .send()
                        .await
                        .unwrap();
                }
                (id, path)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut placed: BTreeMap<String, Vec<String>> = made.into_iter().collect();
    placed.insert(MASTER.to_owned(), vec![root.clone()]);
    Org { root, ous, placed }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_is_listed_with_its_paths_and_each_change_is_one_event() {
    let b = bus().await;
    let moto = tokio::task::block_in_place(Moto::start);
    let admin = admin(&moto.url());
    let started = Instant::now();
    let org = build_org(&admin, 300).await;
    eprintln!("moto: 300 accounts in {:?}", started.elapsed());

    let src = AwsSource::connect(config(&moto.url())).await.unwrap();
    let org_id = src.org_id().unwrap().to_owned();
    assert!(org_id.starts_with("o-"), "{org_id}");
    assert_eq!(src.scope(), org_id);
    assert_eq!(src.source_uri(), format!("/collectors/aws/{org_id}"));
    let opts = SweepOptions::default();

    let started = Instant::now();
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    eprintln!("first sweep of 301 accounts: {:?}", started.elapsed());
    assert_eq!(
        (r.status, r.counts.seen, r.counts.discovered),
        (SweepStatus::Ok, 301, 301),
        "{:?}",
        r.error
    );
    let msgs = all(&b).await;
    let assets: BTreeMap<String, inventory_schemas::Asset> = msgs
        .iter()
        .filter(|m| m.stored.subject.starts_with("inventory.asset."))
        .map(|m| (m.asset().id.clone(), m.asset().clone()))
        .collect();
    assert_eq!(assets.len(), 301);
    // Every account has the path it was placed under: root only, one, two and four OUs deep.
    for (id, path) in &org.placed {
        assert_eq!(&assets[id].org_path, path, "account {id}");
    }
    let depths: std::collections::BTreeSet<usize> =
        assets.values().map(|a| a.org_path.len()).collect();
    assert_eq!(depths, [1, 2, 3, 4, 5].into());
    let pci = assets
        .values()
        .find(|a| a.org_path.last() == Some(&org.ous["PCI"]))
        .unwrap();
    assert_eq!(
        pci.raw["OrgPathNames"],
        serde_json::json!(["Root", "Prod", "EU", "Payments", "PCI"])
    );
    let a0 = assets.values().find(|a| a.name == "acct-0000").unwrap();
    assert_eq!(a0.labels["team"], "t0");
    assert_eq!(a0.status, AssetStatus::Active);
    assert_eq!(a0.raw["Email"], "acct0@example.com");
    assert_eq!(a0.raw["JoinedMethod"], "CREATED");
    assert!(a0.raw["JoinedTimestamp"].as_str().unwrap().ends_with('Z'));
    assert!(a0.raw["Arn"].as_str().unwrap().contains(&org_id));
    assert!(assets.values().filter(|a| !a.labels.is_empty()).count() >= 30);
    let prov = &a0.provenance;
    assert_eq!(prov.collector, "aws");
    assert!(prov.api.contains("ListAccountsForParent"), "{}", prov.api);
    assert!(!prov.request_ids.is_empty());
    let principal = prov.principal.clone().unwrap();
    assert!(principal.starts_with("arn:aws:"), "{principal}");
    assert!(!principal.contains("testing"));
    let sweep = msgs.last().unwrap();
    assert_eq!(
        sweep.stored.subject,
        format!("inventory.sweep.aws.{org_id}")
    );
    assert_eq!(sweep.sweep().scope, org_id);
    assert_eq!(sweep.sweep().status, SweepStatus::Ok);
    assert!(sweep.sweep().provenance.pages > 300 / 20);

    // Nothing changed: no asset event.
    let before = last_seq(&b).await;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.unchanged), (SweepStatus::Ok, 301));
    assert!(asset_events(&since(&b, before).await).is_empty());

    // Moved to another OU: exactly one `changed`, with the new path.
    let moved = org
        .placed
        .iter()
        .find(|(id, p)| p.last() == Some(&org.ous["TeamA"]) && *id != MASTER)
        .unwrap()
        .0
        .clone();
    admin
        .move_account()
        .account_id(&moved)
        .source_parent_id(&org.ous["TeamA"])
        .destination_parent_id(&org.ous["PCI"])
        .send()
        .await
        .unwrap();
    let before = last_seq(&b).await;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.counts.changed), (SweepStatus::Ok, 1));
    let new = since(&b, before).await;
    assert_eq!(
        asset_events(&new),
        vec![("changed", format!("aws/account/{moved}"))]
    );
    let mut pci_path = org.placed[&moved][..1].to_vec();
    pci_path.extend(
        ["Prod", "EU", "Payments", "PCI"]
            .iter()
            .map(|n| org.ous[n].clone()),
    );
    assert_eq!(new[0].asset().org_path, pci_path);
    assert_eq!(new[0].asset().org_path[0], org.root);

    // Closed: one `changed` (suspended); removed from the organisation: one `deleted`.
    let (closed, removed) = {
        let mut ids = org
            .placed
            .keys()
            .filter(|id| **id != MASTER && **id != moved);
        (ids.next().unwrap().clone(), ids.next().unwrap().clone())
    };
    admin
        .close_account()
        .account_id(&closed)
        .send()
        .await
        .unwrap();
    admin
        .remove_account_from_organization()
        .account_id(&removed)
        .send()
        .await
        .unwrap();
    let before = last_seq(&b).await;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.changed, r.counts.deleted),
        (SweepStatus::Ok, 1, 1)
    );
    let mut events = asset_events(&since(&b, before).await);
    events.sort();
    assert_eq!(
        events,
        vec![
            ("changed", format!("aws/account/{closed}")),
            ("deleted", format!("aws/account/{removed}")),
        ]
    );
    let changed = since(&b, before)
        .await
        .into_iter()
        .find(|m| m.ty().map(|t| t.short()) == Some("changed"))
        .unwrap();
    assert_eq!(changed.asset().status, AssetStatus::Suspended);
    assert_eq!(r.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assumed_audit_role_is_the_recorded_principal() {
    let b = bus().await;
    let moto = tokio::task::block_in_place(Moto::start);
    build_org(&admin(&moto.url()), 4).await;
    let mut cfg = config(&moto.url());
    cfg.role_arn = Some(format!("arn:aws:iam::{MASTER}:role/OrgAudit"));
    cfg.session_name = "inventory-test".into();
    let src = AwsSource::connect(cfg).await.unwrap();
    let r = run_sweep(&b.js, &b.stream, &src, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.counts.discovered),
        (SweepStatus::Ok, 5),
        "{:?}",
        r.error
    );
    let msgs = all(&b).await;
    assert_eq!(
        msgs.last().unwrap().sweep().provenance.principal.as_deref(),
        Some(format!("arn:aws:sts::{MASTER}:assumed-role/OrgAudit/inventory-test").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_fail_the_sweep_with_one_line() {
    let b = bus().await;
    // moto checking credentials like AWS: the access key `testing` is unknown.
    let moto = tokio::task::block_in_place(|| {
        Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    });
    let src = AwsSource::connect(config(&moto.url())).await.unwrap();
    assert_eq!(src.scope(), "unknown");
    let r = run_sweep(&b.js, &b.stream, &src, &SweepOptions::default())
        .await
        .unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Failed, 1));
    let error = r.error.unwrap();
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains("credentials refused"), "{error}");
    assert!(error.contains("InvalidClientTokenId"), "{error}");
    let msgs = all(&b).await;
    assert_eq!(msgs.len(), 1);
    let scope = &msgs[0].sweep().scope;
    assert_eq!(msgs[0].stored.subject, sweep_subject("aws", scope));
    assert_eq!(msgs[0].sweep().status, SweepStatus::Failed);
    assert_eq!(msgs[0].sweep().error.as_deref(), Some(error.as_str()));
}

/// How the proxy treats `ListAccountsForParent`.
#[derive(Default)]
struct Faults {
    /// Calls seen so far.
    calls: AtomicU32,
    /// The call (1-based) that gets one HTTP 500; 0: none.
    fail_once_at: AtomicU32,
    /// From this call (1-based) on, every one is throttled; 0: none.
    throttle_from: AtomicU32,
}

#[handler]
async fn forward(req: &Request, body: Body, faults: Data<&Arc<(Faults, String)>>) -> Response {
    let (faults, upstream) = faults.0.as_ref();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if target.ends_with(".ListAccountsForParent") {
        let n = faults.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if faults.fail_once_at.load(Ordering::SeqCst) == n {
            return Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .header("x-amzn-RequestId", "fault-500")
                .content_type("application/x-amz-json-1.1")
                .body(r#"{"__type":"ServiceException","message":"injected"}"#);
        }
        let from = faults.throttle_from.load(Ordering::SeqCst);
        if from != 0 && n >= from {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .header("x-amzn-RequestId", "fault-throttle")
                .content_type("application/x-amz-json-1.1")
                .body(r#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#);
        }
    }
    let mut up = reqwest::Client::new().request(
        req.method().clone(),
        format!(
            "{upstream}{}",
            req.uri().path_and_query().map_or("/", |p| p.as_str())
        ),
    );
    for (k, v) in req.headers() {
        if k != "host" {
            up = up.header(k, v);
        }
    }
    let resp = up
        .body(body.into_vec().await.unwrap())
        .send()
        .await
        .unwrap();
    let mut out = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out = out.header(k, v);
        }
    }
    out.body(resp.bytes().await.unwrap())
}

async fn proxy(upstream: String) -> (String, Arc<(Faults, String)>) {
    let state = Arc::new((Faults::default(), upstream));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Route::new().at("/*", forward).data(state.clone());
    tokio::spawn(Server::new_with_acceptor(TcpAcceptor::from_tokio(listener).unwrap()).run(app));
    (format!("http://{addr}"), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_and_a_page_that_keeps_failing_makes_the_sweep_partial() {
    let b = bus().await;
    let moto = tokio::task::block_in_place(Moto::start);
    build_org(&admin(&moto.url()), 60).await;
    let (url, state) = proxy(moto.url()).await;
    let faults = &state.0;
    let mut cfg = config(&url);
    cfg.concurrency = 1;
    let src = AwsSource::connect(cfg).await.unwrap();
    let opts = SweepOptions::default();

    // One 500 on the third page: retried, complete.
    faults.fail_once_at.store(3, Ordering::SeqCst);
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!(
        (r.status, r.counts.discovered),
        (SweepStatus::Ok, 61),
        "{:?}",
        r.error
    );
    let first_calls = faults.calls.load(Ordering::SeqCst);

    // Throttled for good from the fourth page on: partial, the error recorded, and the account
    // removed meanwhile is not tombstoned (the listing is incomplete).
    let admin = admin(&moto.url());
    let accounts = admin.list_accounts().send().await.unwrap();
    let removed = accounts
        .accounts()
        .iter()
        .find_map(|a| a.id().filter(|id| *id != MASTER))
        .unwrap()
        .to_owned();
    admin
        .remove_account_from_organization()
        .account_id(&removed)
        .send()
        .await
        .unwrap();
    faults.calls.store(0, Ordering::SeqCst);
    faults.fail_once_at.store(0, Ordering::SeqCst);
    faults.throttle_from.store(4, Ordering::SeqCst);
    let before = last_seq(&b).await;
    let r = run_sweep(&b.js, &b.stream, &src, &opts).await.unwrap();
    assert_eq!((r.status, r.exit_code()), (SweepStatus::Partial, 2));
    assert_eq!((r.counts.deleted, r.counts.discovered), (0, 0));
    // Accounts under the throttled parents are still found through ListAccounts + ListParents.
    assert_eq!(r.counts.seen, 60);
    let error = r.error.clone().unwrap();
    assert!(error.contains("TooManyRequestsException"), "{error}");
    let new = since(&b, before).await;
    assert!(asset_events(&new).is_empty());
    assert_eq!(new.last().unwrap().sweep().status, SweepStatus::Partial);
    // Each throttled page was tried `max_attempts` (3) times.
    let throttled = faults.calls.load(Ordering::SeqCst) - 3;
    assert_eq!(throttled % 3, 0, "{throttled} calls after the third");
    assert!(first_calls >= 9, "{first_calls}");
}
