//! Queries over the full history (DESIGN §1, "what did it look like then, what changed"): the
//! estate as it stood at any stream sequence, an asset's versions, the changes in a window, and
//! the difference between two points.
//!
//! Every asset event row of `events` carries the asset's state after it and `next_seq`, the
//! asset's next event; so the version of an asset at sequence N is its row with
//! `seq <= N < next_seq`, and any past view is one scan with the same filters as the current one.

use chrono::{DateTime, Utc};
use duckdb::types::ToSql;
use duckdb::{params_from_iter, Connection, OptionalExt};

use crate::read::{asset_row, attach_data, event_data, push_filters, AssetQuery, AssetRow};
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

/// Columns of an asset's version (an `events` row `e`), in [`asset_row`]'s order.
const VERSION_COLUMNS: &str = "e.asset_key, e.provider, e.kind, \
    substr(e.asset_key, length(e.provider) + length(e.kind) + 3), e.name, e.status, e.source, \
    epoch_us(e.first_seen), epoch_us(e.last_changed), epoch_us(e.observed_at), \
    CASE WHEN e.type = 'deleted' THEN epoch_us(e.observed_at) END, e.seq, e.contenthash, \
    e.chainhash, e.data_seq";

/// The versions valid at sequence `?` (bound twice).
const AT: &str =
    "e.asset_key IS NOT NULL AND e.seq <= ? AND (e.next_seq IS NULL OR e.next_seq > ?)";

/// Assets matching `q` as they stood at stream sequence `at`, ordered by key. `last_seen` is the
/// time of each asset's newest event up to `at`.
pub fn list_assets_at(
    conn: &Connection,
    q: &AssetQuery,
    at: u64,
) -> Result<Vec<AssetRow>, StoreError> {
    let mut sql = format!("SELECT {VERSION_COLUMNS} FROM events e WHERE {AT}");
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(at), Box::new(at)];
    push_filters(q, "e", "e.type <> 'deleted'", &mut sql, &mut args);
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), asset_row)?
        .collect::<Result<Vec<_>, _>>()?;
    attach_data(conn, rows)
}

/// One asset as it stood at stream sequence `at` (deleted included; `None`: not known then).
pub fn get_asset_at(conn: &Connection, key: &str, at: u64) -> Result<Option<AssetRow>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM events e WHERE {AT} AND e.asset_key = ?");
    let row = conn
        .query_row(&sql, duckdb::params![at, at, key], asset_row)
        .optional()?;
    Ok(attach_data(conn, row.into_iter().collect())?.pop())
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

const CHANGE_COLUMNS: &str = "e.seq, e.type, e.asset_key, e.source, e.event_id, \
    epoch_us(e.observed_at), epoch_us(e.recorded_at), e.name, e.status, e.contenthash, \
    e.chainhash, e.prevseq, p.seq, p.data_seq";

/// Rows of `events e` joined with each one's previous version `p`, with both data documents.
fn versions(
    conn: &Connection,
    sql: &str,
    args: &[Box<dyn ToSql>],
) -> Result<Vec<VersionRow>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let raw = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                VersionRow {
                    seq: r.get(0)?,
                    ty: r.get(1)?,
                    asset_key: r.get(2)?,
                    source: r.get(3)?,
                    event_id: r.get(4)?,
                    observed_at: from_micros(r.get(5)?),
                    recorded_at: from_micros(r.get(6)?),
                    name: r.get(7)?,
                    status: r.get(8)?,
                    contenthash: r.get(9)?,
                    chainhash: r.get(10)?,
                    prevseq: r.get::<_, Option<u64>>(11)?.unwrap_or(0),
                    data: serde_json::Value::Null,
                    previous: None,
                },
                r.get::<_, Option<u64>>(12)?,
                r.get::<_, Option<u64>>(13)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let wanted = raw
        .iter()
        .flat_map(|(v, _, prev_data)| std::iter::once(v.seq).chain(*prev_data));
    let mut data = event_data(conn, wanted)?;
    let parse = |t: Option<&String>| {
        t.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let out = raw
        .into_iter()
        .map(|(mut v, prev, prev_data)| {
            v.data = parse(data.get(&v.seq));
            v.previous = prev.and(prev_data).map(|s| parse(data.get(&s)));
            v
        })
        .collect();
    data.clear();
    Ok(out)
}

/// An asset's events, newest first, from before `before` (a sequence; `None`: the newest).
pub fn history(
    conn: &Connection,
    key: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<VersionRow>, StoreError> {
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} FROM (SELECT * FROM events WHERE asset_key = ? AND seq < ? \
         ORDER BY seq DESC LIMIT ?) e LEFT JOIN (SELECT seq, data_seq, next_seq FROM events \
         WHERE asset_key = ?) p ON p.next_seq = e.seq ORDER BY e.seq DESC"
    );
    let args: Vec<Box<dyn ToSql>> = vec![
        Box::new(key.to_owned()),
        Box::new(before.unwrap_or(u64::MAX)),
        Box::new(u64::from(limit)),
        Box::new(key.to_owned()),
    ];
    versions(conn, &sql, &args)
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

