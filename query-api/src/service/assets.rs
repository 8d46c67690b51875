//! Assets and cloud accounts ([`crate::api`]'s `assets.rs`): the listings, and one asset.

use inventory_projector::history::{self, Point};
use inventory_projector::read::AssetQuery;
use inventory_schemas::AssetKey;

use super::{page, per_provider, resolve_point, PointError};
use crate::fast_json::FastJson;
use crate::model::{AccountProvider, AssetDoc, AssetPage, StatusFilter};
use crate::params::shown;
use crate::problem::{ErrorCode, ServiceError};
use crate::state::AppState;

/// Kinds `/accounts` lists.
pub const ACCOUNT_KINDS: [&str; 3] = ["account", "project", "subscription"];

/// Which assets `GET /api/v1/assets` lists.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub status: Option<StatusFilter>,
    /// A case-insensitive substring of the name.
    pub name: Option<String>,
    /// Also assets a complete sweep found deleted.
    pub include_deleted: bool,
}

/// `GET /api/v1/assets`: a page of `limit` assets after the key `after`, now or `as_of`.
pub async fn list(
    state: &AppState,
    filter: AssetFilter,
    limit: u32,
    after: Option<String>,
    as_of: Option<Point>,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let q = AssetQuery {
        provider: filter.provider,
        kinds: filter.kind.into_iter().collect(),
        status: filter.status.map(|s| s.as_str().to_owned()),
        name_contains: filter.name,
        include_deleted: filter.include_deleted,
        after,
        limit,
    };
    page(state, vec![q], limit, as_of).await
}

/// `GET /api/v1/accounts`: AWS accounts, GCP projects, Azure subscriptions.
pub async fn list_accounts(
    state: &AppState,
    provider: Option<AccountProvider>,
    status: Option<StatusFilter>,
    limit: u32,
    after: Option<String>,
    as_of: Option<Point>,
) -> Result<FastJson<AssetPage>, ServiceError> {
    let providers = AccountProvider::VALUES
        .iter()
        .copied()
        .filter(|pr| provider.is_none_or(|want| want.as_str() == *pr));
    let queries = per_provider(providers, &ACCOUNT_KINDS, status, after, limit);
    page(state, queries, limit, as_of).await
}

/// `GET /api/v1/assets/{key}` (deleted assets included, with `deleted_at`).
pub async fn get(
    state: &AppState,
    key: AssetKey,
    as_of: Option<Point>,
) -> Result<FastJson<AssetDoc>, ServiceError> {
    let key = key.to_string();
    let k = key.clone();
    let (row, seq) = match as_of {
        None => {
            let snap = state.pool.snapshot();
            (snap.get(&k), snap.seq())
        }
        Some(p) => state
            .pool
            .run_at(move |conn, snap| {
                Ok(match resolve_point(conn, snap, "as_of", p) {
                    Ok(at) => Ok((history::get_asset_at(snap, &k, at)?, snap.seq())),
                    Err(e) => Err(e),
                })
            })
            .await?
            .map_err(PointError::into_service)?,
    };
    let row = row.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::NotFound,
            match as_of {
                None => format!("no asset with key {:?} in the read model", shown(&key)),
                Some(_) => format!(
                    "no asset with key {:?} had been recorded at as_of",
                    shown(&key)
                ),
            },
        )
    })?;
    Ok(FastJson {
        body: AssetDoc::from(row),
        seq,
    })
}
