//! `GET /api/v1/monitoring` and `POST /api/v1/monitoring`.

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use crate::auth::{BearerToken, OptionalBearer};
use crate::fast_json::FastJson;
use crate::model::{
    AssetPage, DeclareBody, DeclareOutcome, Declared, MonitoringKind, StatusFilter,
};
use crate::params::{KeyCursor, Limit, OptionalPoint};
use crate::problem_responses;
use crate::service::monitoring;
use crate::state::AppState;

use super::assets::ListError;

problem_responses! {
    /// Errors of a declaration.
    pub enum DeclareError {
        /// The body is malformed or a field is invalid; `parameter` names the field.
        400 => BadRequest,
        /// No token, or a token that is not configured.
        401 => Unauthorized,
        /// The token is a viewer token; declarations need a writer token.
        403 => Forbidden,
        /// A collector observes this endpoint (a declaration cannot override an observation),
        /// or another writer changed it between the read and the write (retry).
        409 => Conflict,
        /// The body is larger than `INVENTORY_MAX_BODY_BYTES`.
        413 => PayloadTooLarge,
        /// The body is not `application/json`.
        415 => UnsupportedMediaType,
    }
}

/// Success of a declaration.
#[derive(Debug, ApiResponse)]
pub enum DeclareResponse {
    /// An event was published (`outcome` is `discovered` or `changed`); the embedded projector
    /// applies it shortly after.
    #[oai(status = 201)]
    Created(
        Json<Declared>,
        /// The asset's URL in this API.
        #[oai(header = "Location")]
        String,
    ),
    /// The stream already says exactly this (`outcome` is `unchanged`); nothing was published.
    #[oai(status = 200)]
    Unchanged(Json<Declared>),
}

/// Prometheus and Grafana endpoints.
pub struct MonitoringApi {
    state: AppState,
}

impl MonitoringApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Monitoring")]
impl MonitoringApi {
    /// List monitoring endpoints
    ///
    /// Prometheus and Grafana endpoints (provider `prometheus`/`grafana`, kind `endpoint`),
    /// ordered by key, paged. Deleted ones are not listed.
    #[oai(path = "/monitoring", method = "get", operation_id = "listMonitoring")]
    async fn list(
        &self,
        auth: OptionalBearer,
        /// Kind of endpoint (default: both).
        kind: Query<Option<MonitoringKind>>,
        /// Normalised status.
        status: Query<Option<StatusFilter>>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Limit>,
        /// `next_cursor` of the previous page.
        cursor: Query<KeyCursor>,
        /// The view as the stream stood at this point: an RFC 3339 time (the newest event
        /// JetStream recorded at or before it) or `seq:N` (a stream sequence). Absent: now.
        as_of: Query<OptionalPoint>,
    ) -> Result<FastJson<AssetPage>, ListError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(monitoring::list(
            &self.state,
            kind.0,
            status.0,
            limit.0 .0,
            cursor.0 .0,
            as_of.0 .0,
        )
        .await?)
    }

    /// Declare a monitoring endpoint
    ///
    /// Publishes a `discovered` (new) or `changed` (different) event with source `/api` and
    /// status `declared`, conditional on the endpoint's newest event (409 if another writer
    /// was first, or if a collector observes the endpoint). An identical declaration publishes
    /// nothing and answers 200. Needs a writer token.
    #[oai(
        path = "/monitoring",
        method = "post",
        operation_id = "declareMonitoring"
    )]
    async fn declare(
        &self,
        auth: BearerToken,
        body: Json<DeclareBody>,
    ) -> Result<DeclareResponse, DeclareError> {
        let principal = self.state.tokens.authorize_write(Some(&auth.0.token))?;
        let declared =
            crate::declare::declare(self.state.publisher.as_ref(), &principal, &body.0 .0).await?;
        Ok(match declared.outcome {
            DeclareOutcome::Unchanged => DeclareResponse::Unchanged(Json(declared)),
            DeclareOutcome::Discovered | DeclareOutcome::Changed => {
                let location = format!("/api/v1/assets/{}", percent_encode(&declared.key));
                DeclareResponse::Created(Json(declared), location)
            }
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (so `/` becomes `%2F`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(
            super::percent_encode("aws/account/1 2~ü"),
            "aws%2Faccount%2F1%202~%C3%BC"
        );
    }
}
