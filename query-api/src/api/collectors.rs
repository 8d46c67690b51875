//! `GET /api/v1/collectors`.

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::ApiTags;
use crate::auth::OptionalBearer;
use crate::model::CollectorList;
use crate::problem_responses;
use crate::service::collectors;
use crate::state::AppState;

problem_responses! {
    /// Errors of the collector listing.
    pub enum CollectorsError {
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
    }
}

/// Freshness of the collectors.
pub struct CollectorsApi {
    state: AppState,
}

impl CollectorsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Collectors")]
impl CollectorsApi {
    /// List collector scopes
    ///
    /// Per collector scope: the newest sweep's outcome, counts and age, the newest ok sweep, and
    /// `stale` when no ok sweep finished within twice the expected interval.
    #[oai(path = "/collectors", method = "get", operation_id = "listCollectors")]
    async fn list(&self, auth: OptionalBearer) -> Result<Json<CollectorList>, CollectorsError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(Json(collectors::list(&self.state).await?))
    }
}
