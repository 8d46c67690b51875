//! The DuckDB read model (DESIGN §5): `events` (full history), `assets` (current view),
//! `sweeps` (freshness), `checkpoint` and `rejected`. A batch and the checkpoint are written in one
//! transaction, so a crash at any point leaves either the whole batch or none of it.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Connection, OptionalExt};
use inventory_schemas::{decode, EventData, EventType, InventoryEvent, STREAM_NAME};
use tracing::{debug, warn};

use crate::fold::{fold, AssetState};
use crate::StoreError;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq          UBIGINT   NOT NULL,  -- JetStream stream sequence
    recorded_at  TIMESTAMP NOT NULL,  -- when JetStream stored it (UTC)
    observed_at  TIMESTAMP NOT NULL,  -- CloudEvents time: when the collector observed it (UTC)
    type         VARCHAR   NOT NULL,  -- discovered | changed | deleted | sweep
    asset_key    VARCHAR,             -- <provider>/<kind>/<native id>; NULL for sweeps
    provider     VARCHAR,
    kind         VARCHAR,
    source       VARCHAR   NOT NULL,  -- CloudEvents source
    subject      VARCHAR   NOT NULL,  -- NATS subject
    event_id     VARCHAR   NOT NULL,  -- CloudEvents id
    contenthash  VARCHAR,
    prevseq      UBIGINT,
    chainhash    VARCHAR,
    data         JSON      NOT NULL
);
CREATE TABLE IF NOT EXISTS assets (
    asset_key    VARCHAR   NOT NULL,
    provider     VARCHAR   NOT NULL,
    kind         VARCHAR   NOT NULL,
    native_id    VARCHAR   NOT NULL,
    name         VARCHAR   NOT NULL,
    status       VARCHAR   NOT NULL,
    source       VARCHAR   NOT NULL,
    first_seen   TIMESTAMP NOT NULL,
    last_changed TIMESTAMP NOT NULL,
    last_seen    TIMESTAMP NOT NULL,
    deleted_at   TIMESTAMP,
    version      UBIGINT   NOT NULL,  -- stream sequence of the newest event
    contenthash  VARCHAR   NOT NULL,
    chainhash    VARCHAR   NOT NULL,
    data         JSON                 -- last known state (kept after deletion)
);
CREATE TABLE IF NOT EXISTS sweeps (
    source       VARCHAR   NOT NULL,  -- collector scope, e.g. /collectors/aws/o-abc
    collector    VARCHAR   NOT NULL,
    provider     VARCHAR   NOT NULL,
    scope        VARCHAR   NOT NULL,
    status       VARCHAR   NOT NULL,  -- ok | partial | failed
    seq          UBIGINT   NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP NOT NULL,
    duration_ms  UBIGINT   NOT NULL,
    seen         UBIGINT   NOT NULL,
    discovered   UBIGINT   NOT NULL,
    changed      UBIGINT   NOT NULL,
    deleted      UBIGINT   NOT NULL,
    unchanged    UBIGINT   NOT NULL,
    withheld     UBIGINT   NOT NULL,
    error        VARCHAR,
    last_ok_at   TIMESTAMP,           -- newest sweep of this scope with status ok
    runs         UBIGINT   NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (stream VARCHAR NOT NULL, last_seq UBIGINT NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    seq          UBIGINT   NOT NULL,
    recorded_at  TIMESTAMP NOT NULL,
    subject      VARCHAR   NOT NULL,
    reason       VARCHAR   NOT NULL,
    payload      VARCHAR   NOT NULL   -- as received (lossy UTF-8)
);
CREATE TEMP TABLE IF NOT EXISTS assets_stage AS SELECT * FROM assets LIMIT 0;
"#;

/// A message from the stream with its decode result (decoding may happen off the writer thread).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub seq: u64,
    pub subject: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: Bytes,
    pub decoded: Result<InventoryEvent, String>,
}

