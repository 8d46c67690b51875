//! The DuckDB read model (DESIGN §5): `events` (full history), `assets` (the current view: a view
//! of each asset's newest `events` row), `sweeps` (freshness), `checkpoint` and `rejected`. A batch
//! and the checkpoint are written in one transaction, so a crash at any point leaves either the
//! whole batch or none of it. After each commit the store publishes the read model's in-memory
//! half ([`crate::current`]): the current view and the versions index at that checkpoint.
//!
//! A batch may be appended in pieces ([`Store::append`]) and committed once ([`Store::commit`]):
//! the runner streams a large batch into one transaction without holding it in memory, and DuckDB
//! writes the `events` rows of a transaction that fills whole row groups straight to the database
//! file (instead of to the WAL and again at the next checkpoint).

mod open;
mod rows;
mod sweeps;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use foldhash::fast::RandomState;
use imbl::OrdMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use duckdb::arrow::array::RecordBatch;
use duckdb::types::{TimeUnit, Value};
use duckdb::{params, Config, Connection, OptionalExt};
use inventory_schemas::{
    decode_stored_summary, DataSummary, EventSummary, RejectReason, Rejection, STREAM_NAME,
};
use tracing::{debug, warn};

use crate::current::{
    content_fingerprint, Current, Document, Live, NewVersion, Snapshot, TagBuilder, VersionIndex,
};
use crate::fold::fold;
use crate::identity::{format_created, payload_sha256, StreamIdentity};
use crate::read::SweepRow;
use crate::version_log::{log_path, Located, LogAppender, VersionLog};
use crate::StoreError;
use open::{check_log, check_version, load_assets, load_identity, load_versions};

const SCHEMA_VERSION: i64 = 7;

/// The default of [`Store::set_memory_limit`] for a server's read model (MiB): DuckDB's own
/// default is 80 % of the machine's memory, which it fills with cached blocks of `events` while
/// a large stream is projected, though nothing reads them again (the API reads from memory and
/// the version log).
pub const DEFAULT_MEMORY_MIB: u64 = 256;

const SCHEMA: &str = include_str!("store/schema.sql");

/// The DuckDB storage format of a database this store creates (an existing file keeps its own).
/// v1.2.0 is the first that stores strings with ZSTD: `events.data` compressed with it costs the
/// writer much less CPU than FSST, and the bench's database is 3× smaller (BENCHMARKS.md,
/// "Projector replay"); a file in it is read by DuckDB 1.2 and later.
const STORAGE_VERSION: &str = "v1.2.0";

/// How every connection of the store is opened.
fn config() -> Result<Config, duckdb::Error> {
    Config::default().with("storage_compatibility_version", STORAGE_VERSION)
}

/// A message from the stream with its decode result (decoding may happen off the writer thread).
#[derive(Debug, Clone)]
pub struct Incoming {
    pub seq: u64,
    pub subject: String,
    pub recorded_at: DateTime<Utc>,
    pub payload: Bytes,
    /// The event, if it is a valid event of `subject` (the trust rule); why not otherwise.
    pub decoded: Result<EventSummary, Rejection>,
}

