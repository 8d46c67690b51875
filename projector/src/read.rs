//! Read queries over the read model, and a small pool of reader connections. Every function here
//! blocks: call them through [`ReadPool::run`], which moves the work off the async executor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use duckdb::types::ToSql;
use duckdb::{params_from_iter, Connection, OptionalExt, Row};
use inventory_schemas::{SweepCounts, STREAM_NAME};

use crate::store::from_micros;
use crate::StoreError;

/// Reader connections to one database, reused across requests. Every clone shares the pool, so
/// [`ReadPool::switch_to`] moves every reader to another database at once.
#[derive(Clone)]
pub struct ReadPool {
    seed: Arc<Mutex<Connection>>,
    idle: Arc<Mutex<Idle>>,
}

/// Connections to the current database, and which database that is.
struct Idle {
    /// Incremented by each [`ReadPool::switch_to`].
    generation: u64,
    conns: Vec<Connection>,
}

impl ReadPool {
    /// A pool that clones new connections from `seed` as needed.
    pub fn new(seed: Connection) -> Self {
        Self {
            seed: Arc::new(Mutex::new(seed)),
            idle: Arc::new(Mutex::new(Idle {
                generation: 0,
                conns: Vec::new(),
            })),
        }
    }

    /// A connection and the generation of the database it reads.
    fn take(&self) -> Result<(Connection, u64), StoreError> {
        {
            let mut idle = self.idle.lock().map_err(|_| StoreError::Poisoned)?;
            if let Some(c) = idle.conns.pop() {
                return Ok((c, idle.generation));
            }
        }
        // Locks in the order `switch_to` takes them: seed, then idle.
        let seed = self.seed.lock().map_err(|_| StoreError::Poisoned)?;
        let generation = self
            .idle
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .generation;
        Ok((seed.try_clone()?, generation))
    }

    /// Moves every reader to the database of `seed` (a rebuilt read model): reads started before
    /// finish on the old database, every later one reads the new one, and connections to the old
    /// one are closed as they come back. The generation changes.
    pub fn switch_to(&self, seed: Connection) -> Result<(), StoreError> {
        let mut current = self.seed.lock().map_err(|_| StoreError::Poisoned)?;
        let mut idle = self.idle.lock().map_err(|_| StoreError::Poisoned)?;
        let old = std::mem::replace(&mut *current, seed);
        idle.generation += 1;
        let stale = std::mem::take(&mut idle.conns);
        drop((idle, current));
        drop((old, stale));
        Ok(())
    }

    /// Which database the pool reads: changes with each [`ReadPool::switch_to`]. A reader that
    /// sees the same generation before and after a read knows the read used that database.
    pub fn generation(&self) -> u64 {
        match self.idle.lock() {
            Ok(idle) => idle.generation,
            Err(poisoned) => poisoned.into_inner().generation,
        }
    }

    /// Runs `f` on a pooled connection on the calling thread.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (conn, generation) = self.take()?;
        let out = f(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            // A connection to a database the pool has switched away from is closed.
            if idle.generation == generation && idle.conns.len() < 16 {
                idle.conns.push(conn);
            }
        }
        out
    }

    /// Runs `f` on a pooled connection on tokio's blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// Filters of an asset listing. Results are ordered by asset key; `after` is the cursor.
#[derive(Debug, Clone, Default)]
pub struct AssetQuery {
    pub provider: Option<String>,
    /// Any of these kinds (empty: all).
    pub kinds: Vec<String>,
    pub status: Option<String>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Include assets whose newest event is a tombstone.
    pub include_deleted: bool,
    /// Return keys strictly after this one.
    pub after: Option<String>,
    /// Maximum rows (the caller bounds it).
    pub limit: u32,
}

/// One asset of the current view.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    pub key: String,
    pub provider: String,
    pub kind: String,
    pub native_id: String,
    pub name: String,
    pub status: String,
    pub source: String,
    pub first_seen: DateTime<Utc>,
    pub last_changed: DateTime<Utc>,
    /// Newest of: the asset's newest event, its collector's newest complete sweep.
    pub last_seen: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Stream sequence of the asset's newest event.
    pub version: u64,
    pub contenthash: String,
    pub chainhash: String,
    /// The normalised asset document (last known state).
    pub data: serde_json::Value,
}

