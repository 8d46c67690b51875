//! The history side of the service layer: an asset's versions, changes in a window, the diff
//! between two points, and the live change feed (SSE).

pub mod feed;
pub mod frame;

use inventory_projector::history::{self, ChangeQuery, DiffKind, Point, VersionRow};
use inventory_projector::read::{self, AssetQuery};
use inventory_schemas::AssetKey;

use crate::cursor;
use crate::fast_json::FastJson;
use crate::model::{
    AssetDoc, ChangeDoc, ChangePage, ChangeType, DiffChange, DiffCountsDoc, DiffItem, DiffPage,
    Document, RejectReasonCode, RejectedDoc, RejectedPage,
};
use crate::patch::asset_patch;
use crate::problem::{ErrorCode, ServiceError};
use crate::service::{
    non_empty, parse_cursor, parse_limit, parse_point, resolve_point, truncate, word, PointError,
};
use crate::state::AppState;

pub use feed::{admit as feed_admit, feed, FeedSlot, FeedStart, FEED_RETRY_AFTER};
pub use frame::{FeedItem, Frame};

impl From<VersionRow> for ChangeDoc {
    fn from(v: VersionRow) -> Self {
        let patch = match (v.ty.as_str(), &v.previous) {
            ("deleted", _) | (_, None) => None,
            (_, Some(prev)) => Some(asset_patch(prev, &v.data)),
        };
        Self {
            seq: v.seq,
            key: v.asset_key,
            time: v.observed_at,
            recorded_at: v.recorded_at,
            name: v.name,
            status: v.status,
            source: v.source,
            event_id: v.event_id,
            contenthash: v.contenthash,
            chainhash: v.chainhash,
            prevseq: v.prevseq,
            patch,
            provenance: v.data.get("provenance").cloned(),
            data: v.data,
            ty: v.ty,
        }
    }
}

fn read_failed(e: crate::reads::ReadError) -> ServiceError {
    ServiceError::from(e)
}

/// `GET /api/v1/rejected`: messages the read model did not apply, oldest first, paged by
/// sequence, optionally of one reason.
pub async fn rejected(
    state: &AppState,
    limit: Option<i64>,
    cursor: Option<String>,
    reason: Option<RejectReasonCode>,
) -> Result<RejectedPage, ServiceError> {
    let limit = parse_limit(limit)?;
    let after = parse_seq_cursor(cursor)?.unwrap_or(0);
    let rows = state
        .pool
        .run(move |conn| read::list_rejected(conn, after, limit + 1, reason.map(|r| r.as_str())))
        .await
        .map_err(read_failed)?;
    let more = rows.len() > limit as usize;
    let items: Vec<RejectedDoc> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| RejectedDoc {
            seq: r.seq,
            recorded_at: r.recorded_at,
            // Written by the projector from `RejectReason::as_str`, so always one of the codes.
            reason_code: RejectReasonCode::VALUES
                .iter()
                .position(|v| *v == r.reason_code)
                .and_then(|i| RejectReasonCode::ALL.get(i).copied())
                .unwrap_or(RejectReasonCode::Undecodable),
            subject: r.subject,
            reason: r.reason,
            payload: r.payload,
        })
        .collect();
    Ok(RejectedPage {
        next_cursor: more
            .then(|| items.last().map(|i| i.seq.to_string()))
            .flatten(),
        items,
    })
}

/// A sequence cursor (`next_cursor` of a history or change page).
fn parse_seq_cursor(c: Option<String>) -> Result<Option<u64>, ServiceError> {
    match non_empty(c) {
        None => Ok(None),
        Some(c) => c.parse::<u64>().map(Some).map_err(|_| {
            ServiceError::invalid_parameter(
                "cursor",
                format!(
                    "cursor {:?} is not valid; pass the next_cursor of a previous page",
                    truncate(&c)
                ),
            )
        }),
    }
}

fn parse_key(key: &str) -> Result<String, ServiceError> {
    AssetKey::parse(key).map(|k| k.to_string()).map_err(|_| {
        ServiceError::invalid_parameter(
            "key",
            format!(
                "key must be <provider>/<kind>/<native id>, e.g. aws/account/123456789012 (got {:?})",
                truncate(key)
            ),
        )
    })
}

/// A page of `limit` changes from `rows` (read with one more, to know whether a next page
/// exists); the cursor is the last sequence returned.
/// A page of `rows` (`limit` + 1 read: one more means a next page), read at checkpoint `seq`.
fn change_page(mut rows: Vec<VersionRow>, limit: u32, seq: u64) -> FastJson<ChangePage> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    FastJson {
        body: ChangePage {
            items: rows.into_iter().map(ChangeDoc::from).collect(),
            next_cursor,
        },
        seq,
    }
}

/// `GET /api/v1/assets/{key}/history`: the asset's events, newest first.
pub async fn history(
    state: &AppState,
    key: String,
    limit: Option<i64>,
    cursor: Option<String>,
) -> Result<FastJson<ChangePage>, ServiceError> {
    let k = parse_key(&key)?;
    let limit = parse_limit(limit)?;
    let before = parse_seq_cursor(cursor)?;
    let (rows, seq) = state
        .pool
        .run_at(move |_, snap| Ok((history::history(snap, &k, before, limit + 1)?, snap.seq())))
        .await
        .map_err(read_failed)?;
    if rows.is_empty() && before.is_none() {
        return Err(ServiceError::new(
            ErrorCode::NotFound,
            format!("no asset with key {:?} in the read model", truncate(&key)),
        ));
    }
    Ok(change_page(rows, limit, seq))
}

