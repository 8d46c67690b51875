//! `GET /healthz`, `GET /readyz` and `GET /metrics`.

use inventory_projector::read;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};
use tracing::warn;

use super::ApiTags;
use crate::model::Readiness;
use crate::problem_responses;
use crate::service;
use crate::state::AppState;

problem_responses! {
    /// Not ready.
    pub enum NotReady {
        /// The projector is still catching up with the stream, or it stopped; `detail` says which.
        503 => Unavailable,
    }
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
    /// 200 while the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// Readiness
    ///
    /// 200 once the embedded projector has caught up with the stream's tip at start; 503 with
    /// the reason before that, or when the projector stopped.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Result<Json<Readiness>, NotReady> {
        let status = self.state.status.borrow().clone();
        Ok(Json(service::readiness(&status)?))
    }

    /// Prometheus metrics
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> MetricsResponse {
        let status = self.state.status.borrow().clone();
        let read = self
            .state
            .pool
            .run(|conn| Ok((read::rejected_by_reason(conn)?, read::list_sweeps(conn)?)))
            .await;
        let (rejected, sweeps) = match read {
            Ok((r, s)) => (Some(r), Some(s)),
            Err(e) => {
                warn!(error = %e, "metrics: cannot read the read model");
                (None, None)
            }
        };
        MetricsResponse::Ok(PlainText(self.state.metrics.render(
            &status,
            rejected.as_deref(),
            sweeps.as_deref(),
        )))
    }
}
