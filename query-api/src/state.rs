//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use inventory_projector::{ReadPool, Status};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSet;
use crate::declare::Publisher;
use crate::integrity::Integrity;
use crate::limits::{Limits, ReadyBounds};
use crate::metrics::Metrics;
use crate::reads::Reads;
use crate::service::feed::FeedHub;

/// Default expected interval between a collector's sweeps (a scope is stale after twice this).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The application state: read model, projector status, tokens, and the NATS publisher for
/// declarations.
#[derive(Clone)]
pub struct AppState {
    /// Readers of the read model. Shared by every clone, so that a rebuilt read model (a stream
    /// deleted and created again, see `server.rs`) replaces the old one for all of them at once.
    /// Reads off the executor go through its bound ([`crate::reads`]).
    pub(crate) pool: Reads,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) tokens: Arc<TokenSet>,
    pub(crate) publisher: Option<Publisher>,
    pub(crate) sweep_interval: Duration,
    pub(crate) public_url: Option<String>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) feed: FeedSettings,
    /// The change feeds' slots and their shared fan-out (see [`crate::service::feed`]).
    pub(crate) feeds: Arc<FeedHub>,
    /// Cancelled when the server starts shutting down (ends the change feeds).
    pub(crate) shutdown: CancellationToken,
    /// Bounds on requests and reads ([`Limits`]).
    pub(crate) limits: Limits,
    /// When `/readyz` stops vouching for the read model.
    pub(crate) ready: ReadyBounds,
    /// The stream's signed checkpoints as last checked ([`crate::integrity`]).
    pub(crate) integrity: watch::Receiver<Integrity>,
}

/// Tuning of the SSE change feed.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// Interval of the keep-alive comments that keep proxies from closing an idle feed.
    pub heartbeat: Duration,
    /// A client that has not read for this long while its buffer is full is dropped, with an
    /// `end` event, so that it never holds back anything else; what was queued for it is freed.
    pub slow_after: Duration,
    /// Bytes of changes (their JSON) queued per client; a client whose queue is full reads on
    /// from the read model once it has room again.
    pub buffer_bytes: usize,
    /// Most feeds open at once; the next client is answered 503 with `Retry-After`.
    pub max_clients: usize,
}

impl FeedSettings {
    /// Default of [`max_clients`](Self::max_clients) (`INVENTORY_FEED_MAX_CLIENTS`).
    pub const DEFAULT_MAX_CLIENTS: usize = 500;
    /// Default of [`buffer_bytes`](Self::buffer_bytes) (`INVENTORY_FEED_BUFFER_BYTES`).
    pub const DEFAULT_BUFFER_BYTES: usize = 128 * 1024;
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            slow_after: Duration::from_secs(30),
            buffer_bytes: Self::DEFAULT_BUFFER_BYTES,
            max_clients: Self::DEFAULT_MAX_CLIENTS,
        }
    }
}

impl AppState {
    /// State over a read pool and the projector's status channel. Without
    /// [`with_publisher`](Self::with_publisher), declarations answer 503.
    pub fn new(pool: ReadPool, status: watch::Receiver<Status>, tokens: TokenSet) -> Self {
        let paths = crate::api::spec_paths();
        let metrics = Metrics::new(
            paths
                .iter()
                .map(String::as_str)
                .chain(crate::ui::ROUTES.iter().copied()),
            crate::PLAIN_ROUTES,
        );
        let limits = Limits::default();
        Self {
            pool: Reads::new(pool, limits.max_reads, limits.read_wait),
            status,
            tokens: Arc::new(tokens),
            publisher: None,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            public_url: None,
            metrics: Arc::new(metrics),
            feed: FeedSettings::default(),
            feeds: Arc::new(FeedHub::new(FeedSettings::default())),
            shutdown: CancellationToken::new(),
            limits,
            ready: ReadyBounds::default(),
            integrity: watch::channel(Integrity::initial(&[])).1,
        }
    }

    /// Bounds requests and reads (default [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.pool = self.pool.rebound(limits.max_reads, limits.read_wait);
        self.limits = limits;
        self
    }

    /// When `/readyz` reports a stalled or lagging projector (default [`ReadyBounds::default`]).
    pub fn with_ready_bounds(mut self, ready: ReadyBounds) -> Self {
        self.ready = ready;
        self
    }

    /// Tunes the change feed.
    pub fn with_feed(mut self, feed: FeedSettings) -> Self {
        self.feed = feed;
        self.feeds = Arc::new(FeedHub::new(feed));
        self
    }

    /// Ends the change feeds when `token` is cancelled (the server's shutdown).
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Reports the integrity check's outcome (default: no verifier key, nothing verified).
    pub fn with_integrity(mut self, integrity: watch::Receiver<Integrity>) -> Self {
        self.integrity = integrity;
        self
    }

    /// Publishes declarations through `publisher`.
    pub fn with_publisher(mut self, publisher: Publisher) -> Self {
        self.publisher = Some(publisher);
        self
    }

    /// The expected interval between a collector's sweeps (default 15 min).
    pub fn with_sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The public base URL, listed as the spec's server.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }
}
