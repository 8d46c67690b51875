//! [`serve`]: the API process (NATS, stream, store, embedded projector, HTTP server).
//!
//! The read model belongs to one stream (DESIGN §5). When the embedded projector finds that the
//! stream is not the one its database was built from — at the start, or while it runs because
//! `INVENTORY` was deleted and created again — [`project`] rebuilds the read model from scratch
//! beside the old one, which stays frozen (never mixed with the new stream's events) and served
//! while `/readyz` says not ready; once the new one has caught up, it takes the old file's place
//! and every reader moves to it at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::stream::Stream as JsStream;
use inventory_bus::{BusError, NatsConfig, StreamSettings};
use inventory_projector::store::{move_files, remove_files};
use inventory_projector::{
    ErrorKind, ProjectorError, ReadPool, RunOptions, Status, Store, StoreError,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::auth::TokenSet;
use crate::declare::Publisher;
use crate::integrity::{Checker, IntegrityConfig};
use crate::limits::{Limits, ReadyBounds};
use crate::state::AppState;

/// Longest wait for in-flight requests, then for the projector, at shutdown.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (`INVENTORY_LISTEN`).
    pub listen: SocketAddr,
    /// This replica's DuckDB file (`INVENTORY_DB`); rebuilt from the stream when missing.
    pub db_path: PathBuf,
    /// How to reach NATS (`NATS_URL`, `NATS_CREDS`, ...).
    pub nats: NatsConfig,
    /// How the `INVENTORY` stream is created when it does not exist.
    pub stream: StreamSettings,
    /// Accepted bearer tokens (`INVENTORY_API_TOKENS`, see [`TokenSet::parse`]).
    pub tokens: TokenSet,
    /// Expected interval between a collector's sweeps (`INVENTORY_SWEEP_INTERVAL`, default
    /// 15 min); a scope with no ok sweep for twice this is stale.
    pub sweep_interval: Duration,
    /// Public base URL listed as the spec's server (optional).
    pub public_url: Option<String>,
    /// Most events per projector transaction while catching up (`INVENTORY_PROJECTOR_BATCH`).
    pub projector_batch: usize,
    /// Most event bytes per projector transaction (`INVENTORY_PROJECTOR_BATCH_MIB`).
    pub projector_batch_bytes: usize,
    /// Most memory DuckDB keeps for the read model, in MiB (`INVENTORY_DUCKDB_MEMORY_MIB`).
    pub duckdb_memory_mib: u64,
    /// Tuning of the SSE change feed (`INVENTORY_FEED_HEARTBEAT`, `INVENTORY_FEED_SLOW_AFTER`).
    pub feed: crate::state::FeedSettings,
    /// Bounds on connections, requests and reads (`INVENTORY_MAX_BODY_BYTES`, ...).
    pub limits: Limits,
    /// When `/readyz` reports a stalled or lagging projector (`INVENTORY_READY_STALL_AFTER`,
    /// `INVENTORY_READY_MAX_LAG`).
    pub ready: ReadyBounds,
    /// The checkpoints' verifier keys and how often the newest checkpoint is looked for
    /// (`INVENTORY_VERIFIER_KEY`, `INVENTORY_INTEGRITY_EVERY`).
    pub integrity: IntegrityConfig,
}

/// Why [`serve`] stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("HTTP server: {0}")]
    Server(String),
    #[error("the embedded projector stopped: {0}")]
    Projector(#[from] ProjectorError),
    #[error("rebuilding the read model at {path}: {reason}")]
    Rebuild { path: String, reason: String },
}