impl Incoming {
    /// Decodes a stored message and decides whether it is a valid event of the subject it was
    /// stored on ([`decode_stored_summary`]).
    pub fn decode(
        seq: u64,
        subject: String,
        recorded_at: DateTime<Utc>,
        payload: Bytes,
    ) -> Incoming {
        let decoded = decode_stored_summary(&subject, recorded_at, &payload);
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
    /// New states (with their documents) by key, folded over the batch so far: shared as they
    /// will be in the committed map, so that the table's entries are small (a large batch
    /// stages every asset, and growing a table of whole states copied each one several times).
    staged: HashMap<Arc<str>, Arc<Current>, RandomState>,
    /// The batch's asset events, in stream order, and where their records are (for the
    /// versions index).
    versions: Vec<NewVersion>,
    /// Where the version log ends with the batch's records written so far.
    log_end: u64,
    /// New sweep rows by source.
    sweeps: HashMap<Arc<str>, SweepRow, RandomState>,
    /// The first message of a bound, empty store (sequence, payload SHA-256): the stream's
    /// identity is recorded with this transaction.
    first: Option<(u64, String)>,
    /// `events` rows of the pieces appended so far and not yet handed to DuckDB: each hand-over
    /// (an appender's flush) plans an insert, so pieces are handed over together
    /// ([`FLUSH_ROWS`], [`FLUSH_BYTES`]) or at the commit.
    unflushed: Vec<RecordBatch>,
    unflushed_rows: usize,
    unflushed_bytes: usize,
}

/// Most `events` rows held by a transaction before they are handed to DuckDB.
const FLUSH_ROWS: usize = 16 * 1024;
/// Most document bytes held by a transaction before its rows are handed to DuckDB.
const FLUSH_BYTES: usize = 32 << 20;

/// The writer side of the read model. One per database file (DuckDB allows one writing process).
pub struct Store {
    conn: Connection,
    checkpoint: u64,
    /// Current state and document of every asset (committed), so a batch folds without reading
    /// back; shared with the published snapshots.
    assets: OrdMap<Arc<str>, Arc<Current>>,
    /// Newest sweep of every collector scope (committed), by source.
    sweeps: OrdMap<Arc<str>, Arc<SweepRow>>,
    versions: Arc<VersionIndex>,
    /// Where the committed records of the version log end.
    log_end: u64,
    /// Writes the version log's new records beside the writer thread.
    appender: LogAppender,
    /// Makes each folded asset's tags (shared strings, no copy of the document's).
    tag_builder: TagBuilder,
    /// Where each committed snapshot is published for readers.
    live: Live,
    open: Option<OpenBatch>,
    /// The staged table and version list of the last committed batch, empty, for the next one
    /// to reuse: while catching up, every batch would otherwise grow them again from nothing
    /// (copies, and fresh memory the kernel zeroes). Dropped once caught up ([`Store::set_bulk`]).
    spare_staged: HashMap<Arc<str>, Arc<Current>, RandomState>,
    spare_versions: Vec<NewVersion>,
    /// The stream the read model was built from (`meta`), once a batch of it is committed.
    identity: Option<StreamIdentity>,
    /// The creation time of the stream an empty store is being built from ([`Store::bind_stream`]).
    bound: Option<DateTime<Utc>>,
}

/// The write-ahead log of the database at `path` (`<path>.wal`), which belongs with the file: it
/// moves and goes with it.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".wal");
    PathBuf::from(s)
}

/// The files that belong with the database at `path` and move with it: its write-ahead log and
/// its version log ([`crate::version_log`]).
pub fn companion_files(path: &Path) -> [PathBuf; 2] {
    [wal_path(path), log_path(path)]
}

