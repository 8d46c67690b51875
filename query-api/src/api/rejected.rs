//! `GET /api/v1/rejected`: what the read model refused to apply, for operators.

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::ApiTags;
use crate::auth::OptionalBearer;
use crate::model::{RejectReasonCode, RejectedPage};
use crate::params::{Limit, SeqCursor};
use crate::problem_responses;
use crate::service::rejected;
use crate::state::AppState;

problem_responses! {
    /// Errors of the rejected listing.
    pub enum RejectedError {
        /// A parameter is malformed or out of range; `parameter` names it.
        400 => BadRequest,
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
    }
}

/// Messages of the stream that were not applied.
pub struct RejectedApi {
    state: AppState,
}

impl RejectedApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Operations")]
impl RejectedApi {
    /// List rejected messages
    ///
    /// Messages of the stream the read model did not apply, oldest first: those that are not a
    /// valid event of the NATS subject they were stored on (forged, from another collector's
    /// scope, undecodable, claiming a future time) and those whose data cannot be folded. Each
    /// is also an integrity failure for `inventory verify` (see docs/audit.md).
    #[oai(path = "/rejected", method = "get", operation_id = "listRejected")]
    async fn list(
        &self,
        auth: OptionalBearer,
        /// Only messages rejected for this reason.
        reason: Query<Option<RejectReasonCode>>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Limit>,
        /// `next_cursor` of the previous page.
        cursor: Query<SeqCursor>,
    ) -> Result<Json<RejectedPage>, RejectedError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(Json(
            rejected::list(&self.state, reason.0, limit.0 .0, cursor.0 .0).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inventory_schemas::RejectReason;

    #[test]
    fn the_api_lists_exactly_the_contract_reason_codes() {
        let contract: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(RejectReasonCode::VALUES, contract.as_slice());
    }
}
