//! The DuckDB read model (DESIGN §5): `events` (full history), `assets` (the current view: a view
//! of each asset's newest `events` row), `sweeps` (freshness), `checkpoint` and `rejected`. A batch
//! and the checkpoint are written in one transaction, so a crash at any point leaves either the
//! whole batch or none of it.
//!
//! A batch may be appended in pieces ([`Store::append`]) and committed once ([`Store::commit`]):
//! the runner streams a large batch into one transaction without holding it in memory, and DuckDB
//! writes the `events` rows of a transaction that fills whole row groups straight to the database
//! file (instead of to the WAL and again at the next checkpoint).

mod rows;
mod sweeps;

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Connection, OptionalExt};
use inventory_schemas::{decode_summary, DataSummary, EventSummary, STREAM_NAME};
use tracing::{debug, warn};

use crate::fold::{fold, AssetState};
use crate::StoreError;

const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = include_str!("store/schema.sql");

/// A message from the stream with its decode result (decoding may happen off the writer thread).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub seq: u64,
    pub subject: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: Bytes,
    pub decoded: Result<EventSummary, String>,
}

impl Incoming {
    /// Decodes a stored message.
    pub fn decode(
        seq: u64,
        subject: String,
        recorded_at: DateTime<Utc>,
        payload: Bytes,
    ) -> Incoming {
        let decoded = decode_summary(&payload).map_err(|e| e.to_string());
        Incoming {
            seq,
            subject,
            recorded_at,
            payload,
            decoded,
        }
    }
}

impl From<inventory_bus::StoredMessage> for Incoming {
    fn from(m: inventory_bus::StoredMessage) -> Self {
        let recorded_at = DateTime::<Utc>::from_timestamp_nanos(
            i64::try_from(m.recorded_at_nanos).unwrap_or(i64::MAX),
        );
        Incoming::decode(m.seq, m.subject, recorded_at, m.payload)
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub applied: u64,
    pub rejected: u64,
    /// Messages at or below the checkpoint (already applied before a restart).
    pub skipped: u64,
    pub last_seq: u64,
}

/// The transaction in progress: what it did so far and the asset states it changed.
struct OpenBatch {
    outcome: BatchOutcome,
    /// New states by key, folded over the batch so far.
    staged: HashMap<String, AssetState, RandomState>,
    /// `(seq, next_seq)`: events of the transaction's assets superseded by a newer one.
    superseded: Vec<(u64, u64)>,
}

/// The writer side of the read model. One per database file (DuckDB allows one writing process).
pub struct Store {
    conn: Connection,
    checkpoint: u64,
    /// Current state of every asset (committed), so a batch folds without reading back.
    states: HashMap<String, AssetState, RandomState>,
    open: Option<OpenBatch>,
}

pub(crate) fn ts(t: DateTime<Utc>) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.timestamp_micros())
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default()
}

