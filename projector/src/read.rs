//! Read queries over the read model, and a small pool of reader connections. Every function here
//! blocks: call them through [`ReadPool::run`], which moves the work off the async executor.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt};
use inventory_schemas::{SweepCounts, STREAM_NAME};

use crate::current::{Document, Live, Snapshot};
use crate::fold::AssetState;
use crate::store::{from_micros, Store};
use crate::StoreError;

/// Reader connections to one database, reused across requests. Every clone shares the pool, so
/// [`ReadPool::switch_to`] moves every reader to another database at once.
#[derive(Clone)]
pub struct ReadPool {
    seed: Arc<Mutex<Connection>>,
    idle: Arc<Mutex<Idle>>,
    /// The in-memory half of the read model the pool reads (switched with the database).
    live: Arc<Mutex<Live>>,
}

/// Connections to the current database, and which database that is.
struct Idle {
    /// Incremented by each [`ReadPool::switch_to`].
    generation: u64,
    conns: Vec<Connection>,
}

impl ReadPool {
    /// Readers of `store`'s read model: its snapshots, and connections cloned from its
    /// database as needed.
    pub fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            seed: Arc::new(Mutex::new(store.connection()?)),
            idle: Arc::new(Mutex::new(Idle {
                generation: 0,
                conns: Vec::new(),
            })),
            live: Arc::new(Mutex::new(store.live())),
        })
    }

    /// The newest committed snapshot of the read model (no IO: call it anywhere).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.live.lock() {
            Ok(live) => live.load(),
            Err(poisoned) => poisoned.into_inner().load(),
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
        // Locks in the order `switch_to` takes them: (live,) seed, then idle.
        let seed = self.seed.lock().map_err(|_| StoreError::Poisoned)?;
        let generation = self
            .idle
            .lock()
            .map_err(|_| StoreError::Poisoned)?
            .generation;
        Ok((seed.try_clone()?, generation))
    }

    /// Moves every reader to `store`'s read model (a rebuilt one): reads started before finish
    /// on the old one, every later one reads the new one, and connections to the old database
    /// are closed as they come back. The generation changes.
    pub fn switch_to(&self, store: &Store) -> Result<(), StoreError> {
        let seed = store.connection()?;
        let mut live = self.live.lock().map_err(|_| StoreError::Poisoned)?;
        let mut current = self.seed.lock().map_err(|_| StoreError::Poisoned)?;
        let mut idle = self.idle.lock().map_err(|_| StoreError::Poisoned)?;
        let old = std::mem::replace(&mut *current, seed);
        idle.generation += 1;
        let stale = std::mem::take(&mut idle.conns);
        *live = store.live();
        drop((idle, current, live));
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

    /// Runs `f` on the newest snapshot and a pooled connection of the same read model, on the
    /// calling thread.
    pub fn with_at<T>(
        &self,
        f: impl FnOnce(&Connection, &Snapshot) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Both under the lock `switch_to` holds: never a snapshot of one read model with a
        // connection to another. The snapshot first: the database holds at least what it covers.
        let (snapshot, (conn, generation)) = {
            let live = self.live.lock().map_err(|_| StoreError::Poisoned)?;
            (live.load(), self.take()?)
        };
        let out = f(&conn, &snapshot);
        self.give_back(conn, generation);
        out
    }

    /// Runs `f` on a pooled connection on the calling thread.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (conn, generation) = self.take()?;
        let out = f(&conn);
        self.give_back(conn, generation);
        out
    }

    fn give_back(&self, conn: Connection, generation: u64) {
        if let Ok(mut idle) = self.idle.lock() {
            // A connection to a database the pool has switched away from is closed.
            if idle.generation == generation && idle.conns.len() < 16 {
                idle.conns.push(conn);
            }
        }
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

    /// Runs `f` on a pooled connection and the newest snapshot, on tokio's blocking pool: the
    /// database holds at least everything the snapshot covers, so a query that reads only up to
    /// [`Snapshot::seq`] answers at exactly that checkpoint.
    pub async fn run_at<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Snapshot) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.with_at(f))
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
    /// Search text: a case-insensitive substring of the name, or (whole, case-insensitive) the
    /// asset's native id (e.g. a bare AWS account id) or its key.
    pub name_contains: Option<String>,
    /// Labels the asset carries, each `key:value` (all of them). Past views match each
    /// version's tags in the versions index (a version loaded when the read model was opened:
    /// its document, read once).
    pub labels: Vec<String>,
    /// An org path prefix, whole segments (`o-root/ou-prod` matches `o-root/ou-prod/ou-x`, not
    /// `o-root/ou-production`; past views as for `labels`).
    pub org_path: Option<String>,
    /// Include assets whose newest event is a tombstone.
    pub include_deleted: bool,
    /// Return keys strictly after this one.
    pub after: Option<String>,
    /// Maximum rows (the caller bounds it).
    pub limit: u32,
}