impl Incoming {
    /// Decodes a stored message.
    pub fn decode(
        seq: u64,
        subject: String,
        recorded_at: DateTime<Utc>,
        payload: Bytes,
    ) -> Incoming {
        let decoded = decode(&payload).map_err(|e| e.to_string());
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

/// The writer side of the read model. One per database file (DuckDB allows one writing process).
pub struct Store {
    conn: Connection,
    checkpoint: u64,
    /// Current state of every asset (without `data`), so a batch folds without reading back.
    states: HashMap<String, AssetState>,
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
        })
    }

    /// The last stream sequence applied.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// A new connection to the same database, for readers.
    pub fn connection(&self) -> Result<Connection, StoreError> {
        Ok(self.conn.try_clone()?)
    }

    /// Applies a batch (in stream order) and advances the checkpoint in one transaction.
    /// Messages at or below the checkpoint are skipped; undecodable ones go to `rejected`.
    pub fn apply(&mut self, batch: &[Incoming]) -> Result<BatchOutcome, StoreError> {
        let mut outcome = BatchOutcome {
            last_seq: self.checkpoint,
            ..BatchOutcome::default()
        };
        // New states by key, with the data document to store (None: keep the stored one).
        let mut staged: HashMap<String, (AssetState, Option<String>)> = HashMap::new();
        let mut sweeps: Vec<(u64, &InventoryEvent)> = Vec::new();

        let tx = self.conn.transaction()?;
        {
            let mut events = tx.appender("events")?;
            let mut rejected = tx.appender("rejected")?;
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
                    EventData::Asset(a) => (
                        ev.subject.clone(),
                        Some(a.provider.as_str()),
                        Some(a.kind.as_str()),
                    ),
                    EventData::Tombstone(t) => (
                        ev.subject.clone(),
                        Some(t.provider.as_str()),
                        Some(t.kind.as_str()),
                    ),
                    EventData::Sweep(s) => (None, Some(s.provider.as_str()), None),
                };
                let data = ev.data_json.to_string();
                if let Some(key) = &key {
                    let prev = staged
                        .get(key)
                        .map(|(s, _)| s)
                        .or_else(|| self.states.get(key));
                    match fold(prev, inc.seq, ev) {
                        Ok(state) => {
                            let doc = (ev.ty != EventType::Deleted).then(|| data.clone());
                            // A tombstone keeps the data staged earlier in this batch, if any.
                            let doc = doc.or_else(|| staged.get(key).and_then(|(_, d)| d.clone()));
                            staged.insert(key.clone(), (state, doc));
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
                events.append_row(params![
                    inc.seq,
                    ts(inc.recorded_at),
                    ts(ev.time),
                    ev.ty.short(),
                    key,
                    provider,
                    kind,
                    ev.source,
                    inc.subject,
                    ev.id,
                    ev.contenthash,
                    ev.prevseq,
                    ev.chainhash,
                    data,
                ])?;
                outcome.applied += 1;
            }
            events.flush()?;
            rejected.flush()?;
        }
        if !staged.is_empty() {
            {
                let mut stage = tx.appender("assets_stage")?;
                for (s, data) in staged.values() {
                    stage.append_row(params![
                        s.key,
                        s.provider,
                        s.kind,
                        s.native_id,
                        s.name,
                        s.status,
                        s.source,
                        ts(s.first_seen),
                        ts(s.last_changed),
                        ts(s.last_seen),
                        s.deleted_at.map(ts),
                        s.version,
                        s.contenthash,
                        s.chainhash,
                        data,
                    ])?;
                }
                stage.flush()?;
            }
            tx.execute_batch(
                "UPDATE assets_stage SET data = a.data FROM assets a \
                   WHERE assets_stage.data IS NULL AND a.asset_key = assets_stage.asset_key;
                 DELETE FROM assets WHERE asset_key IN (SELECT asset_key FROM assets_stage);
                 INSERT INTO assets SELECT * FROM assets_stage;
                 DELETE FROM assets_stage;",
            )?;
        }
        for (seq, ev) in sweeps {
            if let EventData::Sweep(s) = &ev.data {
                upsert_sweep(&tx, seq, &ev.source, s)?;
            }
        }
        tx.execute(
            "UPDATE checkpoint SET last_seq = ?, updated_at = ? WHERE stream = ?",
            params![outcome.last_seq, ts(Utc::now()), STREAM_NAME],
        )?;
        tx.commit()?;
        self.checkpoint = outcome.last_seq;
        for (key, (state, _)) in staged {
            self.states.insert(key, state);
        }
        if outcome.rejected > 0 {
            warn!(
                rejected = outcome.rejected,
                last_seq = outcome.last_seq,
                "events rejected (see the rejected table)"
            );
        }
        Ok(outcome)
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

fn upsert_sweep(
    tx: &duckdb::Transaction<'_>,
    seq: u64,
    source: &str,
    s: &inventory_schemas::SweepCompleted,
) -> Result<(), StoreError> {
    let prev: Option<(Option<i64>, u64)> = tx
        .query_row(
            "SELECT epoch_us(last_ok_at), runs FROM sweeps WHERE source = ?",
            [source],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (prev_ok, runs) = prev.unwrap_or((None, 0));
    let last_ok = if s.status == inventory_schemas::SweepStatus::Ok {
        Some(ts(s.finished_at))
    } else {
        prev_ok.map(|us| ts(from_micros(us)))
    };
    tx.execute("DELETE FROM sweeps WHERE source = ?", [source])?;
    tx.execute(
        "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            source,
            s.collector,
            s.provider,
            s.scope,
            s.status.as_str(),
            seq,
            ts(s.started_at),
            ts(s.finished_at),
            s.duration_ms,
            s.counts.seen,
            s.counts.discovered,
            s.counts.changed,
            s.counts.deleted,
            s.counts.unchanged,
            s.counts.deletions_withheld,
            s.error,
            last_ok,
            runs + 1,
        ],
    )?;
    Ok(())
}

fn load_states(conn: &Connection) -> Result<HashMap<String, AssetState>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT asset_key, provider, kind, native_id, name, status, source, epoch_us(first_seen), \
         epoch_us(last_changed), epoch_us(last_seen), epoch_us(deleted_at), version, contenthash, \
         chainhash FROM assets",
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
            contenthash: r.get(12)?,
            chainhash: r.get(13)?,
        })
    })?;
    let mut out = HashMap::new();
    for row in rows {
        let s = row?;
        out.insert(s.key.clone(), s);
    }
    Ok(out)
}