/// Asset events in stream order matching `q`.
pub fn changes(conn: &Connection, q: &ChangeQuery) -> Result<Vec<VersionRow>, StoreError> {
    let mut inner = String::from("SELECT * FROM events WHERE asset_key IS NOT NULL AND seq > ?");
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(q.after)];
    if let Some(u) = q.until {
        inner.push_str(" AND seq <= ?");
        args.push(Box::new(u));
    }
    if let Some(p) = &q.provider {
        inner.push_str(" AND provider = ?");
        args.push(Box::new(p.clone()));
    }
    for (column, values) in [("kind", &q.kinds), ("type", &q.types)] {
        if !values.is_empty() {
            inner.push_str(&format!(" AND {column} IN ("));
            for (i, v) in values.iter().enumerate() {
                inner.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Box::new(v.clone()));
            }
            inner.push(')');
        }
    }
    inner.push_str(" ORDER BY seq LIMIT ?");
    args.push(Box::new(u64::from(q.limit)));
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} FROM ({inner}) e LEFT JOIN (SELECT seq, data_seq, next_seq \
         FROM events WHERE next_seq > ? AND next_seq IS NOT NULL) p ON p.next_seq = e.seq \
         ORDER BY e.seq"
    );
    args.push(Box::new(q.after));
    versions(conn, &sql, &args)
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

/// The live versions at `at` matching `q`'s provider and kinds, as a subquery.
fn live_at(q: &AssetQuery, at: u64, args: &mut Vec<Box<dyn ToSql>>) -> String {
    let mut sql = format!(
        "SELECT e.asset_key, e.seq, e.contenthash FROM events e WHERE {AT} \
         AND e.type <> 'deleted'"
    );
    args.push(Box::new(at));
    args.push(Box::new(at));
    if let Some(p) = &q.provider {
        sql.push_str(" AND e.provider = ?");
        args.push(Box::new(p.clone()));
    }
    if !q.kinds.is_empty() {
        sql.push_str(" AND e.kind IN (");
        for (i, k) in q.kinds.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(Box::new(k.clone()));
        }
        sql.push(')');
    }
    sql
}

const DIFF_JOIN: &str = "FROM ({a}) a FULL OUTER JOIN ({b}) b ON a.asset_key = b.asset_key \
    WHERE a.contenthash IS DISTINCT FROM b.contenthash";

/// Assets (of `q`'s provider and kinds) added, removed or changed (content hash) between
/// sequences `from` and `to`, ordered by key after `q.after`, at most `q.limit`; and the totals.
pub fn diff(
    conn: &Connection,
    q: &AssetQuery,
    from: u64,
    to: u64,
) -> Result<(Vec<DiffRow>, DiffCounts), StoreError> {
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let a = live_at(q, from, &mut args);
    let b = live_at(q, to, &mut args);
    let join = DIFF_JOIN.replace("{a}", &a).replace("{b}", &b);
    let counts_sql = format!(
        "SELECT count(*) FILTER (WHERE a.asset_key IS NULL), \
         count(*) FILTER (WHERE b.asset_key IS NULL), \
         count(*) FILTER (WHERE a.asset_key IS NOT NULL AND b.asset_key IS NOT NULL) {join}"
    );
    let counts = conn.query_row(&counts_sql, params_from_iter(args.iter()), |r| {
        Ok(DiffCounts {
            added: r.get(0)?,
            removed: r.get(1)?,
            changed: r.get(2)?,
        })
    })?;
    let mut page_sql =
        format!("SELECT coalesce(a.asset_key, b.asset_key) AS k, a.seq, b.seq {join}");
    if let Some(after) = &q.after {
        page_sql.push_str(" AND coalesce(a.asset_key, b.asset_key) > ?");
        args.push(Box::new(after.clone()));
    }
    page_sql.push_str(" ORDER BY k LIMIT ?");
    args.push(Box::new(u64::from(q.limit)));
    let mut stmt = conn.prepare(&page_sql)?;
    let page = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<u64>>(1)?,
                r.get::<_, Option<u64>>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Both sides' versions of the page, by sequence.
    let seqs: Vec<String> = page
        .iter()
        .flat_map(|(_, a, b)| a.iter().chain(b.iter()).map(u64::to_string))
        .collect();
    let mut by_seq = std::collections::HashMap::new();
    if !seqs.is_empty() {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM events e WHERE e.seq IN ({})",
            seqs.join(",")
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map([], asset_row)?
            .collect::<Result<Vec<_>, _>>()?;
        for row in attach_data(conn, rows)? {
            by_seq.insert(row.version, row);
        }
    }
    let rows = page
        .into_iter()
        .map(|(key, a, b)| {
            let from = a.and_then(|s| by_seq.get(&s).cloned());
            let to = b.and_then(|s| by_seq.get(&s).cloned());
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
