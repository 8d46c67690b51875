//! Monitoring endpoints ([`crate::api`]'s `monitoring.rs`): the listing. Declarations are
//! [`crate::declare`]'s.

use inventory_projector::history::Point;

use super::{page, per_provider};
use crate::fast_json::FastJson;
use crate::model::{AssetPage, MonitoringKind, StatusFilter};
use crate::problem::ServiceError;
use crate::state::AppState;

/// `GET /api/v1/monitoring`: Prometheus and Grafana endpoints.
pub async fn list(
    state: &AppState,
    kind: Option<MonitoringKind>,
    status: Option<StatusFilter>,
    limit: u32,
    after: Option<String>,
    as_of: Option<Point>,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let providers = MonitoringKind::VALUES
        .iter()
        .copied()
        .filter(|pr| kind.is_none_or(|want| want.provider() == *pr));
    let queries = per_provider(providers, &["endpoint"], status, after, limit);
    page(state, queries, limit, as_of).await
}