impl Store {
    /// Opens (creating if needed) the database file and loads the checkpoint and current states.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::init(conn)
    }

    /// An in-memory store (tests, replays to be exported).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: ":memory:".into(),
            reason: e.to_string(),
        })?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA)?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(v) => {
                return Err(StoreError::Open {
                    path: "database".into(),
                    reason: format!(
                        "schema version {v} is not {SCHEMA_VERSION}: rebuild it from the stream (delete the file)"
                    ),
                })
            }
        }
        let checkpoint: Option<u64> = conn
            .query_row(
                "SELECT last_seq FROM checkpoint WHERE stream = ?",
                [STREAM_NAME],
                |r| r.get(0),
            )
            .optional()?;
        let checkpoint = match checkpoint {
            Some(c) => c,
            None => {
                conn.execute(
                    "INSERT INTO checkpoint VALUES (?, 0, ?)",
                    params![STREAM_NAME, ts(Utc::now())],
                )?;
                0
            }
        };
        let states = load_states(&conn)?;
        debug!(checkpoint, assets = states.len(), "store opened");
        Ok(Self {
            conn,
            checkpoint,
            states,
            open: None,
        })
    }

    /// The last stream sequence committed.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// A new connection to the same database, for readers.
    pub fn connection(&self) -> Result<Connection, StoreError> {
        Ok(self.conn.try_clone()?)
    }

    /// Tunes DuckDB for a bulk load (`true`: one thread, as the writer is the only client and more
    /// threads only contend for the CPU) or back to its defaults (readers share the database).
    pub fn set_bulk(&mut self, on: bool) -> Result<(), StoreError> {
        self.conn.execute_batch(if on {
            "SET threads = 1"
        } else {
            "RESET threads"
        })?;
        Ok(())
    }

    /// Applies a batch (in stream order) and advances the checkpoint in one transaction.
    /// Messages at or below the checkpoint are skipped; undecodable ones go to `rejected`.
    pub fn apply(&mut self, batch: &[Incoming]) -> Result<BatchOutcome, StoreError> {
        self.append(batch)?;
        self.commit()
    }

    /// Messages appended to the transaction in progress (0: none open).
    pub fn pending(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| {
            o.outcome.applied + o.outcome.rejected + o.outcome.skipped
        })
    }

    /// Appends messages (in stream order) to the transaction in progress, opening one if needed.
    /// Nothing is visible to readers, nor durable, before [`Store::commit`]. On an error the
    /// transaction is rolled back: the store is back at its last commit.
    pub fn append(&mut self, batch: &[Incoming]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.open.is_none() {
            self.conn.execute_batch("BEGIN TRANSACTION")?;
            self.open = Some(OpenBatch {
                outcome: BatchOutcome {
                    last_seq: self.checkpoint,
                    ..BatchOutcome::default()
                },
                staged: HashMap::default(),
                superseded: Vec::new(),
            });
        }
        let result = self.append_open(batch);
        if result.is_err() {
            self.rollback();
        }
        result
    }

    fn append_open(&mut self, batch: &[Incoming]) -> Result<(), StoreError> {
        let Self {
            conn, states, open, ..
        } = self;
        let Some(open) = open.as_mut() else {
            return Ok(());
        };
        let outcome = &mut open.outcome;
        let staged = &mut open.staged;
        let superseded = &mut open.superseded;
        let mut sweeps: Vec<(u64, &EventSummary)> = Vec::new();
        let mut rows = rows::EventColumns::new();
        {
            let mut rejected = conn.appender("rejected")?;
            for inc in batch {
                if inc.seq <= outcome.last_seq {
                    outcome.skipped += 1;
                    continue;
                }
                outcome.last_seq = inc.seq;
                let ev = match &inc.decoded {
                    Ok(ev) => ev,
                    Err(reason) => {
                        reject(&mut rejected, inc, reason)?;
                        outcome.rejected += 1;
                        continue;
                    }
                };
                let (key, provider, kind) = match &ev.data {
                    DataSummary::Asset { provider, kind, .. }
                    | DataSummary::Tombstone { provider, kind, .. } => (
                        ev.subject.as_deref(),
                        Some(provider.as_str()),
                        Some(kind.as_str()),
                    ),
                    DataSummary::Sweep(s) => (None, Some(s.provider.as_str()), None),
                };
                let mut folded = None;
                if let Some(key) = key {
                    let prev = staged.get(key).or_else(|| states.get(key));
                    match fold(prev, inc.seq, ev) {
                        Ok(state) => {
                            if let Some(p) = prev {
                                superseded.push((p.version, inc.seq));
                            }
                            folded = Some(state);
                        }
                        Err(e) => {
                            reject(&mut rejected, inc, &e.to_string())?;
                            outcome.rejected += 1;
                            continue;
                        }
                    }
                } else {
                    sweeps.push((inc.seq, ev));
                }
                rows.push(rows::EventRow {
                    seq: inc.seq,
                    recorded_at: inc.recorded_at,
                    observed_at: ev.time,
                    ty: ev.ty.short(),
                    asset_key: key,
                    provider,
                    kind,
                    source: &ev.source,
                    subject: &inc.subject,
                    event_id: &ev.id,
                    contenthash: ev.contenthash.as_deref(),
                    prevseq: ev.prevseq,
                    chainhash: ev.chainhash.as_deref(),
                    data: ev.data_text(&inc.payload),
                    state: folded.as_ref(),
                });
                if let Some(state) = folded {
                    staged.insert(state.key.clone(), state);
                }
                outcome.applied += 1;
            }
            rejected.flush()?;
        }
        if let Some(batch) = rows.finish()? {
            let mut events = conn.appender("events")?;
            events.append_record_batch(batch)?;
            events.flush()?;
        }
        for (seq, ev) in sweeps {
            if let DataSummary::Sweep(s) = &ev.data {
                sweeps::upsert_sweep(conn, seq, &ev.source, s)?;
            }
        }
        Ok(())
    }

    /// Commits the transaction in progress with the checkpoint, and returns what it did (all
    /// zero, with the current checkpoint, when none is open).
    pub fn commit(&mut self) -> Result<BatchOutcome, StoreError> {
        let Some(open) = self.open.take() else {
            return Ok(BatchOutcome {
                last_seq: self.checkpoint,
                ..BatchOutcome::default()
            });
        };
        match self.commit_open(&open) {
            Ok(()) => {}
            Err(e) => {
                self.rollback();
                return Err(e);
            }
        }
        let outcome = open.outcome;
        self.checkpoint = outcome.last_seq;
        self.states.extend(open.staged);
        if outcome.rejected > 0 {
            warn!(
                rejected = outcome.rejected,
                last_seq = outcome.last_seq,
                "events rejected (see the rejected table)"
            );
        }
        Ok(outcome)
    }

    fn commit_open(&self, open: &OpenBatch) -> Result<(), StoreError> {
        if !open.superseded.is_empty() {
            {
                let mut stage = self.conn.appender("superseded_stage")?;
                stage.append_record_batch(rows::superseded_rows(&open.superseded)?)?;
                stage.flush()?;
            }
            self.conn.execute_batch(
                "UPDATE events SET next_seq = s.next_seq FROM superseded_stage s \
                 WHERE events.seq = s.seq; DELETE FROM superseded_stage;",
            )?;
        }
        self.conn.execute(
            "UPDATE checkpoint SET last_seq = ?, updated_at = ? WHERE stream = ?",
            params![open.outcome.last_seq, ts(Utc::now()), STREAM_NAME],
        )?;
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Abandons the transaction in progress, if any.
    pub fn rollback(&mut self) {
        if self.open.take().is_some() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                warn!(error = %e, "rollback failed");
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // An uncommitted transaction is abandoned, never half-applied.
        self.rollback();
    }
}

