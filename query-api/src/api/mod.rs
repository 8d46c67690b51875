//! The HTTP endpoints: one `Api` struct per resource group, thin handlers over [`crate::service`]
//! and [`crate::declare`].

mod assets;
mod collectors;
mod health;
mod history;
mod integrity;
mod monitoring;
mod rejected;
mod sse;

use poem_openapi::{OpenApi, Tags};

pub use assets::{AccountsApi, AssetsApi};
pub use collectors::CollectorsApi;
pub use health::HealthApi;
pub use history::HistoryApi;
pub use integrity::IntegrityApi;
pub use monitoring::MonitoringApi;
pub use rejected::RejectedApi;
pub use sse::FeedEvents;

use crate::state::AppState;

/// Groups of operations in the spec.
#[derive(Tags)]
pub enum ApiTags {
    /// The current view of every asset.
    Assets,
    /// AWS accounts, GCP projects, Azure subscriptions.
    Accounts,
    /// Prometheus and Grafana endpoints.
    Monitoring,
    /// Past views, an asset's history, changes, diffs and the live change feed.
    History,
    /// Freshness of the collectors.
    Collectors,
    /// The stream's signed checkpoints, as this server verified them.
    Integrity,
    /// Liveness, readiness and metrics.
    Operations,
}

/// Every API group, as one `OpenApi` value.
pub type Apis = (
    AssetsApi,
    AccountsApi,
    MonitoringApi,
    HistoryApi,
    CollectorsApi,
    IntegrityApi,
    RejectedApi,
    HealthApi,
);

/// The API groups over `state`.
pub fn apis(state: &AppState) -> Apis {
    (
        AssetsApi::new(state.clone()),
        AccountsApi::new(state.clone()),
        MonitoringApi::new(state.clone()),
        HistoryApi::new(state.clone()),
        CollectorsApi::new(state.clone()),
        IntegrityApi::new(state.clone()),
        RejectedApi::new(state.clone()),
        HealthApi::new(state.clone()),
    )
}

/// Path templates of every operation in the spec (`/api/v1/assets/{key}`, ...).
pub fn spec_paths() -> Vec<String> {
    <Apis as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths.into_iter().map(|p| p.path))
        .collect()
}
