//! The one bound on reads of the read model that run off the executor: [`Reads`] wraps the
//! projector's [`ReadPool`] and lets at most `INVENTORY_MAX_READS` such reads run at once. A read
//! waits at most `INVENTORY_READ_WAIT` for its turn, then is shed ([`ReadError::Busy`], answered
//! 503 with `Retry-After`): nothing queues without bound, and the executor (`/healthz`, the
//! in-memory current view) is never starved of threads.

use std::sync::Arc;
use std::time::Duration;

use inventory_projector::current::Snapshot;
use inventory_projector::{Connection, ReadPool, StoreError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use crate::problem::{ErrorCode, ServiceError};

/// Why a bounded read did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Too many reads in progress; none freed its turn within the wait.
    #[error("{max} reads of the read model are in progress; none finished within {wait:?}")]
    Busy { max: usize, wait: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReadError> for ServiceError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Busy { max, .. } => ServiceError::new(
                ErrorCode::Overloaded,
                format!(
                    "the server is answering its maximum of {max} reads (INVENTORY_MAX_READS); \
                     retry after Retry-After seconds"
                ),
            ),
            ReadError::Store(e) => ServiceError::internal("reading the read model", &e),
        }
    }
}

/// The read pool behind the read bound. Every clone shares the pool and the bound.
#[derive(Clone)]
pub struct Reads {
    pool: ReadPool,
    permits: Arc<Semaphore>,
    max: usize,
    wait: Duration,
}

impl Reads {
    /// At most `max` (at least 1) reads at once, each waiting at most `wait` for its turn.
    pub fn new(pool: ReadPool, max: usize, wait: Duration) -> Self {
        let max = max.max(1);
        Self {
            pool,
            permits: Arc::new(Semaphore::new(max)),
            max,
            wait,
        }
    }

    /// The same pool under another bound.
    pub fn rebound(&self, max: usize, wait: Duration) -> Self {
        Self::new(self.pool.clone(), max, wait)
    }

    /// The newest committed snapshot (in memory, no IO: not bounded).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.pool.snapshot()
    }

    /// See [`ReadPool::generation`].
    pub fn generation(&self) -> u64 {
        self.pool.generation()
    }

    /// Reads running now (for tests and metrics).
    pub fn in_progress(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    async fn turn(&self) -> Result<OwnedSemaphorePermit, ReadError> {
        if let Ok(p) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(p);
        }
        match tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned()).await {
            Ok(Ok(p)) => Ok(p),
            // The semaphore is never closed; a timeout is the only way here.
            _ => {
                debug!(max = self.max, "read shed: too many in progress");
                Err(ReadError::Busy {
                    max: self.max,
                    wait: self.wait,
                })
            }
        }
    }

    /// Runs `f` on tokio's blocking pool once it has a turn; the turn is held until `f` returns,
    /// even if the caller gave up meanwhile (a timed-out request).
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ReadError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let turn = self.turn().await?;
        tokio::task::spawn_blocking(move || {
            let out = f();
            drop(turn);
            out
        })
        .await
        .map_err(|e| ReadError::Store(StoreError::Task(e.to_string())))
    }

    /// [`ReadPool::run`] within the bound.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ReadError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        Ok(self.blocking(move || pool.with(f)).await??)
    }

    /// [`ReadPool::run_at`] within the bound.
    pub async fn run_at<T, F>(&self, f: F) -> Result<T, ReadError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Snapshot) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        Ok(self.blocking(move || pool.with_at(f)).await??)
    }

    /// [`ReadPool::run_at`] within the bound, waiting for a turn as long as it takes: for the
    /// change feeds' reads, which no client waits on directly and whose number is bounded by
    /// the feed limit.
    pub async fn run_at_queued<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Snapshot) -> Result<T, StoreError> + Send + 'static,
    {
        let turn = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let out = pool.with_at(f);
            drop(turn);
            out
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_past_the_bound_wait_briefly_then_are_shed() {
        let dir = tempfile::tempdir().unwrap();
        let store = inventory_projector::Store::open(&dir.path().join("r.duckdb")).unwrap();
        let reads = Reads::new(
            ReadPool::new(&store).unwrap(),
            1,
            Duration::from_millis(100),
        );
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.blocking(move || held.recv().is_ok()).await })
        };
        while reads.in_progress() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = std::time::Instant::now();
        let shed = reads.run(|_| Ok(())).await;
        assert!(
            matches!(shed, Err(ReadError::Busy { max: 1, .. })),
            "{shed:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(90));
        // A turn freed within the wait is taken.
        let waiting = {
            let reads = reads.clone();
            tokio::spawn(async move { reads.run(|c| Ok(c.is_autocommit())).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        release.send(()).unwrap();
        assert!(busy.await.unwrap().unwrap());
        assert!(waiting.await.unwrap().unwrap());
        assert_eq!(reads.in_progress(), 0);
    }

    #[test]
    fn busy_is_a_503_with_retry_after() {
        let e = ServiceError::from(ReadError::Busy {
            max: 3,
            wait: Duration::from_secs(1),
        });
        assert_eq!(e.code, ErrorCode::Overloaded);
        assert_eq!(e.code.status().as_u16(), 503);
        assert!(e.code.retry_after().is_some());
        assert!(e.detail.contains("INVENTORY_MAX_READS"), "{}", e.detail);
    }
}
