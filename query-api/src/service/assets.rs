//! Assets and cloud accounts ([`crate::api`]'s `assets.rs`): the listings, and one asset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use foldhash::fast::RandomState;

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

/// Most `label` filters in one query (each is one more condition every candidate is checked
/// against); more are refused with 400.
pub const MAX_LABEL_FILTERS: usize = 16;

/// Which assets `GET /api/v1/assets` lists.
#[derive(Debug, Clone, Default)]
pub struct AssetFilter {
    pub provider: Option<String>,
    pub kind: Option<String>,
    pub status: Option<StatusFilter>,
    /// A case-insensitive substring of the name.
    pub name: Option<String>,
    /// Labels the asset carries, each `key:value`: all of them (AND), at most
    /// [`MAX_LABEL_FILTERS`].
    pub labels: Vec<String>,
    /// An org path prefix of whole segments, e.g. `o-root/ou-prod`.
    pub org_path: Option<String>,
    /// Also assets a complete sweep found deleted.
    pub include_deleted: bool,
}

impl AssetFilter {
    /// The listing's query (each label's form is checked by its parameter type; their number
    /// here).
    fn query(self) -> Result<AssetQuery, ServiceError> {
        if self.labels.len() > MAX_LABEL_FILTERS {
            return Err(ServiceError::invalid_parameter(
                "label",
                format!(
                    "label may be given at most {MAX_LABEL_FILTERS} times (got {})",
                    self.labels.len()
                ),
            ));
        }
        let org_path = self
            .org_path
            .map(|p| p.trim_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        Ok(AssetQuery {
            provider: self.provider,
            kinds: self.kind.into_iter().collect(),
            status: self.status.map(|s| s.as_str().to_owned()),
            name_contains: self.name,
            labels: self.labels,
            org_path,
            include_deleted: self.include_deleted,
            after: None,
            limit: u32::MAX,
        })
    }
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
        after,
        limit,
        ..filter.query()?
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

/// Most values a facet of labels or org paths returns (the most frequent; see
/// [`FacetCounts::labels`]): an estate with a million distinct labels still renders a page.
pub const FACET_TOP: usize = 20;

/// How many assets of a listing ([`list`]'s filter, now or `as_of`) there are per provider,
/// kind and status, and per org path and label: the console's facets and
/// `GET /api/v1/assets/facets`. Counts come from the folded state and the tags extracted when
/// each asset was folded (now, and in a past view every asset unchanged since), and in a past
/// view from the versions index and, for the assets changed since, their document then
/// ([`history::tagged_assets_at`]): the cost follows how much changed since the point.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacetCounts {
    /// Assets matching the whole filter.
    pub total: u64,
    pub provider: BTreeMap<String, u64>,
    pub kind: BTreeMap<String, u64>,
    pub status: BTreeMap<String, u64>,
    /// Assets per org path prefix (an asset counts under each prefix of its path), the
    /// [`FACET_TOP`] most frequent, most frequent first (always counted; `Option` for the
    /// API's shape).
    pub org_path: Option<TopValues>,
    /// Assets per label (`key:value`), the [`FACET_TOP`] most frequent (always counted).
    pub labels: Option<TopValues>,
    /// With `as_of`: the stream sequence the view stands at.
    pub as_of_seq: Option<u64>,
}

/// The most frequent values of a facet, most frequent first (then by value), and how many
/// distinct values were left off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopValues {
    pub values: Vec<(String, u64)>,
    pub more: u64,
}

impl TopValues {
    fn of(counts: HashMap<&str, u64, RandomState>) -> Self {
        let mut all: Vec<(&str, u64)> = counts.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let more = all.len().saturating_sub(FACET_TOP) as u64;
        all.truncate(FACET_TOP);
        Self {
            values: all.into_iter().map(|(v, n)| (v.to_owned(), n)).collect(),
            more,
        }
    }
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
    let q = filter.query()?;
    match as_of {
        // Walks the matching part of the estate: off the executor.
        None => {
            let snap = state.pool.snapshot();
            Ok(state
                .pool
                .blocking(move || {
                    let m = q.matcher();
                    let mut counts = FacetCounts::default();
                    // foldhash: a few hundred thousand short strings per request.
                    let mut org: HashMap<&str, u64, RandomState> = HashMap::default();
                    let mut labels: HashMap<&str, u64, RandomState> = HashMap::default();
                    for (_, c) in snap.keys(&q).filter(|(_, c)| m.current(c)) {
                        counts.add(&c.state.provider, &c.state.kind, &c.state.status);
                        for p in &c.tags.org_prefixes {
                            *org.entry(p).or_default() += 1;
                        }
                        for l in &c.tags.labels {
                            *labels.entry(l).or_default() += 1;
                        }
                    }
                    counts.org_path = Some(TopValues::of(org));
                    counts.labels = Some(TopValues::of(labels));
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
                let mut counts = FacetCounts {
                    as_of_seq: Some(at),
                    ..FacetCounts::default()
                };
                let mut org: HashMap<Arc<str>, u64, RandomState> = HashMap::default();
                let mut labels: HashMap<Arc<str>, u64, RandomState> = HashMap::default();
                history::tagged_assets_at(snap, &q, at, |provider, kind, status, tags| {
                    counts.add(provider, kind, status);
                    for p in &tags.org_prefixes {
                        *org.entry(Arc::clone(p)).or_default() += 1;
                    }
                    for l in &tags.labels {
                        *labels.entry(Arc::clone(l)).or_default() += 1;
                    }
                })?;
                counts.org_path =
                    Some(TopValues::of(org.iter().map(|(k, n)| (&**k, *n)).collect()));
                counts.labels = Some(TopValues::of(
                    labels.iter().map(|(k, n)| (&**k, *n)).collect(),
                ));
                Ok(Ok(counts))
            })
            .await?
            .map_err(PointError::into_service),
    }
}
