//! The projector (DESIGN §5): folds the `INVENTORY` stream into a DuckDB read model exactly once.
//!
//! - [`fold`]: the pure fold, no IO.
//! - [`store`]: the DuckDB tables; a batch and its checkpoint commit in one transaction.
//! - [`current`]: the read model's in-memory half: the current view and every asset's versions,
//!   published per committed batch.
//! - [`read`]: queries the API serves from, and a pool of reader connections.
//! - [`version_log`]: every asset event's row, by offset, beside the database.
//! - [`history`]: past views, an asset's versions, changes and diffs.
//! - [`runner`]: the loop that follows the stream from the checkpoint and feeds the store.
//! - [`identity`]: which stream a read model was built from, and the check that it still is.

pub mod current;
pub mod fold;
pub mod history;
pub mod identity;
pub mod read;
pub mod runner;
pub mod store;
pub mod version_log;

pub use duckdb::Connection;
pub use identity::StreamIdentity;
pub use read::ReadPool;
pub use runner::{run, RunOptions, Status, DEFAULT_BATCH_MAX_MIB, IN_FLIGHT_BYTES};
pub use store::{BatchOutcome, Incoming, Store};

/// Errors of the DuckDB store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open DuckDB database {path}: {reason}")]
    Open { path: String, reason: String },
    /// The version log beside the database ([`version_log`]) cannot be read or written.
    #[error("version log {path}: {reason}")]
    Log { path: String, reason: String },
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("building rows for DuckDB: {0}")]
    Arrow(#[from] duckdb::arrow::error::ArrowError),
    #[error("a reader connection lock was poisoned by a panic")]
    Poisoned,
    #[error("blocking task failed: {0}")]
    Task(String),
    /// An asset-inventory read model of another schema version (an older or newer build wrote
    /// it). It is left unchanged; a read model is rebuilt from the stream in a new file.
    #[error(
        "cannot open DuckDB database {path}: schema version {found}, but this build reads version \
         {expected}: delete the file (or use another one) to rebuild it from the stream; it was left \
         unchanged"
    )]
    OtherVersion {
        path: String,
        found: String,
        expected: i64,
    },
    /// The read model cannot follow the stream without missing events.
    #[error(
        "sequence gap: stream sequence {found} follows {after}, so events {} to {} are missing from \
         the stream (expired by its max_age while the projector was behind, or removed); this read \
         model cannot be completed: delete the database file to rebuild it from what the stream holds",
        after + 1,
        found - 1
    )]
    Gap { after: u64, found: u64 },
}

/// Errors of the projector loop.
#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] inventory_bus::BusError),
    #[error("the projector's writer thread stopped unexpectedly")]
    WriterGone,
    /// The stream is not the one the read model was built from: it was deleted and created
    /// again, or it is another stream. Nothing of it was applied.
    #[error("the read model was built from {recorded}, but the stream is now {found}")]
    StreamChanged {
        /// The stream the read model records.
        recorded: String,
        /// The stream found, and how it differs.
        found: String,
    },
}

/// How a caller should react to a [`ProjectorError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The read model belongs to another stream: refuse it, or rebuild it from scratch.
    StreamChanged,
    /// Events after the checkpoint are gone from the stream: the read model cannot be completed.
    Gap,
    /// Anything else (NATS, DuckDB, the writer thread).
    Other,
}

impl ProjectorError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::StreamChanged { .. } => ErrorKind::StreamChanged,
            Self::Store(StoreError::Gap { .. }) => ErrorKind::Gap,
            Self::Store(_) | Self::Bus(_) | Self::WriterGone => ErrorKind::Other,
        }
    }
}