/// The current view's columns (data comes separately, see [`attach_data`]).
const ASSET_COLUMNS: &str = "a.asset_key, a.provider, a.kind, a.native_id, a.name, a.status, \
    a.source, epoch_us(a.first_seen), epoch_us(a.last_changed), \
    epoch_us(CASE WHEN a.deleted_at IS NULL AND s.last_ok_at > a.last_seen THEN s.last_ok_at \
    ELSE a.last_seen END), epoch_us(a.deleted_at), a.version, a.contenthash, a.chainhash, \
    a.data_seq FROM assets a LEFT JOIN sweeps s ON s.source = a.source";

/// An asset row and the sequence of the event that holds its data (column 14).
pub(crate) fn asset_row(r: &Row<'_>) -> duckdb::Result<(AssetRow, Option<u64>)> {
    Ok((
        AssetRow {
            key: r.get(0)?,
            provider: r.get(1)?,
            kind: r.get(2)?,
            native_id: r.get(3)?,
            name: r.get(4)?,
            status: r.get(5)?,
            source: r.get(6)?,
            first_seen: from_micros(r.get(7)?),
            last_changed: from_micros(r.get(8)?),
            last_seen: from_micros(r.get(9)?),
            deleted_at: r.get::<_, Option<i64>>(10)?.map(from_micros),
            version: r.get(11)?,
            contenthash: r.get(12)?,
            chainhash: r.get(13)?,
            data: serde_json::Value::Null,
        },
        r.get(14)?,
    ))
}

/// The `data` of the events with these sequences, by sequence (an index lookup each).
pub(crate) fn event_data(
    conn: &Connection,
    seqs: impl IntoIterator<Item = u64>,
) -> Result<HashMap<u64, String>, StoreError> {
    let mut list = String::new();
    for s in seqs {
        if !list.is_empty() {
            list.push(',');
        }
        list.push_str(&s.to_string());
    }
    if list.is_empty() {
        return Ok(HashMap::new());
    }
    // Literal sequences (integers), so that DuckDB looks them up in the index instead of
    // scanning `data` for every event.
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, data FROM events WHERE seq IN ({list})"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Fills in each row's data from the event that holds it.
pub(crate) fn attach_data(
    conn: &Connection,
    rows: Vec<(AssetRow, Option<u64>)>,
) -> Result<Vec<AssetRow>, StoreError> {
    let mut data = event_data(conn, rows.iter().filter_map(|(_, s)| *s))?;
    Ok(rows
        .into_iter()
        .map(|(mut row, seq)| {
            if let Some(text) = seq.and_then(|s| data.remove(&s)) {
                row.data = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            }
            row
        })
        .collect())
}

/// Appends `q`'s filters to a query over rows aliased `alias` whose columns are named as in
/// `assets` (`asset_key`, `provider`, `kind`, `status`, `name`); `live` is the SQL condition of
/// an asset that is not deleted.
pub(crate) fn push_filters(
    q: &AssetQuery,
    alias: &str,
    live: &str,
    sql: &mut String,
    args: &mut Vec<Box<dyn ToSql>>,
) {
    if let Some(p) = &q.provider {
        sql.push_str(&format!(" AND {alias}.provider = ?"));
        args.push(Box::new(p.clone()));
    }
    if !q.kinds.is_empty() {
        sql.push_str(&format!(" AND {alias}.kind IN ("));
        for (i, k) in q.kinds.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(Box::new(k.clone()));
        }
        sql.push(')');
    }
    if let Some(s) = &q.status {
        sql.push_str(&format!(" AND {alias}.status = ?"));
        args.push(Box::new(s.clone()));
    }
    if let Some(n) = &q.name_contains {
        sql.push_str(&format!(" AND contains(lower({alias}.name), lower(?))"));
        args.push(Box::new(n.clone()));
    }
    if !q.include_deleted {
        sql.push_str(&format!(" AND {live}"));
    }
    if let Some(after) = &q.after {
        sql.push_str(&format!(" AND {alias}.asset_key > ?"));
        args.push(Box::new(after.clone()));
    }
    sql.push_str(&format!(" ORDER BY {alias}.asset_key LIMIT ?"));
    args.push(Box::new(u64::from(q.limit)));
}