/// Runs the API until `cancel`: connects to NATS, ensures the stream, opens the store, starts the
/// embedded projector and serves HTTP (ready once the projector has caught up). On `cancel`,
/// in-flight requests get [`SHUTDOWN_TIMEOUT`], then the projector is stopped and awaited.
///
/// If the projector stops on an error, the server shuts down and the error is returned, so the
/// process exits and its supervisor restarts it (`/readyz` reports the failure meanwhile).
pub async fn serve(cfg: ServeConfig, cancel: CancellationToken) -> Result<(), ApiError> {
    let client = inventory_bus::connect(&cfg.nats).await?;
    let js = async_nats::jetstream::new(client.clone());
    let stream = inventory_bus::ensure_stream(&js, &cfg.stream).await?;
    let store = match open_store(&cfg.db_path, cfg.duckdb_memory_mib).await {
        // This replica's read model is derived from the stream: one written by another build is
        // rebuilt from scratch (`/readyz` is not ready until it has caught up).
        Err(StoreError::OtherVersion {
            found, expected, ..
        }) => {
            warn!(db = %cfg.db_path.display(), found, expected, "the read model has another schema version; rebuilding it from the stream");
            remove_files(&cfg.db_path).map_err(|e| ApiError::Rebuild {
                path: cfg.db_path.display().to_string(),
                reason: e.to_string(),
            })?;
            open_store(&cfg.db_path, cfg.duckdb_memory_mib).await?
        }
        r => r?,
    };
    let pool = ReadPool::new(&store)?;

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ApiError::Bind {
            addr: cfg.listen,
            reason: e.to_string(),
        })?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();

    let (status_tx, status_rx) = watch::channel(Status::default());
    let projector_cancel = CancellationToken::new();
    let mut projector = tokio::spawn(project(
        Projection {
            stream: stream.clone(),
            db_path: cfg.db_path.clone(),
            memory_mib: cfg.duckdb_memory_mib,
            pool: pool.clone(),
            status: status_tx,
            cancel: projector_cancel.clone(),
            opts: RunOptions {
                batch_max: cfg.projector_batch.max(1),
                batch_max_bytes: cfg.projector_batch_bytes.max(1),
                ..RunOptions::default()
            },
        },
        store,
    ));

    // The stream's signed checkpoints, checked in the background (cancelled with the server).
    let (integrity_tx, integrity_rx) =
        watch::channel(crate::Integrity::initial(&cfg.integrity.keys));
    let integrity_cancel = cancel.child_token();
    let mut integrity = tokio::spawn(crate::integrity::run(
        Checker::new(js.clone(), stream.clone(), cfg.integrity.keys, integrity_tx),
        cfg.integrity.every,
        integrity_cancel.clone(),
    ));

    let server_stop = CancellationToken::new();
    let mut state = AppState::new(pool, status_rx, cfg.tokens)
        .with_publisher(
            Publisher::new(client, stream).with_retry(crate::declare::write_retry(
                cfg.nats.retry,
                cfg.limits.request_timeout,
            )),
        )
        .with_sweep_interval(cfg.sweep_interval)
        .with_feed(cfg.feed)
        .with_limits(cfg.limits)
        .with_ready_bounds(cfg.ready)
        .with_integrity(integrity_rx)
        .with_shutdown(server_stop.clone());
    if let Some(url) = cfg.public_url {
        state = state.with_public_url(url);
    }
    info!(listen = %local, db = %cfg.db_path.display(), "API listening");

    let server = crate::conn::serve(
        listener,
        crate::app(state),
        cfg.limits,
        server_stop.clone(),
        SHUTDOWN_TIMEOUT,
    );
    tokio::pin!(server);

    let mut projector_result = None;
    let served = tokio::select! {
        r = &mut server => Some(r),
        () = cancel.cancelled() => None,
        r = &mut projector => {
            projector_result = Some(r);
            None
        }
    };
    // Drain HTTP first (unless it already ended), then stop the projector.
    server_stop.cancel();
    let served = match served {
        Some(r) => r,
        None => server.await,
    };
    info!("HTTP server stopped");
    integrity_cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut integrity)
        .await
        .is_err()
    {
        warn!("the integrity check did not stop within the shutdown timeout");
        integrity.abort();
    }
    projector_cancel.cancel();
    let projected = match projector_result {
        Some(r) => r,
        None => match tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut projector).await {
            Ok(r) => r,
            Err(_) => {
                warn!("the projector did not stop within the shutdown timeout");
                projector.abort();
                return served.map_err(|e| ApiError::Server(e.to_string()));
            }
        },
    };
    served.map_err(|e| ApiError::Server(e.to_string()))?;
    match projected {
        Ok(Ok(())) => {
            info!("projector stopped");
            Ok(())
        }
        Ok(Err(e)) => {
            error!(error = %e, "the embedded projector stopped on an error");
            Err(e)
        }
        Err(join) => Err(ApiError::Server(format!("projector task: {join}"))),
    }
}

async fn open_store(path: &Path, memory_mib: u64) -> Result<Store, StoreError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&path)?;
        store.set_memory_limit(memory_mib)?;
        Ok(store)
    })
    .await
    .map_err(|e| StoreError::Task(e.to_string()))?
}

