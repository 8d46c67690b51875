//! [`serve`]: the API process (NATS, stream, store, embedded projector, HTTP server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use inventory_bus::{BusError, NatsConfig, StreamSettings};
use inventory_projector::{ProjectorError, ReadPool, RunOptions, Status, Store, StoreError};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::Server;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::auth::TokenSet;
use crate::declare::Publisher;
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
    /// Tuning of the SSE change feed (`INVENTORY_FEED_HEARTBEAT`, `INVENTORY_FEED_SLOW_AFTER`).
    pub feed: crate::state::FeedSettings,
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
    let db_path = cfg.db_path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&db_path))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    let pool = ReadPool::new(store.connection()?);

    let acceptor = TcpListener::bind(cfg.listen)
        .into_acceptor()
        .await
        .map_err(|e| ApiError::Bind {
            addr: cfg.listen,
            reason: e.to_string(),
        })?;
    let local = acceptor
        .local_addr()
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();

    let (status_tx, status_rx) = watch::channel(Status::default());
    let projector_cancel = CancellationToken::new();
    let mut projector = tokio::spawn(inventory_projector::run(
        stream.clone(),
        store,
        projector_cancel.clone(),
        status_tx,
        RunOptions {
            batch_max: cfg.projector_batch.max(1),
            ..RunOptions::default()
        },
    ));

    let server_stop = CancellationToken::new();
    let mut state = AppState::new(pool, status_rx, cfg.tokens)
        .with_publisher(Publisher::new(client, stream))
        .with_sweep_interval(cfg.sweep_interval)
        .with_feed(cfg.feed)
        .with_shutdown(server_stop.clone());
    if let Some(url) = cfg.public_url {
        state = state.with_public_url(url);
    }
    info!(listen = %local, db = %cfg.db_path.display(), "API listening");

    let server = Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
        crate::app(state),
        server_stop.clone().cancelled_owned(),
        Some(SHUTDOWN_TIMEOUT),
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
        Ok(Ok(_store)) => {
            info!("projector stopped");
            Ok(())
        }
        Ok(Err(e)) => {
            error!(error = %e, "the embedded projector stopped on an error");
            Err(e.into())
        }
        Err(join) => Err(ApiError::Server(format!("projector task: {join}"))),
    }
}
