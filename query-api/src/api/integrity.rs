//! `GET /api/v1/integrity`.

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::ApiTags;
use crate::auth::OptionalBearer;
use crate::integrity::Integrity;
use crate::problem_responses;
use crate::state::AppState;

problem_responses! {
    /// Errors of the integrity status.
    pub enum IntegrityError {
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
    }
}

/// The stream's signed checkpoints.
pub struct IntegrityApi {
    state: AppState,
}

impl IntegrityApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Integrity")]
impl IntegrityApi {
    /// Signed checkpoint status
    ///
    /// The newest signed checkpoint of the `INVENTORY` stream as this server last checked it in
    /// the background: whether its signature verifies with a configured verifier key
    /// (`INVENTORY_VERIFIER_KEY`) and the stream's messages `1..=size` hash to the Merkle root it
    /// signed (`verified`), why not (`failed`), or that nothing can be claimed (`no_key`,
    /// `no_checkpoint`, `pending`). `verified` is the newest checkpoint that verified: events
    /// with a sequence up to its `size` are covered by it.
    #[oai(path = "/integrity", method = "get", operation_id = "getIntegrity")]
    async fn get(&self, auth: OptionalBearer) -> Result<Json<Integrity>, IntegrityError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(Json(self.state.integrity.borrow().clone()))
    }
}
