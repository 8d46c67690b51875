//! `GET /healthz`, `GET /readyz` and `GET /metrics`.

use inventory_projector::read;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};
use tracing::{debug, warn};

use super::ApiTags;
use crate::metrics::ReadModelFigures;
use crate::model::Readiness;
use crate::problem_responses;
use crate::service::health::readiness;
use crate::state::AppState;

problem_responses! {
    /// Not ready (503, always added): the projector is catching up, stalled, lagging beyond
    /// `INVENTORY_READY_MAX_LAG`, or stopped; `detail` says which.
    pub enum NotReady {}
}

/// The Prometheus exposition.
#[derive(Debug, ApiResponse)]
pub enum MetricsResponse {
    /// Prometheus text format 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

/// Probes and metrics (never need a token).
pub struct HealthApi {
    state: AppState,
}

impl HealthApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves requests (answered without touching the read model).
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness
    ///
    /// 200 once the embedded projector has caught up with the stream's tip at start, while it
    /// keeps up; 503 with the reason before that, when the projector stopped, when it lags more
    /// than `INVENTORY_READY_MAX_LAG` events, or when for `INVENTORY_READY_STALL_AFTER` it has
    /// applied nothing while the stream holds newer events or has not reached the stream.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Result<Json<Readiness>, NotReady> {
        let status = self.state.status.borrow().clone();
        Ok(Json(readiness(
            &status,
            &self.state.ready,
            std::time::Instant::now(),
        )?))
    }

    /// Prometheus metrics
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> MetricsResponse {
        let status = self.state.status.borrow().clone();
        // The same answer as /readyz at this instant.
        let ready = readiness(&status, &self.state.ready, std::time::Instant::now()).is_ok();
        let read = self
            .state
            .pool
            .run(|conn| {
                Ok(ReadModelFigures {
                    rejected: read::rejected_by_reason(conn)?,
                    sweeps: read::list_sweeps(conn)?,
                    duckdb_memory_bytes: read::duckdb_memory_bytes(conn)?,
                })
            })
            .await;
        let figures = match read {
            Ok(f) => Some(f),
            // Too many reads in progress: this scrape goes without the read model's figures.
            Err(e @ crate::reads::ReadError::Busy { .. }) => {
                debug!(error = %e, "metrics: the read model is busy");
                None
            }
            Err(e) => {
                warn!(error = %e, "metrics: cannot read the read model");
                None
            }
        };
        MetricsResponse::Ok(PlainText(self.state.metrics.render(
            &status,
            ready,
            figures.as_ref(),
        )))
    }
}
