//! Queries over the full history (DESIGN §1, "what did it look like then, what changed"): the
//! estate as it stood at any stream sequence, an asset's versions, the changes in a window, and
//! the difference between two points.
//!
//! Which version of which asset answers is decided in memory, from a [`Snapshot`]'s versions
//! index (every asset's event sequences, content fingerprints and tombstones); DuckDB then
//! supplies only the rows and documents of the answer, by sequence (an index lookup each). So a
//! page costs what the page holds, however long the history is. Every asset event row of
//! `events` carries the asset's state after it, so a version's row is all a past view needs.
//!
//! Every function answers at the snapshot's checkpoint: a point beyond it is the caller's to
//! refuse ([`Snapshot::seq`]); nothing committed after the snapshot is read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use duckdb::types::ToSql;
use duckdb::{params_from_iter, Connection};

use crate::current::{Snapshot, Version, Versions};
use crate::read::{event_data, seq_list, state_row, AssetQuery, AssetRow, VERSION_COLUMNS};
use crate::store::{from_micros, ts};
use crate::StoreError;

/// A point of the stream: a sequence, or a time (resolved to the newest event JetStream
/// recorded at or before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Seq(u64),
    Time(DateTime<Utc>),
}

/// The stream sequence of a point: a sequence as is, a time as the newest event recorded at or
/// before it (0 when none was). Rejected events count: a point names a stream position.
pub fn resolve(conn: &Connection, point: Point) -> Result<u64, StoreError> {
    match point {
        Point::Seq(s) => Ok(s),
        Point::Time(t) => {
            let sql = "SELECT greatest(\
                 coalesce((SELECT max(seq) FROM events WHERE recorded_at <= ?1), 0), \
                 coalesce((SELECT max(seq) FROM rejected WHERE recorded_at <= ?1), 0))";
            Ok(conn.query_row(sql, [ts(t)], |r| r.get(0))?)
        }
    }
}

/// The rows of these versions (asset events), by sequence, with their documents if `docs`
/// (`last_seen`: the time of the version's event).
///
/// One query: DuckDB answers an `IN` list of sequences with one scan of `seq` (it does not use
/// the index for lists), so every further lookup costs as much again. A version's document is in
/// its own row unless it is a tombstone (which keeps the document before it): those few are
/// looked up afterwards.
fn rows_by_seq(
    conn: &Connection,
    seqs: impl IntoIterator<Item = u64>,
    docs: bool,
) -> Result<HashMap<u64, AssetRow>, StoreError> {
    let list = seq_list(seqs);
    if list.is_empty() {
        return Ok(HashMap::new());
    }
    let doc = if docs {
        "CASE WHEN e.data_seq = e.seq THEN e.data END"
    } else {
        "NULL"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {VERSION_COLUMNS}, {doc} FROM events e WHERE e.seq IN ({list})"
    ))?;
    let rows = stmt.query_map([], |r| {
        let state = state_row(r, 0)?;
        Ok(AssetRow {
            last_seen: state.last_seen,
            data: r.get::<_, Option<String>>(15)?.map(Into::into),
            state,
        })
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let row = row?;
        out.insert(row.state.version, row);
    }
    if docs {
        let kept: Vec<u64> = out
            .values()
            .filter(|r| r.data.is_none())
            .filter_map(|r| r.state.data_seq)
            .collect();
        let kept = event_data(conn, kept)?;
        for row in out.values_mut().filter(|r| r.data.is_none()) {
            row.data = row.state.data_seq.and_then(|s| kept.get(&s).cloned());
        }
    }
    Ok(out)
}

/// Fills in the documents of rows read without them.
fn with_data(conn: &Connection, mut rows: Vec<AssetRow>) -> Result<Vec<AssetRow>, StoreError> {
    let data = event_data(conn, rows.iter().filter_map(|r| r.state.data_seq))?;
    for row in &mut rows {
        row.data = row.state.data_seq.and_then(|s| data.get(&s).cloned());
    }
    Ok(rows)
}

