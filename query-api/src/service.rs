//! The read side of the service layer: validates parameters, queries the read model and shapes
//! pages. Handlers in [`crate::api`] only translate HTTP to these calls.

use std::time::Instant;

use chrono::Utc;
use inventory_projector::current::Snapshot;
use inventory_projector::history::{self, Point};
use inventory_projector::read::{AssetQuery, AssetRow};
use inventory_projector::Status;
use inventory_schemas::AssetKey;

use crate::cursor;
use crate::fast_json::FastJson;
use crate::limits::ReadyBounds;
use crate::model::{
    AccountProvider, AssetDoc, AssetPage, CollectorDoc, CollectorList, MonitoringKind, Readiness,
    StatusFilter,
};
use crate::problem::{ErrorCode, ServiceError};
use crate::state::AppState;

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// Longest `provider` or `kind` filter (as [`inventory_schemas::key::validate_word`]).
pub const MAX_WORD_LEN: usize = 64;
/// What [`word`] accepts (empty: the filter is absent).
pub const WORD_PATTERN: &str = "^[a-z0-9_-]{0,64}$";
/// Longest `name` filter, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// What [`parse_cursor`] accepts: base64url, optionally padded (empty: the first page).
pub const KEY_CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]*=*$";
/// A stream sequence as the sequence cursors and `Last-Event-ID` accept it (empty: absent).
/// Nineteen digits stay below `u64::MAX`; no stream comes near.
pub const SEQ_PATTERN: &str = "^[0-9]{0,19}$";
/// The `seq:N` form of a point ([`parse_point`]); the other form is an RFC 3339 time.
pub use inventory_schemas::SEQ_POINT_PATTERN;
/// An asset key in a path, as [`AssetKey::parse`] accepts it: provider and kind words, and a
/// native id of 1-1024 characters without control characters (the server counts at most
/// 1024 bytes).
pub const KEY_PATTERN: &str =
    "^[a-z0-9_-]{1,64}/[a-z0-9_-]{1,64}/[^\\u0000-\\u001F\\u007F-\\u009F]{1,1024}$";

/// Kinds `/accounts` lists.
pub const ACCOUNT_KINDS: [&str; 3] = ["account", "project", "subscription"];

/// Filters of an asset listing, as received (strings not yet validated).
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub status: Option<StatusFilter>,
    pub name: Option<String>,
    pub include_deleted: Option<bool>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// `as_of`: an RFC 3339 time or `seq:N` (absent: the current view).
    pub as_of: Option<String>,
}

pub(crate) fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// What a parameter must look like, for parameters the framework parses (integers, booleans,
/// enums): used instead of the parser's message, which names types rather than values.
pub fn param_hint(name: &str, reason: &str) -> Option<String> {
    match name {
        "limit" => Some(format!(
            "limit must be an integer between 1 and {MAX_LIMIT}"
        )),
        "include_deleted" => Some("include_deleted must be true or false".to_owned()),
        _ => crate::model::choices_in(reason)
            .map(|values| format!("{name} must be one of {}", values.join(", "))),
    }
}

/// Validates `limit` (default [`DEFAULT_LIMIT`], 1..=[`MAX_LIMIT`]).
pub fn parse_limit(limit: Option<i64>) -> Result<u32, ServiceError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(n) => Err(ServiceError::invalid_parameter(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT} (got {n})"),
        )),
    }
}

/// Decodes `cursor` into the key to start after.
pub fn parse_cursor(c: Option<String>) -> Result<Option<String>, ServiceError> {
    match non_empty(c) {
        None => Ok(None),
        Some(c) => cursor::decode(&c).map(Some).map_err(|why| {
            ServiceError::invalid_parameter(
                "cursor",
                format!("cursor is {why}; pass the next_cursor of a previous page"),
            )
        }),
    }
}

