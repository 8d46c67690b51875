//! `GET /api/v1/assets`, `GET /api/v1/assets/{key}` and `GET /api/v1/accounts`.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::ApiTags;
use crate::auth::OptionalBearer;
use crate::fast_json::FastJson;
use crate::model::{
    AccountProvider, AssetDoc, AssetFacets, AssetPage, FacetValue, StatusFilter, TopFacetValues,
};
use crate::params::{
    Flag, KeyCursor, KeyParam, LabelFilter, Limit, NameFilter, OptionalPoint, Word,
};
use crate::problem_responses;
use crate::service::assets::{self, AssetFilter};
use crate::state::AppState;

problem_responses! {
    /// Errors of the listings.
    pub enum ListError {
        /// A parameter is malformed or out of range; `parameter` names it.
        400 => BadRequest,
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
        /// `as_of` names a sequence beyond the newest event the read model holds.
        404 => NotFound,
    }
}

problem_responses! {
    /// Errors of `GET /api/v1/assets/{key}`.
    pub enum GetAssetError {
        /// The key is not `<provider>/<kind>/<native id>`.
        400 => BadRequest,
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
        /// No asset with this key has been recorded (at `as_of`), or `as_of` names a sequence
        /// beyond the newest event the read model holds.
        404 => NotFound,
    }
}

/// The filter of the listing and its facets, from their common parameters (one place for
/// both routes).
fn asset_filter(
    provider: Query<Word>,
    kind: Query<Word>,
    status: Query<Option<StatusFilter>>,
    name: Query<NameFilter>,
    label: Query<Option<Vec<LabelFilter>>>,
    org_path: Query<NameFilter>,
    include_deleted: Query<Flag>,
) -> AssetFilter {
    AssetFilter {
        provider: provider.0 .0,
        kind: kind.0 .0,
        status: status.0,
        name: name.0 .0,
        labels: label.0.into_iter().flatten().filter_map(|l| l.0).collect(),
        org_path: org_path.0 .0,
        include_deleted: include_deleted.0 .0,
    }
}

/// Assets of every provider and kind.
pub struct AssetsApi {
    state: AppState,
}