fn reject(
    rejected: &mut duckdb::Appender<'_>,
    inc: &Incoming,
    reason: &str,
) -> Result<(), StoreError> {
    warn!(seq = inc.seq, subject = %inc.subject, reason, "event rejected");
    rejected.append_row(params![
        inc.seq,
        ts(inc.recorded_at),
        inc.subject,
        reason,
        String::from_utf8_lossy(&inc.payload).into_owned(),
    ])?;
    Ok(())
}

fn load_states(conn: &Connection) -> Result<HashMap<String, AssetState, RandomState>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT asset_key, provider, kind, native_id, name, status, source, epoch_us(first_seen), \
         epoch_us(last_changed), epoch_us(last_seen), epoch_us(deleted_at), version, contenthash, \
         chainhash, data_seq FROM assets",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AssetState {
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
            data_seq: r.get(14)?,
            contenthash: r.get(12)?,
            chainhash: r.get(13)?,
        })
    })?;
    let mut out = HashMap::default();
    for row in rows {
        let s = row?;
        out.insert(s.key.clone(), s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use inventory_schemas::{
        encode_asset, encode_tombstone, Asset, AssetStatus, ChainLink, EventType, Provenance,
        Tombstone,
    };

    fn asset(id: &str, name: &str) -> Asset {
        Asset {
            id: id.into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: name.into(),
            status: AssetStatus::Active,
            org_path: vec![],
            region_residency: vec![],
            url: None,
            auth_mode: None,
            labels: Default::default(),
            raw: serde_json::json!({"n": name}),
            provenance: Provenance::default(),
        }
    }

    fn incoming(seq: u64, payload: Vec<u8>) -> Incoming {
        let at = Utc.timestamp_opt(1_700_000_000 + seq as i64, 0).unwrap();
        Incoming::decode(
            seq,
            "inventory.asset.aws.account.x".into(),
            at,
            payload.into(),
        )
    }

    fn upsert(seq: u64, id: &str, name: &str) -> Incoming {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let ev = encode_asset(
            EventType::Changed,
            &asset(id, name),
            "/t",
            at,
            &ChainLink::default(),
        );
        incoming(seq, ev.unwrap().payload)
    }

    fn tombstone(seq: u64, id: &str) -> Incoming {
        let t = Tombstone {
            id: id.into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: "x".into(),
            reason: "gone".into(),
            last_contenthash: String::new(),
            provenance: Provenance::default(),
        };
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        incoming(
            seq,
            encode_tombstone(&t, "/t", at, &ChainLink::default())
                .unwrap()
                .payload,
        )
    }

    fn data_of(store: &Store, key: &str) -> serde_json::Value {
        let conn = store.connection().unwrap();
        crate::read::get_asset(&conn, key).unwrap().unwrap().data
    }

    #[test]
    fn a_batch_appended_in_pieces_commits_once_and_a_rollback_leaves_nothing() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .append(&[upsert(1, "1", "a"), upsert(2, "2", "b")])
            .unwrap();
        store
            .append(&[upsert(3, "1", "a2"), incoming(4, b"garbage".to_vec())])
            .unwrap();
        assert_eq!((store.pending(), store.checkpoint()), (4, 0));
        let out = store.commit().unwrap();
        assert_eq!((out.applied, out.rejected, out.last_seq), (3, 1, 4));
        assert_eq!(store.checkpoint(), 4);
        assert_eq!(data_of(&store, "aws/account/1")["name"], "a2");

        // Not committed: gone on rollback, in DuckDB and in the folded states.
        store
            .append(&[upsert(5, "1", "lost"), upsert(6, "3", "c")])
            .unwrap();
        store.rollback();
        assert_eq!((store.pending(), store.checkpoint()), (0, 4));
        let out = store.apply(&[upsert(5, "1", "kept")]).unwrap();
        assert_eq!(out.last_seq, 5);
        assert_eq!(data_of(&store, "aws/account/1")["name"], "kept");
        let conn = store.connection().unwrap();
        assert!(crate::read::get_asset(&conn, "aws/account/3")
            .unwrap()
            .is_none());
        let events: u64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 4);
    }

    #[test]
    fn a_tombstone_keeps_the_last_known_data_within_and_across_batches() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .apply(&[upsert(1, "1", "a"), tombstone(2, "1"), tombstone(3, "9")])
            .unwrap();
        store.apply(&[upsert(4, "2", "b")]).unwrap();
        store.apply(&[tombstone(5, "2")]).unwrap();
        assert_eq!(data_of(&store, "aws/account/1")["name"], "a");
        assert_eq!(data_of(&store, "aws/account/2")["name"], "b");
        assert_eq!(data_of(&store, "aws/account/9"), serde_json::Value::Null);
        // States survive a reopen (data_seq is stored).
        let conn = store.connection().unwrap();
        let reopened = Store::init(conn).unwrap();
        assert_eq!(reopened.states["aws/account/2"].data_seq, Some(4));
    }
}