pub(crate) fn word(param: &str, value: Option<String>) -> Result<Option<String>, ServiceError> {
    match non_empty(value) {
        None => Ok(None),
        Some(v) => inventory_schemas::key::validate_word("provider", &v)
            .map(|()| Some(v.clone()))
            .map_err(|_| {
                ServiceError::invalid_parameter(
                    param,
                    format!(
                        "{param} must be 1-64 characters of [a-z0-9_-] (got {:?})",
                        truncate(&v)
                    ),
                )
            }),
    }
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses a point of the stream: an RFC 3339 time, or `seq:N`.
pub fn parse_point(param: &str, value: Option<String>) -> Result<Option<Point>, ServiceError> {
    let Some(v) = non_empty(value) else {
        return Ok(None);
    };
    v.parse::<Point>()
        .map(Some)
        .map_err(|e| ServiceError::invalid_parameter(param, format!("{param}: {e}")))
}

/// Why a point cannot be answered yet, if so: a sequence beyond what the read model holds.
#[derive(Debug)]
pub(crate) enum PointError {
    Store(inventory_projector::StoreError),
    Beyond {
        param: &'static str,
        seq: u64,
        applied: u64,
    },
}

impl From<inventory_projector::StoreError> for PointError {
    fn from(e: inventory_projector::StoreError) -> Self {
        Self::Store(e)
    }
}

impl PointError {
    pub(crate) fn into_service(self) -> ServiceError {
        match self {
            Self::Store(e) => ServiceError::internal("reading the read model", &e),
            // A well-formed point the read model has not reached: no such view (yet).
            Self::Beyond { param, seq, applied } => ServiceError {
                code: ErrorCode::NotFound,
                detail: format!(
                    "{param} seq:{seq} is beyond the newest event the read model holds (seq {applied})"
                ),
                parameter: Some(param.to_owned()),
            },
        }
    }
}

/// Resolves a point to a stream sequence the snapshot covers.
pub(crate) fn resolve_point(
    conn: &inventory_projector::Connection,
    snap: &Snapshot,
    param: &'static str,
    point: Point,
) -> Result<u64, PointError> {
    let seq = history::resolve(conn, point)?;
    let applied = snap.seq();
    if seq > applied {
        return Err(PointError::Beyond {
            param,
            seq,
            applied,
        });
    }
    Ok(seq)
}

/// Fetches one page: the union of `queries` (each ordered by key), merged, `limit` items, of
/// the current view or (`at`) the view at a point of the stream; and the checkpoint it was read
/// at. One more row than the limit is read to know whether a next page exists.
async fn page(
    state: &AppState,
    queries: Vec<AssetQuery>,
    limit: u32,
    at: Option<Point>,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let queries: Vec<AssetQuery> = queries
        .into_iter()
        .map(|q| AssetQuery {
            limit: limit + 1,
            ..q
        })
        .collect();
    let (rows, as_of_seq, seq) = match at {
        // The current view is in memory: a page costs O(limit · log n), answered inline, unless
        // a filter on status or name may have to walk the whole estate (then off the executor).
        None => {
            let snap = state.pool.snapshot();
            let scan = queries_scan(&queries);
            let list = move || {
                let rows: Vec<AssetRow> = queries.iter().flat_map(|q| snap.list(q)).collect();
                (rows, None, snap.seq())
            };
            if scan {
                state.pool.blocking(list).await?
            } else {
                list()
            }
        }
        Some(p) => state
            .pool
            .run_at(move |conn, snap| {
                let seq = match resolve_point(conn, snap, "as_of", p) {
                    Ok(seq) => seq,
                    Err(e) => return Ok(Err(e)),
                };
                let mut all = Vec::new();
                for q in &queries {
                    all.extend(history::list_assets_at(snap, q, seq)?);
                }
                Ok(Ok((all, Some(seq), snap.seq())))
            })
            .await?
            .map_err(PointError::into_service)?,
    };
    let mut rows = rows;
    rows.sort_by(|a, b| a.key().cmp(b.key()));
    rows.dedup_by(|a, b| a.key() == b.key());
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| cursor::encode(r.key()))
    } else {
        None
    };
    Ok(FastJson {
        body: AssetPage {
            items: rows.into_iter().map(AssetDoc::from).collect(),
            next_cursor,
            as_of_seq,
        },
        seq,
    })
}

/// Whether a listing of the current view may walk the whole estate (a filter on state).
fn queries_scan(queries: &[AssetQuery]) -> bool {
    queries
        .iter()
        .any(|q| q.status.is_some() || q.name_contains.is_some())
}