/// Lists current assets matching `q`, ordered by key.
pub fn list_assets(conn: &Connection, q: &AssetQuery) -> Result<Vec<AssetRow>, StoreError> {
    let mut sql = format!("SELECT {ASSET_COLUMNS} WHERE 1=1");
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    push_filters(q, "a", "a.deleted_at IS NULL", &mut sql, &mut args);
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), asset_row)?
        .collect::<Result<Vec<_>, _>>()?;
    attach_data(conn, rows)
}

/// One asset by key (deleted ones included).
pub fn get_asset(conn: &Connection, key: &str) -> Result<Option<AssetRow>, StoreError> {
    let sql = format!("SELECT {ASSET_COLUMNS} WHERE a.asset_key = ?");
    let row = conn.query_row(&sql, [key], asset_row).optional()?;
    Ok(attach_data(conn, row.into_iter().collect())?.pop())
}

/// The newest sweep of one collector scope.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRow {
    pub source: String,
    pub collector: String,
    pub provider: String,
    pub scope: String,
    pub status: String,
    pub seq: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub counts: SweepCounts,
    pub error: Option<String>,
    /// Newest sweep with status ok.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Sweeps seen for this scope.
    pub runs: u64,
}

/// Every collector scope's newest sweep, by source.
pub fn list_sweeps(conn: &Connection) -> Result<Vec<SweepRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT source, collector, provider, scope, status, seq, epoch_us(started_at), \
         epoch_us(finished_at), duration_ms, seen, discovered, changed, deleted, unchanged, \
         withheld, error, epoch_us(last_ok_at), runs FROM sweeps ORDER BY source",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(SweepRow {
            source: r.get(0)?,
            collector: r.get(1)?,
            provider: r.get(2)?,
            scope: r.get(3)?,
            status: r.get(4)?,
            seq: r.get(5)?,
            started_at: from_micros(r.get(6)?),
            finished_at: from_micros(r.get(7)?),
            duration_ms: r.get(8)?,
            counts: SweepCounts {
                seen: r.get(9)?,
                discovered: r.get(10)?,
                changed: r.get(11)?,
                deleted: r.get(12)?,
                unchanged: r.get(13)?,
                deletions_withheld: r.get(14)?,
            },
            error: r.get(15)?,
            last_ok_at: r.get::<_, Option<i64>>(16)?.map(from_micros),
            runs: r.get(17)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last applied stream sequence.
pub fn checkpoint(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT last_seq FROM checkpoint WHERE stream = ?",
            [STREAM_NAME],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// Number of rejected messages by reason code (a bounded set: `RejectReason::ALL`).
pub fn rejected_by_reason(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT reason_code, count(*) FROM rejected GROUP BY reason_code ORDER BY 1")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A message the projector did not apply, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    /// The NATS subject it was stored on.
    pub subject: String,
    /// `RejectReason` code.
    pub reason_code: String,
    pub reason: String,
    /// The payload as received (lossy UTF-8).
    pub payload: String,
}

/// Rejected messages with a sequence above `after`, oldest first, at most `limit`, optionally of
/// one reason code.
pub fn list_rejected(
    conn: &Connection,
    after: u64,
    limit: u32,
    reason_code: Option<&str>,
) -> Result<Vec<RejectedRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT seq, epoch_us(recorded_at), subject, reason_code, reason, payload FROM rejected \
         WHERE seq > ? AND (? IS NULL OR reason_code = ?) ORDER BY seq LIMIT ?",
    )?;
    let rows = stmt.query_map(
        duckdb::params![after, reason_code, reason_code, limit],
        |r| {
            Ok(RejectedRow {
                seq: r.get(0)?,
                recorded_at: from_micros(r.get(1)?),
                subject: r.get(2)?,
                reason_code: r.get(3)?,
                reason: r.get(4)?,
                payload: r.get(5)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}
