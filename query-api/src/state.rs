//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use inventory_projector::{ReadPool, Status};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenSet;
use crate::declare::Publisher;
use crate::metrics::Metrics;

/// Default expected interval between a collector's sweeps (a scope is stale after twice this).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The application state: read model, projector status, tokens, and the NATS publisher for
/// declarations.
#[derive(Clone)]
pub struct AppState {
    /// Readers of the read model. Shared by every clone, so that a rebuilt read model (a stream
    /// deleted and created again, see `server.rs`) replaces the old one for all of them at once.
    pub(crate) pool: ReadPool,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) tokens: Arc<TokenSet>,
    pub(crate) publisher: Option<Publisher>,
    pub(crate) sweep_interval: Duration,
    pub(crate) public_url: Option<String>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) feed: FeedSettings,
    /// Cancelled when the server starts shutting down (ends the change feeds).
    pub(crate) shutdown: CancellationToken,
}

/// Tuning of the SSE change feed.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// Interval of the keep-alive comments that keep proxies from closing an idle feed.
    pub heartbeat: Duration,
    /// A client that has not read for this long while its buffer is full is dropped, with an
    /// `end` event, so that it never holds back anything else.
    pub slow_after: Duration,
    /// Changes buffered per client.
    pub buffer: usize,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            slow_after: Duration::from_secs(30),
            buffer: 1024,
        }
    }
}

impl AppState {
    /// State over a read pool and the projector's status channel. Without
    /// [`with_publisher`](Self::with_publisher), declarations answer 503.
    pub fn new(pool: ReadPool, status: watch::Receiver<Status>, tokens: TokenSet) -> Self {
        let paths = crate::api::spec_paths();
        let metrics = Metrics::new(paths.iter().map(String::as_str), crate::PLAIN_ROUTES);
        Self {
            pool,
            status,
            tokens: Arc::new(tokens),
            publisher: None,
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
            public_url: None,
            metrics: Arc::new(metrics),
            feed: FeedSettings::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Tunes the change feed.
    pub fn with_feed(mut self, feed: FeedSettings) -> Self {
        self.feed = feed;
        self
    }

    /// Ends the change feeds when `token` is cancelled (the server's shutdown).
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
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