impl AssetsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Assets")]
impl AssetsApi {
    /// List assets
    ///
    /// The current view (or, with `as_of`, the view at a past point of the stream), ordered by
    /// key, filtered and paged. Deleted assets are hidden unless `include_deleted=true`.
    #[oai(path = "/assets", method = "get", operation_id = "listAssets")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: OptionalBearer,
        /// Provider (`aws`, `gcp`, `azure`, `prometheus`, `grafana`, `file`, ...): 1-64 of `[a-z0-9_-]`.
        provider: Query<Word>,
        /// Kind (`account`, `project`, `subscription`, `endpoint`, ...): 1-64 of `[a-z0-9_-]`.
        kind: Query<Word>,
        /// Normalised status.
        status: Query<Option<StatusFilter>>,
        /// Search text (at most 256 characters): a case-insensitive substring of the name, or
        /// the whole native id (e.g. a bare AWS account id) or key.
        name: Query<NameFilter>,
        /// A label the asset carries, `key:value` (e.g. `team:payments`; at most 256
        /// characters). Repeatable: `label=team:payments&label=owner:ana` lists assets carrying
        /// all of them (at most 16). With `as_of`, each candidate's document then is read.
        label: Query<Option<Vec<LabelFilter>>>,
        /// An org path prefix of whole segments (e.g. `o-root/ou-prod`; at most 256
        /// characters). With `as_of`, each candidate's document then is read.
        org_path: Query<NameFilter>,
        /// Also list assets a complete sweep found deleted (default false).
        include_deleted: Query<Flag>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Limit>,
        /// `next_cursor` of the previous page.
        cursor: Query<KeyCursor>,
        /// The view as the stream stood at this point: an RFC 3339 time (the newest event
        /// JetStream recorded at or before it) or `seq:N` (a stream sequence). Absent: now.
        as_of: Query<OptionalPoint>,
    ) -> Result<FastJson<AssetPage>, ListError> {
        self.state.tokens.authorize_read(auth.token())?;
        let filter = asset_filter(
            provider,
            kind,
            status,
            name,
            label,
            org_path,
            include_deleted,
        );
        Ok(assets::list(&self.state, filter, limit.0 .0, cursor.0 .0, as_of.0 .0).await?)
    }

    /// Count assets per facet
    ///
    /// How many assets `GET /api/v1/assets` with the same filters lists (every page), per
    /// provider, kind and status, and per org path prefix and label (the 20 most frequent of
    /// each), now or as the assets stood at `as_of`.
    #[oai(path = "/assets/facets", method = "get", operation_id = "assetFacets")]
    #[allow(clippy::too_many_arguments)]
    async fn facets(
        &self,
        auth: OptionalBearer,
        /// Provider: 1-64 of `[a-z0-9_-]`.
        provider: Query<Word>,
        /// Kind: 1-64 of `[a-z0-9_-]`.
        kind: Query<Word>,
        /// Normalised status.
        status: Query<Option<StatusFilter>>,
        /// Search text, as `GET /api/v1/assets` takes it.
        name: Query<NameFilter>,
        /// A label `key:value`; repeatable (all of them, at most 16).
        label: Query<Option<Vec<LabelFilter>>>,
        /// An org path prefix of whole segments.
        org_path: Query<NameFilter>,
        /// Also count assets a complete sweep found deleted (default false).
        include_deleted: Query<Flag>,
        /// The view as the stream stood at this point: an RFC 3339 time (the newest event
        /// JetStream recorded at or before it) or `seq:N` (a stream sequence). Absent: now.
        as_of: Query<OptionalPoint>,
    ) -> Result<Json<AssetFacets>, ListError> {
        self.state.tokens.authorize_read(auth.token())?;
        let filter = asset_filter(
            provider,
            kind,
            status,
            name,
            label,
            org_path,
            include_deleted,
        );
        let counts = assets::facets(&self.state, filter, as_of.0 .0).await?;
        let values = |m: std::collections::BTreeMap<String, u64>| {
            m.into_iter()
                .map(|(value, count)| FacetValue { value, count })
                .collect()
        };
        let top = |t: assets::TopValues| TopFacetValues {
            values: t
                .values
                .into_iter()
                .map(|(value, count)| FacetValue { value, count })
                .collect(),
            more: t.more,
        };
        Ok(Json(AssetFacets {
            total: counts.total,
            provider: values(counts.provider),
            kind: values(counts.kind),
            status: values(counts.status),
            org_path: counts.org_path.map(top),
            labels: counts.labels.map(top),
            as_of_seq: counts.as_of_seq,
        }))
    }

    /// Get one asset
    ///
    /// The key contains slashes: send it percent-encoded (`/api/v1/assets/aws%2Faccount%2F123`)
    /// or as a path tail (`/api/v1/assets/aws/account/123`). Deleted assets are returned with
    /// `deleted_at`.
    #[oai(path = "/assets/:key", method = "get", operation_id = "getAsset")]
    async fn get(
        &self,
        auth: OptionalBearer,
        /// `<provider>/<kind>/<native id>`, e.g. `aws/account/123456789012`.
        key: Path<KeyParam>,
        /// The view as the stream stood at this point: an RFC 3339 time (the newest event
        /// JetStream recorded at or before it) or `seq:N` (a stream sequence). Absent: now.
        as_of: Query<OptionalPoint>,
    ) -> Result<FastJson<AssetDoc>, GetAssetError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(assets::get(&self.state, key.0 .0, as_of.0 .0).await?)
    }
}

/// Account-like assets of the clouds.
pub struct AccountsApi {
    state: AppState,
}

impl AccountsApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// List cloud accounts
    ///
    /// AWS accounts, GCP projects and Azure subscriptions (kinds `account`, `project`,
    /// `subscription`), ordered by key, paged. Deleted ones are not listed.
    #[oai(path = "/accounts", method = "get", operation_id = "listAccounts")]
    async fn list(
        &self,
        auth: OptionalBearer,
        /// Cloud provider (default: all three).
        provider: Query<Option<AccountProvider>>,
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
        Ok(assets::list_accounts(
            &self.state,
            provider.0,
            status.0,
            limit.0 .0,
            cursor.0 .0,
            as_of.0 .0,
        )
        .await?)
    }
}