/// Moves the database at `from` and its companions to `to`, replacing what is there (a companion
/// `from` lacks is removed at `to`: it belonged to the database replaced).
pub fn move_files(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    for (a, b) in companion_files(from).into_iter().zip(companion_files(to)) {
        if a.exists() {
            std::fs::rename(&a, &b)?;
        } else {
            match std::fs::remove_file(&b) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Removes the database at `path` and its companions; any may be absent.
pub fn remove_files(path: &Path) -> std::io::Result<()> {
    let [wal, log] = companion_files(path);
    for p in [path.to_owned(), wal, log] {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
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
        let conn = config()
            .and_then(|c| Connection::open_with_flags(path, c))
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        Self::init(conn, Some(&log_path(path))).map_err(|e| match e {
            StoreError::Open { reason, .. } => StoreError::Open {
                path: path.display().to_string(),
                reason,
            },
            StoreError::OtherVersion {
                found, expected, ..
            } => StoreError::OtherVersion {
                path: path.display().to_string(),
                found,
                expected,
            },
            other => other,
        })
    }

    /// An in-memory store (tests, replays to be exported).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = config()
            .and_then(Connection::open_in_memory_with_flags)
            .map_err(|e| StoreError::Open {
                path: ":memory:".into(),
                reason: e.to_string(),
            })?;
        Self::init(conn, None)
    }

    /// `log`: the version log's file (`None`: an unnamed temporary one).
    fn init(conn: Connection, log: Option<&Path>) -> Result<Self, StoreError> {
        // Before any DDL: a database of another version, or not ours, is left as it is.
        let fresh = check_version(&conn)?;
        conn.execute_batch(SCHEMA)?;
        if fresh {
            conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)",
                [SCHEMA_VERSION.to_string()],
            )?;
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
        let identity = load_identity(&conn)?;
        let versions = load_versions(&conn, VersionLog::open(log)?)?;
        let log_end = check_log(&conn, &versions)?;
        let appender = versions.log().appender()?;
        let versions = Arc::new(versions);
        let assets = load_assets(&versions)?;
        let sweeps = crate::read::list_sweeps(&conn)?
            .into_iter()
            .map(|s| (Arc::<str>::from(s.source.as_str()), Arc::new(s)))
            .collect();
        debug!(checkpoint, assets = assets.len(), versions = versions.len(), stream = ?identity, "store opened");
        let store = Self {
            conn,
            checkpoint,
            assets,
            sweeps,
            versions,
            log_end,
            appender,
            tag_builder: TagBuilder::default(),
            live: Live::default(),
            open: None,
            spare_staged: HashMap::default(),
            spare_versions: Vec::new(),
            identity,
            bound: None,
        };
        store.publish();
        Ok(store)
    }

    /// Where this store publishes its committed snapshots.
    pub fn live(&self) -> Live {
        self.live.clone()
    }

    /// The committed state as a snapshot (what readers get).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            seq: self.checkpoint,
            assets: self.assets.clone(),
            sweeps: self.sweeps.clone(),
            versions: Arc::clone(&self.versions),
        }
    }

    fn publish(&self) {
        self.live.publish(self.snapshot());
    }

    /// The last stream sequence committed.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    /// The stream the read model was built from, recorded with its first committed batch (`None`
    /// before that, or for a store fed without [`Store::bind_stream`]).
    pub fn stream_identity(&self) -> Option<&StreamIdentity> {
        self.identity.as_ref()
    }

    /// Builds an empty read model from the stream created at `created`: the first batch committed
    /// records that stream's identity (with its first message's digest) in the same transaction.
    /// No effect once an identity is recorded.
    pub fn bind_stream(&mut self, created: DateTime<Utc>) {
        if self.identity.is_none() {
            self.bound = Some(created);
        }
    }

    /// A new connection to the same database, for readers.
    pub fn connection(&self) -> Result<Connection, StoreError> {
        Ok(self.conn.try_clone()?)
    }

    /// Caps the memory DuckDB keeps for this database (its buffer pool: cached blocks and the
    /// transaction in progress; beyond it, blocks are evicted or spilled to disk).
    pub fn set_memory_limit(&self, mib: u64) -> Result<(), StoreError> {
        self.conn
            .execute_batch(&format!("SET memory_limit = '{mib}MiB'"))?;
        Ok(())
    }

    /// Tunes DuckDB for a bulk load (`true`: one thread, as the writer is the only client and more
    /// threads only contend for the CPU) and the version log's writes to bypass the page cache,
    /// or both back to their defaults (readers share the database and read new records).
    /// Leaving a bulk load also drops the room kept for its large batches.
    pub fn set_bulk(&mut self, on: bool) -> Result<(), StoreError> {
        if !on {
            self.spare_staged = HashMap::default();
            self.spare_versions = Vec::new();
        }
        self.conn.execute_batch(if on {
            "SET threads = 1"
        } else {
            "RESET threads"
        })?;
        // A bulk load's records are seldom read before it ends (the API is not ready until
        // then; one that is, is read from the disk): they bypass the page cache.
        self.appender.set_direct(on)?;
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
                // The last batch's table, emptied: a batch stages about as many assets as the
                // one before, without growing its table again.
                staged: std::mem::take(&mut self.spare_staged),
                versions: std::mem::take(&mut self.spare_versions),
                log_end: self.log_end,
                sweeps: HashMap::default(),
                first: None,
                unflushed: Vec::new(),
                unflushed_rows: 0,
                unflushed_bytes: 0,
            });
        }
        let result = self
            .check_order(batch)
            .and_then(|()| self.append_open(batch));
        if result.is_err() {
            self.rollback();
        }
        result
    }

    /// Refuses a message that would leave a hole after the last one — a gap is an error, never a
    /// skip — and notes the first message of a bound, empty store (its identity). An empty store
    /// starts at whatever the stream's first message is: above 1 once retention expired older ones.
    fn check_order(&mut self, batch: &[Incoming]) -> Result<(), StoreError> {
        let Self {
            open,
            identity,
            bound,
            ..
        } = self;
        let Some(open) = open.as_mut() else {
            return Ok(());
        };
        let mut last = open.outcome.last_seq;
        for inc in batch {
            if inc.seq <= last {
                continue;
            }
            if last == 0 {
                if bound.is_some() && identity.is_none() {
                    open.first = Some((inc.seq, payload_sha256(&inc.payload)));
                }
            } else if inc.seq != last + 1 {
                return Err(StoreError::Gap {
                    after: last,
                    found: inc.seq,
                });
            }
            last = inc.seq;
        }
        Ok(())
    }

    fn append_open(&mut self, batch: &[Incoming]) -> Result<(), StoreError> {
        let Self {
            conn,
            assets,
            sweeps: committed_sweeps,
            appender,
            tag_builder,
            open,
            ..
        } = self;
        let Some(open) = open.as_mut() else {
            return Ok(());
        };
        let OpenBatch {
            outcome,
            staged,
            versions,
            log_end,
            sweeps: staged_sweeps,
            ..
        } = open;
        // Sized for the piece (a document is part of its message), so no builder grows.
        let payload_bytes = batch.iter().map(|inc| inc.payload.len()).sum();
        let mut rows = rows::EventColumns::with_capacity(batch.len(), payload_bytes);
        // The piece's version log records, written before the rows (and synced before COMMIT).
        let mut log = appender.buffer();
        {
            let mut rejected: Option<duckdb::Appender<'_>> = None;
            for inc in batch {
                if inc.seq <= outcome.last_seq {
                    outcome.skipped += 1;
                    continue;
                }
                outcome.last_seq = inc.seq;
                let ev = match &inc.decoded {
                    Ok(ev) => ev,
                    Err(rejection) => {
                        reject(conn, &mut rejected, inc, rejection)?;
                        outcome.rejected += 1;
                        continue;
                    }
                };
                let data = ev.data_text(&inc.payload);
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
                    let prev = staged.get(key).or_else(|| assets.get(key)).map(|c| &**c);
                    match fold(prev.map(|c| &c.state), inc.seq, ev) {
                        Ok(state) => {
                            let deleted = matches!(ev.data, DataSummary::Tombstone { .. });
                            // A tombstone keeps the last known document (`data_seq` does too).
                            let doc = if deleted {
                                prev.and_then(|p| p.data.clone())
                            } else {
                                Some(Document::from(data))
                            };
                            let tags = doc
                                .as_deref()
                                .map(|d| tag_builder.tags(d))
                                .unwrap_or_default();
                            folded = Some(Current {
                                state,
                                data: doc,
                                tags,
                            });
                        }
                        Err(e) => {
                            let rejection =
                                Rejection::new(RejectReason::InvalidData, e.to_string());
                            reject(conn, &mut rejected, inc, &rejection)?;
                            outcome.rejected += 1;
                            continue;
                        }
                    }
                } else if let DataSummary::Sweep(s) = &ev.data {
                    let prev = staged_sweeps
                        .get(ev.source.as_str())
                        .or_else(|| committed_sweeps.get(ev.source.as_str()).map(|r| &**r));
                    let row = sweeps::next_row(prev, inc.seq, &ev.source, s);
                    staged_sweeps.insert(Arc::from(ev.source.as_str()), row);
                }
                let mut row = rows::EventRow {
                    seq: inc.seq,
                    recorded_at: inc.recorded_at,
                    observed_at: ev.time,
                    ty: ev.ty,
                    asset_key: key,
                    provider,
                    kind,
                    source: &ev.source,
                    subject: &inc.subject,
                    event_id: &ev.id,
                    contenthash: ev.contenthash.as_deref(),
                    prevseq: ev.prevseq,
                    chainhash: ev.chainhash.as_deref(),
                    data,
                    state: folded.as_ref().map(|c| &c.state),
                    log: None,
                };
                let offset = *log_end + log.len() as u64;
                row.log = row.record().map(|r| (offset, r.encode(&mut log)));
                let located = row.log.map(|(offset, len)| Located {
                    seq: inc.seq,
                    offset,
                    len,
                    ty: ev.ty,
                });
                rows.push(row);
                if let (Some(current), Some(located)) = (folded, located) {
                    let key: Arc<str> = match staged.get_key_value(current.state.key.as_str()) {
                        Some((k, _)) => Arc::clone(k),
                        None => match assets.get_key_value(current.state.key.as_str()) {
                            Some((k, _)) => Arc::clone(k),
                            None => Arc::from(current.state.key.as_str()),
                        },
                    };
                    versions.push(NewVersion {
                        key: Arc::clone(&key),
                        seq: inc.seq,
                        content: content_fingerprint(&current.state.contenthash),
                        deleted: current.state.deleted_at.is_some(),
                        name: current.state.name.clone(),
                        status: current.state.status.clone(),
                        tags: Some(current.tags.clone()),
                        at: located,
                    });
                    staged.insert(key, Arc::new(current));
                }
                outcome.applied += 1;
            }
            if let Some(mut rejected) = rejected {
                rejected.flush()?;
            }
        }
        let written = log.len() as u64;
        appender.write(*log_end, log)?;
        *log_end += written;
        let data_bytes = rows.data_bytes();
        if let Some(rows) = rows.finish()? {
            open.unflushed_rows += rows.num_rows();
            open.unflushed_bytes += data_bytes;
            open.unflushed.push(rows);
        }
        if open.unflushed_rows >= FLUSH_ROWS || open.unflushed_bytes >= FLUSH_BYTES {
            flush_rows(conn, open)?;
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
        let mut open = open;
        if let Err(e) = self.commit_open(&mut open) {
            // `open` is already taken, so roll back here (`rollback` would see nothing open).
            if let Err(r) = self.conn.execute_batch("ROLLBACK") {
                debug!(error = %r, "rollback after a failed commit");
            }
            self.cut_log();
            return Err(e);
        }
        let outcome = open.outcome;
        self.checkpoint = outcome.last_seq;
        self.log_end = open.log_end;
        for (key, current) in open.staged.drain() {
            self.assets.insert(key, current);
        }
        self.spare_staged = open.staged;
        for (source, row) in open.sweeps {
            self.sweeps.insert(source, Arc::new(row));
        }
        self.versions.append(open.versions.drain(..));
        self.spare_versions = open.versions;
        if let (Some(created), Some((first_seq, first_sha256))) = (self.bound, open.first) {
            self.identity = Some(StreamIdentity {
                created,
                first_seq,
                first_sha256,
            });
        }
        // Readers move to the new checkpoint all at once: the versions above are appended before
        // the snapshot that covers them is published.
        self.publish();
        if outcome.rejected > 0 {
            warn!(
                rejected = outcome.rejected,
                last_seq = outcome.last_seq,
                "events rejected (see the rejected table)"
            );
        }
        Ok(outcome)
    }

    fn commit_open(&self, open: &mut OpenBatch) -> Result<(), StoreError> {
        flush_rows(&self.conn, open)?;
        if let (Some(created), Some((seq, sha256))) = (self.bound, &open.first) {
            let mut insert = self.conn.prepare("INSERT INTO meta VALUES (?, ?)")?;
            insert.execute(["stream_created", &format_created(created)])?;
            insert.execute(["stream_first_seq", &seq.to_string()])?;
            insert.execute(["stream_first_sha256", sha256])?;
        }
        // Each scope swept in the batch gets its newest row (one per scope, however many sweeps
        // of it the batch held).
        for row in open.sweeps.values() {
            sweeps::write(&self.conn, row)?;
        }
        self.conn.execute(
            "UPDATE checkpoint SET last_seq = ?, updated_at = ? WHERE stream = ?",
            params![open.outcome.last_seq, ts(Utc::now()), STREAM_NAME],
        )?;
        // Every committed row's record is durable before the row is.
        if open.log_end > self.log_end {
            self.appender.sync()?;
        }
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    /// Abandons the transaction in progress, if any.
    pub fn rollback(&mut self) {
        if self.open.take().is_some() {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                warn!(error = %e, "rollback failed");
            }
            self.cut_log();
        }
    }

    /// Cuts the version log back to its committed records (what an abandoned batch wrote is
    /// overwritten by the next one anyway, and cut off on open).
    fn cut_log(&self) {
        if let Err(e) = self.appender.truncate(self.log_end) {
            warn!(error = %e, "cutting the version log back to its last commit");
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // An uncommitted transaction is abandoned, never half-applied.
        self.rollback();
    }
}