/// Assets matching `q` as they stood at stream sequence `at` (at most the snapshot's), ordered
/// by key. `last_seen` is the time of each asset's newest event up to `at`.
pub fn list_assets_at(
    conn: &Connection,
    snap: &Snapshot,
    q: &AssetQuery,
    at: u64,
) -> Result<Vec<AssetRow>, StoreError> {
    let limit = q.limit as usize;
    let matches = q.matcher();
    // A filter on name or status applies to the past state, which only DuckDB holds: candidates
    // are then read without documents, in growing chunks, and the page's documents at the end.
    let filtered = q.status.is_some() || q.name_contains.is_some();
    // Every asset ever recorded is in the snapshot (deleted ones too), so its keys in order,
    // each with its version at `at`, are the past view in order.
    let mut keys = snap.keys(q).map(|(k, _)| k);
    let mut out = Vec::new();
    let mut chunk = limit.max(1);
    while out.len() < limit {
        let seqs: Vec<u64> = {
            let versions = snap.versions();
            keys.by_ref()
                .filter_map(|k| versions.at(k, at))
                .filter(|v| q.include_deleted || !v.deleted)
                .map(|v| v.seq)
                .take(chunk)
                .collect()
        };
        if seqs.is_empty() {
            break;
        }
        let exhausted = seqs.len() < chunk;
        let mut rows = rows_by_seq(conn, seqs.iter().copied(), !filtered)?;
        for seq in seqs {
            if let Some(r) = rows.remove(&seq) {
                if matches(&r.state) && out.len() < limit {
                    out.push(r);
                }
            }
        }
        if exhausted {
            break;
        }
        // One scan costs about the same for any list length: grow fast.
        chunk = (chunk * 8).min(65_536);
    }
    if filtered {
        with_data(conn, out)
    } else {
        Ok(out)
    }
}

/// One asset as it stood at stream sequence `at` (deleted included; `None`: not known then).
pub fn get_asset_at(
    conn: &Connection,
    snap: &Snapshot,
    key: &str,
    at: u64,
) -> Result<Option<AssetRow>, StoreError> {
    let Some(v) = snap.versions().at(key, at) else {
        return Ok(None);
    };
    Ok(rows_by_seq(conn, [v.seq], true)?.remove(&v.seq))
}

/// One event of an asset's history, with the asset's state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub seq: u64,
    /// discovered | changed | deleted
    pub ty: String,
    pub asset_key: String,
    pub source: String,
    pub event_id: String,
    pub observed_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub name: String,
    pub status: String,
    pub contenthash: String,
    pub chainhash: String,
    pub prevseq: u64,
    /// The event's own `data` (an asset document, or a tombstone).
    pub data: serde_json::Value,
    /// The asset document before this event (`None` for the first).
    pub previous: Option<serde_json::Value>,
}

/// An event to show, and where the asset's document before it is: `None` for an asset's first
/// event; `Some(None)` when only tombstones came before.
struct Wanted {
    seq: u64,
    previous: Option<Option<u64>>,
}

/// The event holding an asset's document as of version `i` of `all`: the newest non-tombstone
/// at or before it (tombstones keep the document before them).
fn data_seq_at(all: &[Version], i: usize) -> Option<u64> {
    all[..=i].iter().rev().find(|v| !v.deleted).map(|v| v.seq)
}

/// What to fetch for version `i` of the asset whose versions are `all`.
fn wanted(all: &[Version], i: usize) -> Wanted {
    Wanted {
        seq: all[i].seq,
        previous: i.checked_sub(1).map(|p| data_seq_at(all, p)),
    }
}

/// The columns of a [`VersionRow`] over `events e`, in [`version_row`]'s order.
const EVENT_COLUMNS: &str = "e.seq, e.type, e.asset_key, e.source, e.event_id, \
    epoch_us(e.observed_at), epoch_us(e.recorded_at), e.name, e.status, e.contenthash, \
    e.chainhash, e.prevseq, e.data";