impl AssetQuery {
    /// The filters of `q` that depend on an asset's state (deletion, status, name): the current
    /// view and past views apply the same rule.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            q: self,
            needle: self.name_contains.as_deref().map(str::to_lowercase),
        }
    }
}

/// [`AssetQuery::matcher`]: the state filters of a query, the name's needle lowercased once.
pub struct Matcher<'q> {
    q: &'q AssetQuery,
    needle: Option<String>,
}

impl Matcher<'_> {
    /// Whether an asset (key `key`) that is `deleted` or not, with this status and name, passes.
    pub fn matches(&self, deleted: bool, status: &str, name: &str, key: &str) -> bool {
        (self.q.include_deleted || !deleted)
            && self.q.status.as_ref().is_none_or(|st| st == status)
            && self.needle.as_ref().is_none_or(|n| {
                crate::current::contains_lowercase(name, n) || Self::names_key(key, n)
            })
    }

    /// Whether the search text (lowercased) is the key's native id or the whole key.
    fn names_key(key: &str, needle: &str) -> bool {
        let native_id = key.splitn(3, '/').nth(2).unwrap_or("");
        native_id.eq_ignore_ascii_case(needle) || key.eq_ignore_ascii_case(needle)
    }

    /// Whether an asset in this state passes.
    pub fn state(&self, s: &AssetState) -> bool {
        self.matches(s.deleted_at.is_some(), &s.status, &s.name, &s.key)
    }

    /// Whether the query filters on the document's tags (labels, org path): the current view
    /// holds them ([`crate::current::Tags`]); past views read them from each version's document.
    pub fn on_tags(&self) -> bool {
        !self.q.labels.is_empty() || self.q.org_path.is_some()
    }

    /// Whether an asset with these tags passes the label and org path filters.
    pub fn tags(&self, t: &crate::current::Tags) -> bool {
        self.q
            .labels
            .iter()
            .all(|l| t.labels.iter().any(|x| **x == **l))
            && self
                .q
                .org_path
                .as_deref()
                .is_none_or(|p| t.org_prefixes.iter().any(|x| **x == *p))
    }

    /// Whether a current asset passes: its state and its tags.
    pub fn current(&self, c: &crate::current::Current) -> bool {
        self.state(&c.state) && self.tags(&c.tags)
    }
}

/// One asset as the API shows it: its folded state at some point, and its document then.
#[derive(Debug, Clone, PartialEq)]
pub struct AssetRow {
    pub state: AssetState,
    /// Newest of: the asset's newest event, its collector's newest complete sweep (current
    /// view); the time of its newest event up to the point (past views).
    pub last_seen: DateTime<Utc>,
    /// The normalised asset document of the last known state (`None`: only a tombstone seen).
    pub data: Option<Document>,
}

impl AssetRow {
    /// The asset key.
    pub fn key(&self) -> &str {
        &self.state.key
    }
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

/// Bytes DuckDB's buffer manager holds for this database right now (`duckdb_memory()`: its cache
/// of blocks and the transactions in progress; capped by the store's memory limit), a part of the
/// process's resident memory.
pub fn duckdb_memory_bytes(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(memory_usage_bytes), 0)::UBIGINT FROM duckdb_memory()",
        [],
        |r| r.get(0),
    )?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_is_a_name_substring_a_native_id_or_a_key() {
        let q = AssetQuery {
            name_contains: Some("052718349960".into()),
            ..AssetQuery::default()
        };
        let m = q.matcher();
        let key = "aws/account/052718349960";
        assert!(m.matches(false, "active", "payments", key));
        assert!(!m.matches(false, "active", "payments", "aws/account/1052718349960"));
        let q = AssetQuery {
            name_contains: Some("AWS/Account/052718349960".into()),
            ..AssetQuery::default()
        };
        assert!(q.matcher().matches(false, "active", "x", key));
        let q = AssetQuery {
            name_contains: Some("PAY".into()),
            ..AssetQuery::default()
        };
        assert!(q.matcher().matches(false, "active", "payments", key));
        // A native id with slashes is the whole tail of the key.
        let q = AssetQuery {
            name_contains: Some("rg/vm-1".into()),
            ..AssetQuery::default()
        };
        assert!(q
            .matcher()
            .matches(false, "active", "x", "azure/vm/rg/vm-1"));
    }
}
