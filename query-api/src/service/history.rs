//! History ([`crate::api`]'s `history.rs`): an asset's versions, the changes in a window, and
//! the diff between two points. The live change feed is [`super::feed`].

use inventory_projector::history::{self, ChangeQuery, DiffKind, Point, VersionRow};
use inventory_projector::read::AssetQuery;
use inventory_schemas::AssetKey;

use super::{resolve_point, PointError};
use crate::cursor;
use crate::fast_json::FastJson;
use crate::model::{
    AssetDoc, ChangeDoc, ChangePage, ChangeType, DiffChange, DiffCountsDoc, DiffItem, DiffPage,
    Document,
};
use crate::params::shown;
use crate::patch::asset_patch;
use crate::problem::{ErrorCode, ServiceError};
use crate::state::AppState;

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

/// Which asset events `GET /api/v1/changes` and the change feed pass.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub ty: Option<ChangeType>,
}

impl ChangeFilter {
    /// The read model's query of these changes (no window, no limit).
    pub(crate) fn query(self) -> ChangeQuery {
        ChangeQuery {
            provider: self.provider,
            kinds: self.kind.into_iter().collect(),
            types: self.ty.map(|t| t.as_str().to_owned()).into_iter().collect(),
            ..ChangeQuery::default()
        }
    }
}

/// A page of `rows` (`limit` + 1 read: one more means a next page), read at checkpoint `seq`;
/// the cursor is the last sequence returned.
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

/// `GET /api/v1/assets/{key}/history`: `limit` of the asset's events before the sequence
/// `before`, newest first.
pub async fn history(
    state: &AppState,
    key: AssetKey,
    limit: u32,
    before: Option<u64>,
) -> Result<FastJson<ChangePage>, ServiceError> {
    let key = key.to_string();
    let k = key.clone();
    let (rows, seq) = state
        .pool
        .run_at(move |_, snap| Ok((history::history(snap, &k, before, limit + 1)?, snap.seq())))
        .await?;
    if rows.is_empty() && before.is_none() {
        return Err(ServiceError::new(
            ErrorCode::NotFound,
            format!("no asset with key {:?} in the read model", shown(&key)),
        ));
    }
    Ok(change_page(rows, limit, seq))
}

/// `GET /api/v1/changes`: `limit` asset events after `since` (and after the sequence `after`)
/// up to `until`, in stream order.
pub async fn changes(
    state: &AppState,
    filter: ChangeFilter,
    since: Option<Point>,
    until: Option<Point>,
    limit: u32,
    after: Option<u64>,
) -> Result<FastJson<ChangePage>, ServiceError> {
    let mut q = ChangeQuery {
        limit: limit + 1,
        ..filter.query()
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
            q.after = since.unwrap_or(0).max(after.unwrap_or(0));
            q.until = until;
            Ok(Ok((history::changes(snap, &q)?, snap.seq())))
        })
        .await?
        .map_err(PointError::into_service)?;
    Ok(change_page(rows, limit, seq))
}

/// `GET /api/v1/diff`: `limit` of the assets added, removed and changed between two points,
/// after the key `after`, of one provider or kind.
pub async fn diff(
    state: &AppState,
    from: Point,
    to: Point,
    provider: Option<String>,
    kind: Option<String>,
    limit: u32,
    after: Option<String>,
) -> Result<DiffPage, ServiceError> {
    let q = AssetQuery {
        provider,
        kinds: kind.into_iter().collect(),
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
        .await?
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
