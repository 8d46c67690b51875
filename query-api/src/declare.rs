//! `POST /api/v1/monitoring`: declares a monitoring endpoint by publishing an event (the API
//! never writes the read model directly; the embedded projector applies the event like any other).
//!
//! The write is conditional, like a collector's: the subject's newest event is read, the
//! declaration is compared by content hash, and a `discovered` or `changed` event is published
//! with `Nats-Expected-Last-Subject-Sequence` = that event's sequence. A racing writer makes the
//! server refuse it (409).
//!
//! Both the read and the publish ride through a stream leader change with the workspace's one
//! retry machinery ([`inventory_bus::publish_settled`]), within a budget that ends before the
//! request's own timeout ([`write_retry`]); when it runs out the answer is 503 with
//! `Retry-After`, and the declaration may be sent again safely.

use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use inventory_bus::{BusError, RetryPolicy, Settled};
use inventory_schemas::{
    decide_upsert, encode_asset, hash::asset_content_hash, Asset, AssetKey, AssetStatus, ChainLink,
    EventType, LastLink, Provenance,
};
use serde_json::Value;
use tracing::{info, warn};

use crate::auth::Principal;
use crate::model::{DeclareMonitoring, DeclareOutcome, Declared};
use crate::problem::{ErrorCode, ServiceError};

/// CloudEvents `source` of events written through the API.
pub const API_SOURCE: &str = "/api";

/// Where declarations are published.
#[derive(Clone)]
pub struct Publisher {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    retry: RetryPolicy,
}

impl Publisher {
    /// A publisher on `client`, writing to `stream` (the `INVENTORY` stream), retrying within
    /// [`write_retry`] of the defaults.
    pub fn new(client: async_nats::Client, stream: jetstream::stream::Stream) -> Self {
        let js = jetstream::new(client.clone());
        Self {
            client,
            js,
            stream,
            retry: write_retry(
                RetryPolicy::default(),
                crate::limits::Limits::DEFAULT_REQUEST_TIMEOUT,
            ),
        }
    }