/// `GET /api/v1/assets`.
pub async fn list_assets(
    state: &AppState,
    p: ListParams,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let limit = parse_limit(p.limit)?;
    let after = parse_cursor(p.cursor)?;
    let at = parse_point("as_of", p.as_of)?;
    let name = non_empty(p.name);
    if name
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ServiceError::invalid_parameter(
            "name",
            format!("name must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let q = AssetQuery {
        provider: word("provider", p.provider)?,
        kinds: word("kind", p.kind)?.into_iter().collect(),
        status: p.status.map(|s| s.as_str().to_owned()),
        name_contains: name,
        include_deleted: p.include_deleted.unwrap_or(false),
        after,
        limit,
    };
    page(state, vec![q], limit, at).await
}

/// `GET /api/v1/accounts`: AWS accounts, GCP projects, Azure subscriptions.
pub async fn list_accounts(
    state: &AppState,
    provider: Option<AccountProvider>,
    p: ListParams,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let limit = parse_limit(p.limit)?;
    let after = parse_cursor(p.cursor)?;
    let at = parse_point("as_of", p.as_of)?;
    let status = p.status.map(|s| s.as_str().to_owned());
    let queries = AccountProvider::VALUES
        .iter()
        .filter(|pr| provider.is_none_or(|want| want.as_str() == **pr))
        .map(|pr| AssetQuery {
            provider: Some((*pr).to_owned()),
            kinds: ACCOUNT_KINDS.iter().map(|k| (*k).to_owned()).collect(),
            status: status.clone(),
            after: after.clone(),
            limit,
            ..AssetQuery::default()
        })
        .collect();
    page(state, queries, limit, at).await
}

/// `GET /api/v1/monitoring`: Prometheus and Grafana endpoints.
pub async fn list_monitoring(
    state: &AppState,
    kind: Option<MonitoringKind>,
    p: ListParams,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let limit = parse_limit(p.limit)?;
    let after = parse_cursor(p.cursor)?;
    let at = parse_point("as_of", p.as_of)?;
    let status = p.status.map(|s| s.as_str().to_owned());
    let queries = MonitoringKind::VALUES
        .iter()
        .filter(|pr| kind.is_none_or(|want| want.provider() == **pr))
        .map(|pr| AssetQuery {
            provider: Some((*pr).to_owned()),
            kinds: vec!["endpoint".to_owned()],
            status: status.clone(),
            after: after.clone(),
            limit,
            ..AssetQuery::default()
        })
        .collect();
    page(state, queries, limit, at).await
}

/// `GET /api/v1/assets/{key}` (deleted assets included, with `deleted_at`).
pub async fn get_asset(
    state: &AppState,
    key: String,
    as_of: Option<String>,
) -> Result<FastJson<AssetDoc>, ServiceError> {
    let at = parse_point("as_of", as_of)?;
    let parsed = AssetKey::parse(&key).map_err(|_| {
        ServiceError::invalid_parameter(
            "key",
            format!(
                "key must be <provider>/<kind>/<native id>, e.g. aws/account/123456789012 (got {:?})",
                truncate(&key)
            ),
        )
    })?;
    let k = parsed.to_string();
    let (row, seq) = match at {
        None => {
            let snap = state.pool.snapshot();
            (snap.get(&k), snap.seq())
        }
        Some(p) => state
            .pool
            .run_at(move |conn, snap| {
                Ok(match resolve_point(conn, snap, "as_of", p) {
                    Ok(at) => Ok((history::get_asset_at(snap, &k, at)?, snap.seq())),
                    Err(e) => Err(e),
                })
            })
            .await?
            .map_err(PointError::into_service)?,
    };
    let row = row.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::NotFound,
            match at {
                None => format!("no asset with key {:?} in the read model", truncate(&key)),
                Some(_) => format!(
                    "no asset with key {:?} had been recorded at as_of",
                    truncate(&key)
                ),
            },
        )
    })?;
    Ok(FastJson {
        body: AssetDoc::from(row),
        seq,
    })
}

/// `GET /api/v1/collectors`.
pub async fn collectors(state: &AppState) -> Result<CollectorList, ServiceError> {
    let rows = state.pool.snapshot().sweeps();
    let now = Utc::now();
    let stale_after =
        chrono::Duration::from_std(state.sweep_interval * 2).unwrap_or(chrono::Duration::MAX);
    Ok(CollectorList {
        items: rows
            .into_iter()
            .map(|r| CollectorDoc::from_row(r, now, stale_after))
            .collect(),
        expected_interval_seconds: state.sweep_interval.as_secs(),
    })
}

