//! The shape every source has (DESIGN §8.2): a validated config, `collect` (talk to the provider)
//! and a normalise step (provider record → [`Asset`]), behind one [`Source`] trait that the shared
//! publisher ([`crate::sweep`]) drives.

use std::future::Future;
use std::pin::Pin;

use inventory_schemas::{Asset, Provenance};

/// Version of this collector build, recorded in every event's provenance.
pub const COLLECTOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The boxed future [`Source::collect`] returns (keeps the trait object-safe without
/// `async-trait`).
pub type CollectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Collected, SourceError>> + Send + 'a>>;

/// A source of assets: one collector scope (an organisation, a file, an endpoint).
pub trait Source: Send + Sync {
    /// Collector name recorded in provenance and in `sweep.completed` (`file`, `prometheus`, ...):
    /// the provider word unless a source says otherwise.
    fn name(&self) -> &str {
        self.provider()
    }
    /// Provider word of the sweep (`inventory.sweep.<provider>`): `file`, `prometheus`, ...
    fn provider(&self) -> &str;
    /// The collector's scope: the file stem, the endpoint name, the organisation id.
    fn scope(&self) -> &str;
    /// CloudEvents `source` of everything this source publishes (by default
    /// `/collectors/<provider>/<scope>`; `/file/<stem>` for declared assets). Only assets whose
    /// last event carries this source are ever tombstoned by it.
    fn source_uri(&self) -> String {
        format!("/collectors/{}/{}", self.provider(), self.scope())
    }
    /// NATS subject filter covering every asset this source may report; the sweep reads the last
    /// event of each of these subjects before it diffs.
    fn subject_filter(&self) -> String;
    /// Reads the provider and returns the normalised assets of the scope.
    fn collect(&self) -> CollectFuture<'_>;
}

/// The result of one `collect`.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Every asset the provider reported, normalised.
    pub assets: Vec<Asset>,
    /// Whether every page was read. Tombstones are only written after a complete sweep.
    pub complete: bool,
    /// What went wrong when the listing is incomplete (recorded in `sweep.completed`).
    pub error: Option<String>,
    /// Provenance of the sweep as a whole (used for tombstones and `sweep.completed`).
    pub provenance: Provenance,
}

impl Collected {
    /// A complete listing.
    pub fn complete(assets: Vec<Asset>, provenance: Provenance) -> Self {
        Self {
            assets,
            complete: true,
            error: None,
            provenance,
        }
    }
}

/// What went wrong in a source; a `collect` error fails the whole sweep (nothing but a
/// `failed` `sweep.completed` is published, and nothing is tombstoned).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Invalid configuration or input (bad URL, malformed asset file): fix it, retrying won't help.
    #[error("{0}")]
    Config(String),
    /// The provider refused our credentials (HTTP 401/403, expired token).
    #[error("{0}")]
    Auth(String),
    /// Network or provider trouble that may pass (timeouts, 5xx).
    #[error("{0}")]
    Transient(String),
    /// The provider answered something we cannot understand.
    #[error("{0}")]
    BadResponse(String),
}

/// How a caller should react to a [`SourceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    Config,
    Auth,
    Transient,
    BadResponse,
}

impl SourceError {
    pub fn kind(&self) -> SourceErrorKind {
        match self {
            Self::Config(_) => SourceErrorKind::Config,
            Self::Auth(_) => SourceErrorKind::Auth,
            Self::Transient(_) => SourceErrorKind::Transient,
            Self::BadResponse(_) => SourceErrorKind::BadResponse,
        }
    }
}

impl From<crate::config::ConfigError> for SourceError {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// Provenance with this build's collector name and version.
pub fn provenance(collector: &str, api: impl Into<String>) -> Provenance {
    Provenance {
        collector: collector.to_owned(),
        collector_version: COLLECTOR_VERSION.to_owned(),
        api: api.into(),
        request_ids: Vec::new(),
        pages: 1,
        principal: None,
    }
}