/// What the embedded projector works with.
struct Projection {
    stream: JsStream,
    /// The read model's file (`INVENTORY_DB`).
    db_path: PathBuf,
    /// DuckDB's memory limit (MiB).
    memory_mib: u64,
    /// The readers of the API, switched to a rebuilt read model.
    pool: ReadPool,
    /// The API's view of the projector.
    status: watch::Sender<Status>,
    cancel: CancellationToken,
    opts: RunOptions,
}

/// Follows the stream into `store` until cancelled; when the stream is not the one the read
/// model was built from, rebuilds it ([`rebuild`]) and follows on with the new one.
async fn project(p: Projection, store: Store) -> Result<(), ApiError> {
    let mut store = store;
    loop {
        let run = inventory_projector::run(
            p.stream.clone(),
            store,
            p.cancel.clone(),
            p.status.clone(),
            p.opts.clone(),
        );
        match run.await {
            Ok(_) => return Ok(()),
            // The run stopped before applying anything of the new stream, and reported it in
            // the status (`/readyz`: rebuilding); the old read model is frozen and still served.
            Err(e) if e.kind() == ErrorKind::StreamChanged => {
                warn!(db = %p.db_path.display(), error = %e, "rebuilding the read model from scratch");
                match rebuild(&p).await? {
                    Some(fresh) => store = fresh,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes a database file and its WAL, if present.
fn remove_db(path: &Path) -> Result<(), ApiError> {
    remove_files(path).map_err(|e| ApiError::Rebuild {
        path: path.display().to_string(),
        reason: format!("cannot remove it: {e}"),
    })
}

/// Builds a new read model from the stream into `<db>.rebuild`, beside the frozen one, until it
/// has caught up with the stream's tip; then puts it in the frozen one's place and moves every
/// reader to it. Returns the new store to follow on with (`None`: cancelled meanwhile).
async fn rebuild(p: &Projection) -> Result<Option<Store>, ApiError> {
    let fresh_path = {
        let mut s = p.db_path.as_os_str().to_owned();
        s.push(".rebuild");
        PathBuf::from(s)
    };
    let fresh = loop {
        remove_db(&fresh_path)?;
        let fresh = open_store(&fresh_path, p.memory_mib).await?;
        // Its own status: the API's keeps describing the frozen read model until the switch.
        let (status, _) = watch::channel(Status::default());
        let opts = RunOptions {
            stop_when_caught_up: true,
            ..p.opts.clone()
        };
        match inventory_projector::run(p.stream.clone(), fresh, p.cancel.clone(), status, opts)
            .await
        {
            Ok(fresh) => break fresh,
            Err(e) if e.kind() == ErrorKind::StreamChanged => {
                warn!(error = %e, "the stream changed again during the rebuild; starting over");
            }
            Err(e) => {
                let _ = remove_db(&fresh_path);
                return Err(e.into());
            }
        }
    };
    if p.cancel.is_cancelled() {
        drop(fresh);
        remove_db(&fresh_path)?;
        return Ok(None);
    }
    let caught_up = fresh.checkpoint();
    // Closing it folds its WAL into the file: one self-contained file to move.
    tokio::task::spawn_blocking(move || drop(fresh))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
    // The same for the frozen read model (whose readers keep it open): nothing of it may remain
    // under the WAL name the new file takes over. FORCE waits for reads in progress (a plain
    // CHECKPOINT fails while any transaction runs).
    p.pool
        .run(|conn| Ok(conn.execute_batch("FORCE CHECKPOINT")?))
        .await?;
    // A WAL of the frozen file was folded into it by the checkpoint: never to be replayed into
    // the new one. Readers of the frozen read model keep their open files (its version log too).
    move_files(&fresh_path, &p.db_path).map_err(|e| ApiError::Rebuild {
        path: p.db_path.display().to_string(),
        reason: format!("cannot move {} there: {e}", fresh_path.display()),
    })?;
    let store = open_store(&p.db_path, p.memory_mib).await?;
    // Feeds see a new read model and end (their sequences were the old stream's); `/readyz`
    // keeps saying "rebuilding" until the next run has checked the stream again.
    p.status.send_modify(|s| {
        *s = Status {
            applied_seq: store.checkpoint(),
            tip_at_start: store.checkpoint(),
            stream_last_seq: store.checkpoint(),
            stream_changed: s.stream_changed.take(),
            ..Status::default()
        }
    });
    p.pool.switch_to(&store)?;
    info!(db = %p.db_path.display(), applied_seq = caught_up, "read model rebuilt from the current stream; readers switched to it");
    Ok(Some(store))
}
