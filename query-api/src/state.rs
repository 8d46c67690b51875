//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use inventory_projector::{ReadPool, Status};
use tokio::sync::watch;

use crate::auth::TokenSet;
use crate::declare::Publisher;
use crate::metrics::Metrics;

/// Default expected interval between a collector's sweeps (a scope is stale after twice this).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The application state: read model, projector status, tokens, and the NATS publisher for
/// declarations.
#[derive(Clone)]
pub struct AppState {
    pub(crate) pool: ReadPool,
    pub(crate) status: watch::Receiver<Status>,
    pub(crate) tokens: Arc<TokenSet>,
    pub(crate) publisher: Option<Publisher>,
    pub(crate) sweep_interval: Duration,
    pub(crate) public_url: Option<String>,
    pub(crate) metrics: Arc<Metrics>,
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
        }
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
