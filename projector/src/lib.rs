//! The projector (DESIGN §5): folds the `INVENTORY` stream into a DuckDB read model exactly once.
//!
//! - [`fold`]: the pure fold, no IO.
//! - [`store`]: the DuckDB tables; a batch and its checkpoint commit in one transaction.
//! - [`read`]: queries the API serves from, and a pool of reader connections.
//! - [`runner`]: the loop that follows the stream from the checkpoint and feeds the store.

pub mod fold;
pub mod read;
pub mod runner;
pub mod store;

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