/// Reads [`EVENT_COLUMNS`] rows: each event, and its document's text by sequence.
fn event_rows(
    stmt: &mut duckdb::Statement<'_>,
    args: &[Box<dyn ToSql>],
) -> Result<(Vec<VersionRow>, HashMap<u64, String>), StoreError> {
    let mut rows = Vec::new();
    let mut texts = HashMap::new();
    let mapped = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok((
            VersionRow {
                seq: r.get(0)?,
                ty: r.get(1)?,
                asset_key: r.get(2)?,
                source: r.get(3)?,
                event_id: r.get(4)?,
                observed_at: from_micros(r.get(5)?),
                recorded_at: from_micros(r.get(6)?),
                name: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                status: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                contenthash: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                chainhash: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                prevseq: r.get::<_, Option<u64>>(11)?.unwrap_or(0),
                data: serde_json::Value::Null,
                previous: None,
            },
            r.get::<_, String>(12)?,
        ))
    })?;
    for row in mapped {
        let (mut v, text) = row?;
        v.data = parse(&text);
        texts.insert(v.seq, text);
        rows.push(v);
    }
    Ok((rows, texts))
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// `rows` in `wanted`'s order, each with the document before it (`texts`: documents already
/// read; the others are looked up in one query).
fn with_previous(
    conn: &Connection,
    wanted: Vec<Wanted>,
    rows: Vec<VersionRow>,
    texts: &HashMap<u64, String>,
) -> Result<Vec<VersionRow>, StoreError> {
    let missing: Vec<u64> = wanted
        .iter()
        .filter_map(|w| w.previous.flatten())
        .filter(|s| !texts.contains_key(s))
        .collect();
    let before = event_data(conn, missing)?;
    let mut rows: HashMap<u64, VersionRow> = rows.into_iter().map(|v| (v.seq, v)).collect();
    Ok(wanted
        .into_iter()
        .filter_map(|w| {
            let mut v = rows.remove(&w.seq)?;
            v.previous = w.previous.map(|p| {
                p.and_then(|s| {
                    texts
                        .get(&s)
                        .map(|t| parse(t))
                        .or_else(|| before.get(&s).map(|t| parse(t)))
                })
                .unwrap_or(serde_json::Value::Null)
            });
            Some(v)
        })
        .collect())
}

/// An asset's events, newest first, from before `before` (a sequence; `None`: the newest).
pub fn history(
    conn: &Connection,
    snap: &Snapshot,
    key: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<VersionRow>, StoreError> {
    let wanted: Vec<Wanted> = {
        let versions = snap.versions();
        let all = versions.of(key);
        let end = all.partition_point(|v| v.seq < before.unwrap_or(u64::MAX));
        let start = end.saturating_sub(limit as usize);
        (start..end).rev().map(|i| wanted(all, i)).collect()
    };
    let list = seq_list(wanted.iter().map(|w| w.seq));
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq IN ({list})"
    ))?;
    let (rows, texts) = event_rows(&mut stmt, &[])?;
    with_previous(conn, wanted, rows, &texts)
}

/// Filters of a window of changes.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    /// Changes with a sequence above this one.
    pub after: u64,
    /// Changes up to this sequence (inclusive).
    pub until: Option<u64>,
    pub provider: Option<String>,
    pub kinds: Vec<String>,
    /// discovered | changed | deleted (empty: all).
    pub types: Vec<String>,
    pub limit: u32,
}