/// Filters of `GET /api/v1/changes` and its stream, as received.
#[derive(Debug, Clone, Default)]
pub struct ChangeParams {
    pub since: Option<String>,
    pub until: Option<String>,
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub ty: Option<ChangeType>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /api/v1/changes`: asset events after `since` up to `until`, in stream order.
pub async fn changes(
    state: &AppState,
    p: ChangeParams,
) -> Result<FastJson<ChangePage>, ServiceError> {
    let limit = parse_limit(p.limit)?;
    let cursor = parse_seq_cursor(p.cursor)?;
    let since = parse_point("since", p.since)?;
    let until = parse_point("until", p.until)?;
    let mut q = ChangeQuery {
        provider: word("provider", p.provider)?,
        kinds: word("kind", p.kind)?.into_iter().collect(),
        types: p.ty.map(|t| t.as_str().to_owned()).into_iter().collect(),
        limit: limit + 1,
        ..ChangeQuery::default()
    };
    let (rows, seq) = state
        .pool
        .run_at(move |conn, snap| {
            let point = |name, p: Option<Point>| p.map(|p| resolve_point(conn, snap, name, p));
            let since = match point("since", since).transpose() {
                Ok(s) => s,
                Err(e) => return Ok(Err(e)),
            };
            let until = match point("until", until).transpose() {
                Ok(u) => u,
                Err(e) => return Ok(Err(e)),
            };
            q.after = since.unwrap_or(0).max(cursor.unwrap_or(0));
            q.until = until;
            Ok(Ok((history::changes(snap, &q)?, snap.seq())))
        })
        .await
        .map_err(read_failed)?
        .map_err(PointError::into_service)?;
    Ok(change_page(rows, limit, seq))
}

/// Filters of `GET /api/v1/diff`, as received.
#[derive(Debug, Clone, Default)]
pub struct DiffParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// `GET /api/v1/diff`: assets added, removed and changed between two points.
pub async fn diff(state: &AppState, p: DiffParams) -> Result<DiffPage, ServiceError> {
    let limit = parse_limit(p.limit)?;
    let after = parse_cursor(p.cursor)?;
    let required = |name: &'static str, v: Option<String>| {
        parse_point(name, v)?.ok_or_else(|| {
            ServiceError::invalid_parameter(
                name,
                format!("{name} is required: an RFC 3339 time or seq:N"),
            )
        })
    };
    let from = required("from", p.from)?;
    let to = required("to", p.to)?;
    let q = AssetQuery {
        provider: word("provider", p.provider)?,
        kinds: word("kind", p.kind)?.into_iter().collect(),
        after,
        limit: limit + 1,
        ..AssetQuery::default()
    };
    let (from_seq, to_seq, mut rows, counts) = state
        .pool
        .run_at(move |conn, snap| {
            let points = resolve_point(conn, snap, "from", from)
                .and_then(|f| resolve_point(conn, snap, "to", to).map(|t| (f, t)));
            let (f, t) = match points {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            let (rows, counts) = history::diff(snap, &q, f, t)?;
            Ok(Ok((f, t, rows, counts)))
        })
        .await
        .map_err(read_failed)?
        .map_err(PointError::into_service)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| cursor::encode(&r.key))
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| {
            let patch = match (&r.kind, &r.from, &r.to) {
                (DiffKind::Changed, Some(a), Some(b)) => Some(asset_patch(
                    &Document(a.data.clone()).value(),
                    &Document(b.data.clone()).value(),
                )),
                _ => None,
            };
            DiffItem {
                key: r.key,
                change: match r.kind {
                    DiffKind::Added => DiffChange::Added,
                    DiffKind::Removed => DiffChange::Removed,
                    DiffKind::Changed => DiffChange::Changed,
                },
                from: r.from.map(AssetDoc::from),
                to: r.to.map(AssetDoc::from),
                patch,
            }
        })
        .collect();
    Ok(DiffPage {
        from_seq,
        to_seq,
        counts: DiffCountsDoc {
            added: counts.added,
            removed: counts.removed,
            changed: counts.changed,
        },
        items,
        next_cursor,
    })
}

/// Where a feed starts: after `Last-Event-ID` if the client sent one (a reconnect), else after
/// `since`, else at the changes applied from now on.
pub async fn feed_start(
    state: &AppState,
    last_event_id: Option<String>,
    since: Option<String>,
) -> Result<FeedStart, ServiceError> {
    // Read first: a read model switched meanwhile ends the feed before it sends anything.
    let generation = state.pool.generation();
    if let Some(id) = non_empty(last_event_id) {
        let after = id.trim().parse::<u64>().map_err(|_| {
            ServiceError::invalid_parameter(
                "Last-Event-ID",
                format!(
                    "Last-Event-ID must be the id (a stream sequence) of an event of this feed (got {:?})",
                    truncate(&id)
                ),
            )
        })?;
        return Ok(FeedStart { after, generation });
    }
    let after = match parse_point("since", since)? {
        None => state.status.borrow().applied_seq,
        Some(p) => state
            .pool
            .run_at(move |conn, snap| Ok(resolve_point(conn, snap, "since", p)))
            .await
            .map_err(read_failed)?
            .map_err(PointError::into_service)?,
    };
    Ok(FeedStart { after, generation })
}

/// Validated filters of a feed.
pub fn feed_filters(p: ChangeParams) -> Result<ChangeQuery, ServiceError> {
    Ok(ChangeQuery {
        provider: word("provider", p.provider)?,
        kinds: word("kind", p.kind)?.into_iter().collect(),
        types: p.ty.map(|t| t.as_str().to_owned()).into_iter().collect(),
        ..ChangeQuery::default()
    })
}