/// `GET /readyz`: ready once the projector has caught up with the stream's tip at start, as long
/// as it keeps up: not ready while it lags more than `bounds.max_lag` events, or has applied
/// nothing for `bounds.stall_after` while the stream holds newer events, or has not reached the
/// stream for `bounds.stall_after` (then it cannot tell how far behind it is). `now` is the
/// time of the probe.
pub fn readiness(
    status: &Status,
    bounds: &ReadyBounds,
    now: Instant,
) -> Result<Readiness, ServiceError> {
    if let Some(why) = &status.stream_changed {
        return Err(ServiceError::new(
            ErrorCode::NotReady,
            format!("rebuilding the read model from scratch: {why}"),
        ));
    }
    if let Some(why) = &status.failed {
        return Err(ServiceError::new(
            ErrorCode::NotReady,
            format!("the projector stopped: {why}"),
        ));
    }
    if !status.caught_up {
        let detail = if status.tip_at_start == 0 && status.applied_seq == 0 {
            "the projector is starting (connecting to the stream)".to_owned()
        } else {
            format!(
                "the projector is catching up: applied {} of {} events present at start",
                status.applied_seq, status.tip_at_start
            )
        };
        return Err(ServiceError::new(ErrorCode::NotReady, detail));
    }
    let lag = status.lag();
    if bounds.max_lag > 0 && lag > bounds.max_lag {
        return Err(ServiceError::new(
            ErrorCode::NotReady,
            format!(
                "the projector lags {lag} events behind the stream (applied {} of {}), more than \
                 INVENTORY_READY_MAX_LAG={}",
                status.applied_seq, status.stream_last_seq, bounds.max_lag
            ),
        ));
    }
    let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
    let stall = bounds.stall_after;
    if !stall.is_zero() {
        if let Some(unseen) = since(status.stream_seen_at).filter(|d| *d > stall) {
            return Err(ServiceError::new(
                ErrorCode::NotReady,
                format!(
                    "the projector has not reached the stream for {}s (INVENTORY_READY_STALL_AFTER={}s): \
                     the read model may be behind it (applied seq {})",
                    unseen.as_secs(),
                    stall.as_secs(),
                    status.applied_seq
                ),
            ));
        }
        if let Some(idle) = since(status.progressed_at).filter(|d| lag > 0 && *d > stall) {
            return Err(ServiceError::new(
                ErrorCode::NotReady,
                format!(
                    "the projector is stalled: it has applied nothing for {}s while the stream \
                     holds {lag} newer events (INVENTORY_READY_STALL_AFTER={}s)",
                    idle.as_secs(),
                    stall.as_secs()
                ),
            ));
        }
    }
    debug_assert!(status.is_ready());
    Ok(Readiness {
        ready: true,
        applied_seq: status.applied_seq,
        tip_at_start: status.tip_at_start,
        lag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(parse_limit(Some(1)).unwrap(), 1);
        assert_eq!(parse_limit(Some(1000)).unwrap(), 1000);
        for bad in [0, -1, 1001] {
            let e = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(e.parameter.as_deref(), Some("limit"));
            assert!(e.detail.contains("between 1 and 1000"), "{}", e.detail);
        }
    }

    fn readiness(s: &Status) -> Result<Readiness, ServiceError> {
        super::readiness(s, &ReadyBounds::default(), Instant::now())
    }

    #[test]
    fn readiness_turns_unready_when_stalled_or_lagging_and_back() {
        let bounds = ReadyBounds {
            stall_after: Duration::from_secs(10),
            max_lag: 100,
        };
        let t0 = Instant::now();
        let mut s = Status {
            caught_up: true,
            applied_seq: 50,
            tip_at_start: 50,
            stream_last_seq: 50,
            progressed_at: Some(t0),
            stream_seen_at: Some(t0),
            ..Status::default()
        };
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(super::readiness(&s, &bounds, at(5)).is_ok());
        // Current, and nothing new: idle for long is not a stall.
        s.stream_seen_at = Some(at(100));
        assert!(super::readiness(&s, &bounds, at(105)).is_ok());
        // Newer events and no progress for more than the bound: stalled.
        s.stream_last_seq = 60;
        let e = super::readiness(&s, &bounds, at(105)).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotReady);
        assert!(
            e.detail.contains("stalled") && e.detail.contains("10 newer"),
            "{}",
            e.detail
        );
        // Progress again: ready.
        s.applied_seq = 55;
        s.progressed_at = Some(at(104));
        assert!(super::readiness(&s, &bounds, at(105)).is_ok());
        // The stream out of reach for longer than the bound.
        let e = super::readiness(&s, &bounds, at(111)).unwrap_err();
        assert!(e.detail.contains("not reached the stream"), "{}", e.detail);
        // Lag beyond the bound, even while progressing.
        s.stream_seen_at = Some(at(111));
        s.progressed_at = Some(at(111));
        s.stream_last_seq = 156;
        let e = super::readiness(&s, &bounds, at(111)).unwrap_err();
        assert!(e.detail.contains("lags 101 events"), "{}", e.detail);
        s.stream_last_seq = 155;
        assert_eq!(super::readiness(&s, &bounds, at(111)).unwrap().lag, 100);
        // Zero bounds: neither check.
        let off = ReadyBounds {
            stall_after: Duration::ZERO,
            max_lag: 0,
        };
        s.stream_last_seq = 1_000_000;
        assert!(super::readiness(&s, &off, at(10_000)).is_ok());
    }

    #[test]
    fn readiness_reports_why_not() {
        let mut s = Status::default();
        assert!(readiness(&s).unwrap_err().detail.contains("starting"));
        s.tip_at_start = 10;
        s.applied_seq = 4;
        assert!(readiness(&s)
            .unwrap_err()
            .detail
            .contains("applied 4 of 10"));
        s.caught_up = true;
        s.applied_seq = 10;
        s.stream_last_seq = 12;
        assert_eq!(readiness(&s).unwrap().lag, 2);
        s.failed = Some("disk full".into());
        assert!(readiness(&s).unwrap_err().detail.contains("disk full"));
        s.stream_changed = Some("the stream was recreated".into());
        let detail = readiness(&s).unwrap_err().detail;
        assert!(detail.starts_with("rebuilding"), "{detail}");
        assert!(detail.contains("the stream was recreated"), "{detail}");
    }
}