/// Asset events in stream order matching `q`, up to the snapshot's checkpoint.
///
/// `events` is in stream order, so a range of sequences is a range of row groups: the window is
/// read in growing slices (the first one a few pages wide), each a scan of only its own rows,
/// until the page is full or the range is done.
pub fn changes(
    conn: &Connection,
    snap: &Snapshot,
    q: &ChangeQuery,
) -> Result<Vec<VersionRow>, StoreError> {
    let until = q.until.unwrap_or(u64::MAX).min(snap.seq());
    let limit = q.limit as usize;
    let mut filters = String::new();
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(p) = &q.provider {
        filters.push_str(" AND e.provider = ?");
        args.push(Box::new(p.clone()));
    }
    for (column, values) in [("kind", &q.kinds), ("type", &q.types)] {
        if !values.is_empty() {
            filters.push_str(&format!(" AND e.{column} IN ("));
            for (i, v) in values.iter().enumerate() {
                filters.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Box::new(v.clone()));
            }
            filters.push(')');
        }
    }
    let mut found: Vec<VersionRow> = Vec::new();
    let mut texts = HashMap::new();
    let mut after = q.after;
    let mut window = (limit as u64).saturating_mul(4).max(1024);
    while after < until && found.len() < limit {
        let hi = after.saturating_add(window).min(until);
        // Literal bounds, so that DuckDB prunes row groups by their zone maps.
        let mut stmt = conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq > {after} AND e.seq <= {hi} \
             AND e.asset_key IS NOT NULL{filters} ORDER BY e.seq LIMIT {}",
            limit - found.len()
        ))?;
        let (rows, t) = event_rows(&mut stmt, &args)?;
        found.extend(rows);
        texts.extend(t);
        after = hi;
        window = window.saturating_mul(4);
    }
    let page = {
        let versions = snap.versions();
        found
            .iter()
            .filter_map(|v| {
                let all = versions.of(&v.asset_key);
                let i = all.partition_point(|x| x.seq < v.seq);
                (all.get(i)?.seq == v.seq).then(|| wanted(all, i))
            })
            .collect()
    };
    with_previous(conn, page, found, &texts)
}

/// How an asset differs between two points.
#[derive(Debug, Clone, PartialEq)]
pub enum DiffKind {
    Added,
    Removed,
    Changed,
}

/// One asset that differs between two points, with its versions at each.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    pub key: String,
    pub kind: DiffKind,
    pub from: Option<AssetRow>,
    pub to: Option<AssetRow>,
}

/// Totals of a diff (all pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffCounts {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

/// The asset's live version at `at` (`None`: unknown or deleted then).
fn live_at(versions: &Versions<'_>, key: &str, at: u64) -> Option<Version> {
    versions.at(key, at).filter(|v| !v.deleted)
}

/// Assets (of `q`'s provider and kinds) added, removed or changed (content hash) between
/// sequences `from` and `to`, ordered by key after `q.after`, at most `q.limit`; and the totals.
pub fn diff(
    conn: &Connection,
    snap: &Snapshot,
    q: &AssetQuery,
    from: u64,
    to: u64,
) -> Result<(Vec<DiffRow>, DiffCounts), StoreError> {
    let mut counts = DiffCounts::default();
    let mut page: Vec<(String, Option<u64>, Option<u64>)> = Vec::new();
    {
        // The totals cover every page: walk the whole estate of q's provider and kinds.
        let all = AssetQuery {
            after: None,
            ..q.clone()
        };
        let versions = snap.versions();
        for (key, _) in snap.keys(&all) {
            let (a, b) = (live_at(&versions, key, from), live_at(&versions, key, to));
            let kind = match (a, b) {
                (None, None) => continue,
                (None, Some(_)) => DiffKind::Added,
                (Some(_), None) => DiffKind::Removed,
                (Some(a), Some(b)) if a.content != b.content => DiffKind::Changed,
                (Some(_), Some(_)) => continue,
            };
            match kind {
                DiffKind::Added => counts.added += 1,
                DiffKind::Removed => counts.removed += 1,
                DiffKind::Changed => counts.changed += 1,
            }
            if page.len() < q.limit as usize && q.after.as_deref().is_none_or(|k| &**key > k) {
                page.push((key.to_string(), a.map(|v| v.seq), b.map(|v| v.seq)));
            }
        }
    }
    let seqs = page
        .iter()
        .flat_map(|(_, a, b)| a.iter().chain(b.iter()).copied());
    let mut by_seq = rows_by_seq(conn, seqs, true)?;
    let rows = page
        .into_iter()
        .map(|(key, a, b)| {
            let from = a.and_then(|s| by_seq.remove(&s));
            let to = b.and_then(|s| by_seq.remove(&s));
            let kind = match (&from, &to) {
                (None, _) => DiffKind::Added,
                (_, None) => DiffKind::Removed,
                _ => DiffKind::Changed,
            };
            DiffRow {
                key,
                kind,
                from,
                to,
            }
        })
        .collect();
    Ok((rows, counts))
}
