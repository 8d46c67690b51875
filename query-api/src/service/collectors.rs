//! The collectors' freshness ([`crate::api`]'s `collectors.rs`).

use chrono::Utc;

use crate::model::{CollectorDoc, CollectorList};
use crate::problem::ServiceError;
use crate::state::AppState;

/// `GET /api/v1/collectors`.
pub async fn list(state: &AppState) -> Result<CollectorList, ServiceError> {
    let rows = state.pool.snapshot().sweeps();
    let now = Utc::now();
    let stale_after =
        chrono::Duration::from_std(state.sweep_interval * 2).unwrap_or(chrono::Duration::MAX);
    Ok(CollectorList {
        items: rows
            .into_iter()
            .map(|r| CollectorDoc::from_row(r, now, stale_after))
            .collect(),
        expected_interval_seconds: state.sweep_interval.as_secs(),
    })
}
