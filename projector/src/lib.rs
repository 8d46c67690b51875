//! The projector (DESIGN §5): folds the `INVENTORY` stream into a DuckDB read model exactly once.
//!
//! - [`fold`]: the pure fold, no IO.
//! - [`store`]: the DuckDB tables; a batch and its checkpoint commit in one transaction.
//! - [`read`]: queries the API serves from, and a pool of reader connections.
//! - [`history`]: past views, an asset's versions, changes and diffs.
//! - [`runner`]: the loop that follows the stream from the checkpoint and feeds the store.

pub mod fold;
pub mod history;
pub mod read;
pub mod runner;
pub mod store;

pub use duckdb::Connection;
pub use read::ReadPool;
pub use runner::{run, RunOptions, Status};
pub use store::{BatchOutcome, Incoming, Store};

/// Errors of the DuckDB store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open DuckDB database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("DuckDB: {0}")]
    DuckDb(#[from] duckdb::Error),
    #[error("building rows for DuckDB: {0}")]
    Arrow(#[from] duckdb::arrow::error::ArrowError),
    #[error("a reader connection lock was poisoned by a panic")]
    Poisoned,
    #[error("blocking task failed: {0}")]
    Task(String),
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
}