/// Hands the transaction's held `events` rows to DuckDB (one appender flush).
fn flush_rows(conn: &Connection, open: &mut OpenBatch) -> Result<(), StoreError> {
    if open.unflushed.is_empty() {
        return Ok(());
    }
    let mut events = conn.appender("events")?;
    for rows in open.unflushed.drain(..) {
        events.append_record_batch(rows)?;
    }
    events.flush()?;
    open.unflushed_rows = 0;
    open.unflushed_bytes = 0;
    Ok(())
}

/// Records a message that is not applied in `rejected` (the appender is opened on the first).
fn reject<'c>(
    conn: &'c Connection,
    rejected: &mut Option<duckdb::Appender<'c>>,
    inc: &Incoming,
    rejection: &Rejection,
) -> Result<(), StoreError> {
    let rejected = match rejected {
        Some(appender) => appender,
        None => rejected.insert(conn.appender("rejected")?),
    };
    warn!(seq = inc.seq, subject = %inc.subject, reason = rejection.reason.as_str(), detail = %rejection.detail, "event rejected: not applied");
    rejected.append_row(params![
        inc.seq,
        ts(inc.recorded_at),
        inc.subject,
        rejection.reason.as_str(),
        rejection.detail,
        String::from_utf8_lossy(&inc.payload).into_owned(),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests;