    /// Retries a declaration's NATS read and publish with `retry` (see [`write_retry`]).
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// What is left of a request's time for its answer once NATS writes give up.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// Longest wait for a lost NATS connection to come back (to another server of the cluster)
/// before a declaration is answered 503 at once.
const RECONNECT_GRACE: Duration = Duration::from_secs(2);

/// The retry policy of API writes: `NATS_RETRY_SECS`, but ending [`ANSWER_MARGIN`] before the
/// request's timeout (`INVENTORY_REQUEST_TIMEOUT`), and at least one second, so a client is
/// answered 503 with `Retry-After` rather than 504.
pub fn write_retry(nats: RetryPolicy, request_timeout: Duration) -> RetryPolicy {
    let within = request_timeout
        .saturating_sub(ANSWER_MARGIN)
        .max(Duration::from_secs(1));
    RetryPolicy {
        budget: nats.budget.min(within),
        ..nats
    }
}

/// The newest message of a subject, as far as a declaration cares.
#[derive(Debug, Clone)]
pub struct Last {
    /// What it is (the chain link every writer reads the same way).
    pub link: LastLink,
    /// The document of a live asset state (`null` otherwise), answered when nothing changes.
    pub data: Value,
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    if inventory_schemas::key::is_token_safe(name) {
        Ok(())
    } else {
        Err(ServiceError::invalid_body(
            "name",
            "name must be 1-128 characters of [A-Za-z0-9_-] and must not start with \"_h\"",
        ))
    }
}

fn check_url(raw: &str) -> Result<String, ServiceError> {
    let bad = |why: &str| ServiceError::invalid_body("url", format!("url {why}"));
    if raw.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let u = url::Url::parse(raw).map_err(|e| bad(&format!("is not an absolute URL ({e})")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("must use http or https"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(u.to_string())
}

fn check_labels(labels: &std::collections::BTreeMap<String, String>) -> Result<(), ServiceError> {
    if labels.len() > 64 {
        return Err(ServiceError::invalid_body("labels", "at most 64 labels"));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 128
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
        if !key_ok {
            return Err(ServiceError::invalid_body(
                "labels",
                "label keys must be 1-128 characters of [A-Za-z0-9_./-]",
            ));
        }
        if v.chars().count() > 256 || v.chars().any(char::is_control) {
            return Err(ServiceError::invalid_body(
                "labels",
                "label values must be at most 256 characters without control characters",
            ));
        }
    }
    Ok(())
}

/// Validates a declaration and builds the asset it describes.
pub fn declared_asset(
    req: &DeclareMonitoring,
    principal: &Principal,
) -> Result<Asset, ServiceError> {
    check_name(&req.name)?;
    let url = check_url(&req.url)?;
    check_labels(&req.labels)?;
    let provider = req.kind.provider();
    Ok(Asset {
        id: req.name.clone(),
        provider: provider.to_owned(),
        kind: "endpoint".to_owned(),
        name: req.name.clone(),
        status: AssetStatus::Declared,
        org_path: Vec::new(),
        region_residency: Vec::new(),
        url: Some(url.clone()),
        auth_mode: None,
        labels: req.labels.clone(),
        raw: serde_json::json!({ "declared": { "kind": provider, "name": req.name, "url": url } }),
        provenance: Provenance {
            collector: "api".to_owned(),
            collector_version: env!("CARGO_PKG_VERSION").to_owned(),
            api: "POST /api/v1/monitoring".to_owned(),
            request_ids: Vec::new(),
            pages: 0,
            principal: Some(principal.id.clone()),
        },
    })
}

fn unavailable(e: &dyn std::fmt::Display) -> ServiceError {
    warn!(error = %e, "NATS request failed");
    ServiceError::new(
        ErrorCode::Unavailable,
        "NATS is unreachable; the declaration was not recorded, retry later",
    )
}

/// Reads the newest message of `subject` (`None`: the subject has none), retrying within the
/// publisher's budget.
pub async fn read_last(publisher: &Publisher, subject: &str) -> Result<Option<Last>, ServiceError> {
    read_last_within(publisher, subject, publisher.retry.backoff()).await
}

async fn read_last_within(
    publisher: &Publisher,
    subject: &str,
    backoff: inventory_bus::Backoff,
) -> Result<Option<Last>, ServiceError> {
    let Some(msg) = inventory_bus::read_retrying(subject, backoff, || {
        inventory_bus::last_on_subject(&publisher.stream, subject)
    })
    .await
    .map_err(|e| unavailable(&e))?
    else {
        return Ok(None);
    };
    // The same rule as the collectors' (and `inventory verify`'s): what is not a valid event of
    // this subject restarts the chain.
    let decoded = msg.decode();
    if let Err(reason) = &decoded {
        warn!(subject, seq = msg.seq, reason = reason.reason.as_str(), detail = %reason.detail, "newest message of the subject is not its asset's event; declaring anew");
    }
    let link = LastLink::of(msg.seq, decoded.as_ref());
    let data = match (&decoded, link.live()) {
        (Ok(ev), Some(_)) => ev.data_json(),
        _ => Value::Null,
    };
    Ok(Some(Last { link, data }))
}

/// Refuses a declaration of an endpoint a collector observes: a declaration must not overwrite
/// an observation (the two would alternate as `changed` on every sweep).
pub fn check_owner(key: &AssetKey, last: Option<&LastLink>) -> Result<(), ServiceError> {
    match last.and_then(LastLink::live) {
        Some(e) if e.source != API_SOURCE => Err(ServiceError::new(
            ErrorCode::Conflict,
            format!(
                "{key} is observed by the collector {}; a declaration cannot override an observation",
                e.source
            ),
        )),
        _ => Ok(()),
    }
}

/// Publishes `asset` as a `ty` event linked to `prev`; returns the stream sequence.
pub async fn publish_linked(
    publisher: &Publisher,
    ty: EventType,
    asset: &Asset,
    prev: &ChainLink,
) -> Result<u64, ServiceError> {
    publish_within(publisher, ty, asset, prev, publisher.retry.backoff()).await
}

async fn publish_within(
    publisher: &Publisher,
    ty: EventType,
    asset: &Asset,
    prev: &ChainLink,
    backoff: inventory_bus::Backoff,
) -> Result<u64, ServiceError> {
    let event = encode_asset(ty, asset, API_SOURCE, Utc::now(), prev).map_err(|e| {
        ServiceError::invalid_body("name", format!("cannot encode the endpoint: {e}"))
    })?;
    match inventory_bus::publish_settled(&publisher.js, &publisher.stream, &event, backoff, false)
        .await
    {
        Ok(Settled::Stored(seq)) => Ok(seq),
        Ok(Settled::Conflict) => Err(ServiceError::new(
            ErrorCode::Conflict,
            format!(
                "another writer changed {} after it was read (expected its last event at sequence {}); read it again and retry",
                event.key.as_deref().unwrap_or_default(),
                prev.prevseq
            ),
        )),
        Err(e) => Err(unavailable(&e as &BusError)),
    }
}

/// Waits up to [`RECONNECT_GRACE`] for the NATS connection (a client whose server died moves to
/// another of the cluster within milliseconds); `false` when it is still down.
async fn connected(client: &async_nats::Client) -> bool {
    use async_nats::connection::State;
    let until = tokio::time::Instant::now() + RECONNECT_GRACE;
    while client.connection_state() != State::Connected {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Declares a monitoring endpoint on behalf of `principal` (a writer).
pub async fn declare(
    publisher: Option<&Publisher>,
    principal: &Principal,
    req: &DeclareMonitoring,
) -> Result<Declared, ServiceError> {
    let asset = declared_asset(req, principal)?;
    let publisher = publisher.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::Unavailable,
            "this replica has no NATS connection for writes",
        )
    })?;
    if !connected(&publisher.client).await {
        return Err(unavailable(&"not connected"));
    }
    // One budget for the read and the publish.
    let backoff = publisher.retry.backoff();
    let key: AssetKey = asset
        .key()
        .map_err(|e| ServiceError::invalid_body("name", e.to_string()))?;
    let subject = key.subject();
    let hash = asset_content_hash(&asset)
        .map_err(|e| ServiceError::internal("hashing the endpoint", &e))?;
    let last = read_last_within(publisher, &subject, backoff).await?;
    let link = last.as_ref().map(|l| &l.link);
    check_owner(&key, link)?;
    let data = serde_json::to_value(&asset)
        .map_err(|e| ServiceError::internal("encoding the endpoint", &e))?;
    let Some((ty, prev)) = decide_upsert(&hash, link) else {
        let (seq, data) = match last {
            Some(Last { link, data }) => (link.seq(), data),
            None => (0, data),
        };
        info!(key = %key, seq, principal = %principal.id, "declaration unchanged; nothing published");
        return Ok(Declared {
            key: key.to_string(),
            subject,
            seq,
            outcome: DeclareOutcome::Unchanged,
            contenthash: hash,
            data,
        });
    };
    let seq = publish_within(publisher, ty, &asset, &prev, backoff).await?;
    info!(key = %key, seq, prevseq = prev.prevseq, event = ty.short(), principal = %principal.id, "endpoint declared");
    Ok(Declared {
        key: key.to_string(),
        subject,
        seq,
        outcome: if ty == EventType::Discovered {
            DeclareOutcome::Discovered
        } else {
            DeclareOutcome::Changed
        },
        contenthash: hash,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::model::MonitoringKind;

    fn req(name: &str, url: &str) -> DeclareMonitoring {
        DeclareMonitoring {
            kind: MonitoringKind::Prometheus,
            name: name.into(),
            url: url.into(),
            labels: Default::default(),
        }
    }

    fn writer() -> Principal {
        Principal {
            role: Role::Writer,
            id: "token:0123abcd".into(),
        }
    }

    #[test]
    fn api_writes_give_up_before_the_request_times_out() {
        let nats = RetryPolicy::with_budget(Duration::from_secs(30));
        assert_eq!(
            write_retry(nats, Duration::from_secs(30)).budget,
            Duration::from_secs(25)
        );
        assert_eq!(
            write_retry(nats, Duration::from_secs(600)).budget,
            Duration::from_secs(30)
        );
        assert_eq!(
            write_retry(nats, Duration::from_secs(2)).budget,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn builds_a_declared_endpoint_with_the_principal_but_no_token() {
        let a = declared_asset(&req("prom-main", "http://prom:9090"), &writer()).unwrap();
        assert_eq!(
            a.key().unwrap().to_string(),
            "prometheus/endpoint/prom-main"
        );
        assert_eq!(
            a.key().unwrap().subject(),
            "inventory.asset.prometheus.endpoint.prom-main"
        );
        assert_eq!(a.status, AssetStatus::Declared);
        assert_eq!(a.url.as_deref(), Some("http://prom:9090/"));
        assert_eq!(a.provenance.collector, "api");
        assert_eq!(a.provenance.principal.as_deref(), Some("token:0123abcd"));
    }

    #[test]
    fn refuses_bad_names_urls_and_labels_naming_the_field() {
        for (r, field) in [
            (req("a.b", "http://x"), "name"),
            (req("", "http://x"), "name"),
            (req("_hx", "http://x"), "name"),
            (req("ok", "prom:9090"), "url"),
            (req("ok", "/relative"), "url"),
            (req("ok", "ftp://x/"), "url"),
            (req("ok", "http://user:pw@x/"), "url"),
        ] {
            let e = declared_asset(&r, &writer()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidBody);
            assert_eq!(e.parameter.as_deref(), Some(field), "{}", e.detail);
        }
        let mut r = req("ok", "https://x");
        r.labels.insert("bad key".into(), "v".into());
        assert_eq!(
            declared_asset(&r, &writer())
                .unwrap_err()
                .parameter
                .as_deref(),
            Some("labels")
        );
    }

    fn last(seq: u64, source: &str, deleted: bool) -> LastLink {
        LastLink::Event(inventory_schemas::LastEvent {
            seq,
            chainhash: "c".into(),
            contenthash: "h".into(),
            source: source.into(),
            deleted,
            id: "prom-main".into(),
            provider: "prometheus".into(),
            kind: "endpoint".into(),
            name: "prom-main".into(),
        })
    }

    #[test]
    fn declarations_never_override_a_collector_observation() {
        let key = AssetKey::parse("prometheus/endpoint/prom-main").unwrap();
        let observed = last(4, "/collectors/prometheus/prom-main", false);
        let e = check_owner(&key, Some(&observed)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(
            e.detail.contains("/collectors/prometheus/prom-main"),
            "{}",
            e.detail
        );
        assert!(check_owner(&key, Some(&last(4, API_SOURCE, false))).is_ok());
        let tombstone = last(9, "/collectors/prometheus/prom-main", true);
        assert!(check_owner(&key, Some(&tombstone)).is_ok());
        assert!(check_owner(&key, Some(&LastLink::Unreadable { seq: 3 })).is_ok());
        assert!(check_owner(&key, None).is_ok());
    }
}
