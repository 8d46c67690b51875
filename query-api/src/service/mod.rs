//! The service layer: one module per route group of [`crate::api`], each taking validated values
//! ([`crate::params`]) and answering from the read model; and what they share: a page of assets
//! in key order ([`page`]) and the resolution of a point of the stream ([`resolve_point`]).

pub mod assets;
pub mod collectors;
pub mod feed;
pub mod health;
pub mod history;
pub mod monitoring;
pub mod rejected;

use inventory_projector::current::Snapshot;
use inventory_projector::history::{self as read_history, Point};
use inventory_projector::read::{AssetQuery, AssetRow};

use crate::cursor;
use crate::fast_json::FastJson;
use crate::model::{AssetDoc, AssetPage, StatusFilter};
use crate::problem::{ErrorCode, ServiceError};
use crate::state::AppState;

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

/// Resolves a point (the parameter `param`) to a stream sequence the snapshot covers.
pub(crate) fn resolve_point(
    conn: &inventory_projector::Connection,
    snap: &Snapshot,
    param: &'static str,
    point: Point,
) -> Result<u64, PointError> {
    let seq = read_history::resolve(conn, point)?;
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
pub(crate) async fn page(
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
                    all.extend(read_history::list_assets_at(snap, q, seq)?);
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

/// One query per provider (each ordered by key, merged by [`page`]) of assets of `kinds`, for
/// the grouped listings (`/accounts`, `/monitoring`).
pub(crate) fn per_provider<'a>(
    providers: impl Iterator<Item = &'a str>,
    kinds: &[&str],
    status: Option<StatusFilter>,
    after: Option<String>,
    limit: u32,
) -> Vec<AssetQuery> {
    let status = status.map(|s| s.as_str().to_owned());
    providers
        .map(|pr| AssetQuery {
            provider: Some(pr.to_owned()),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            status: status.clone(),
            after: after.clone(),
            limit,
            ..AssetQuery::default()
        })
        .collect()
}

/// Whether a listing of the current view may walk the whole estate (a filter on state).
fn queries_scan(queries: &[AssetQuery]) -> bool {
    queries
        .iter()
        .any(|q| q.status.is_some() || q.name_contains.is_some() || q.matcher().on_tags())
}
