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

/// How many assets of a listing ([`list`]'s filter, now or `as_of`) there are per provider,
/// kind and status: the console's facets. Counts come from the folded state (now) or the
/// versions index (past views), so no asset document is read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetCounts {
    /// Assets matching the whole filter.
    pub total: u64,
    pub provider: std::collections::BTreeMap<String, u64>,
    pub kind: std::collections::BTreeMap<String, u64>,
    pub status: std::collections::BTreeMap<String, u64>,
}

impl FacetCounts {
    fn add(&mut self, provider: &str, kind: &str, status: &str) {
        self.total += 1;
        for (map, v) in [
            (&mut self.provider, provider),
            (&mut self.kind, kind),
            (&mut self.status, status),
        ] {
            *map.entry(v.to_owned()).or_default() += 1;
        }
    }
}

/// The facet counts of the assets [`list`] would page through with `filter` (every page).
pub async fn facets(
    state: &AppState,
    filter: AssetFilter,
    as_of: Option<Point>,
) -> Result<FacetCounts, ServiceError> {
    let q = AssetQuery {
        provider: filter.provider,
        kinds: filter.kind.into_iter().collect(),
        status: filter.status.map(|s| s.as_str().to_owned()),
        name_contains: filter.name,
        include_deleted: filter.include_deleted,
        after: None,
        limit: u32::MAX,
    };
    match as_of {
        // Walks the matching part of the estate: off the executor.
        None => {
            let snap = state.pool.snapshot();
            Ok(state
                .pool
                .blocking(move || {
                    let m = q.matcher();
                    let mut counts = FacetCounts::default();
                    for (_, c) in snap.keys(&q).filter(|(_, c)| m.state(&c.state)) {
                        counts.add(&c.state.provider, &c.state.kind, &c.state.status);
                    }
                    counts
                })
                .await?)
        }
        Some(p) => state
            .pool
            .run_at(move |conn, snap| {
                let at = match resolve_point(conn, snap, "as_of", p) {
                    Ok(at) => at,
                    Err(e) => return Ok(Err(e)),
                };
                let m = q.matcher();
                let versions = snap.versions();
                let mut counts = FacetCounts::default();
                for (k, c) in snap.keys(&q) {
                    let Some(v) = versions.at(k, at) else {
                        continue;
                    };
                    if versions.matches(&m, &v) {
                        counts.add(&c.state.provider, &c.state.kind, versions.status(&v));
                    }
                }
                Ok(Ok(counts))
            })
            .await?
            .map_err(PointError::into_service),
    }
}
