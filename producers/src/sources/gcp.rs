//! The `gcp` source: every Google Cloud project the principal can see, from Resource Manager v3
//! `SearchProjects` (its REST API, read into the official `google-cloud-resourcemanager-v3`
//! model types; the official client is not used because its transport reads answers of any
//! size), each reported as `gcp/project/<projectId>` with its folder/organisation path
//! (`GetFolder`, each folder read once per sweep).
//!
//! Credentials: Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, GKE Workload
//! Identity through the metadata server, gcloud user credentials), or a static access token
//! (`GCP_ACCESS_TOKEN`, for tests and CI) that is never logged nor published.
//!
//! Failures: 429 and 5xx are retried with exponential backoff and jitter (a `Retry-After` is
//! honoured, clamped to `GCP_RETRY_MAX_WAIT_SECS`) within the sweep deadline; an answer larger
//! than `INVENTORY_COLLECT_MAX_RESPONSE_BYTES` is refused and not retried. Refused credentials on the first page fail the sweep
//! with one line; a page that still fails after retries (or a folder that cannot be read for a
//! reason other than permission) makes the listing incomplete: what was read is published, the
//! sweep is `partial`, nothing is tombstoned. A folder the principal may not read (403/404) ends
//! the path at that folder: it is kept, not a failure.
//!
//! Volatile fields are left out of `raw`: `etag` and `updateTime` move on any write to the
//! project, including ones this record does not show (tags, IAM-adjacent metadata).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use google_cloud_auth::credentials::{self as gauth, Credentials};
use google_cloud_resourcemanager_v3::model::{project, Project};
use inventory_schemas::{asset_filter, Asset, AssetStatus, Provenance};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::warn;

use super::gcp_client::{adc_principal, explain, one_line, ResourceManager, StaticToken};
use super::retry::{deadline_after, retry, Backoff, GaveUp, DEFAULT_MAX_WAIT};
use crate::config::{
    env_opt, http_client, parse_endpoint_url, parse_secs, validate_name, ConfigError,
    DEFAULT_MAX_RESPONSE_BYTES,
};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};

const PROVIDER: &str = "gcp";
const KIND: &str = "project";
const API: &str = "cloudresourcemanager.projects.search,folders.get";
/// Folder chains deeper than this are cut (GCP allows 10 levels of folders).
const MAX_DEPTH: usize = 32;

/// Settings of the `gcp` source.
#[derive(Clone, PartialEq, Eq)]
pub struct GcpConfig {
    /// Base URL of the Resource Manager v3 API, for private endpoints and tests
    /// (`GCP_RESOURCEMANAGER_ENDPOINT`; default `https://cloudresourcemanager.googleapis.com`).
    pub endpoint: Option<String>,
    /// `SearchProjects` query, e.g. `parent:organizations/123` (`GCP_PROJECT_QUERY`; default:
    /// every project the principal can see).
    pub query: Option<String>,
    /// The collector scope: events come from `/collectors/gcp/<scope>` (`GCP_SCOPE`, default
    /// `gcp-default`; use the organisation id when there is one).
    pub scope: String,
    /// Projects asked for per page (`GCP_PAGE_SIZE`, default 100).
    pub page_size: i32,
    /// Time budget of the whole listing, retries included (`GCP_DEADLINE_SECS`, default 300).
    pub deadline: Duration,
    /// Timeout of each HTTP attempt (`GCP_TIMEOUT_SECS`, default 30).
    pub timeout: Duration,
    /// First retry wait (doubles, capped at `retry_max`, with full jitter). Default 500 ms.
    pub retry_initial: Duration,
    /// Upper bound of any single retry wait, Google's `Retry-After` included: a longer one is
    /// clamped to it (`GCP_RETRY_MAX_WAIT_SECS`, default 30).
    pub retry_max: Duration,
    /// Largest response body read, in bytes (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: u64,
    /// Static OAuth 2 access token instead of ADC (`GCP_ACCESS_TOKEN`; tests and CI only).
    /// Never logged, never published.
    pub access_token: Option<String>,
}

impl std::fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpConfig")
            .field("endpoint", &self.endpoint)
            .field("query", &self.query)
            .field("scope", &self.scope)
            .field("page_size", &self.page_size)
            .field("deadline", &self.deadline)
            .field("timeout", &self.timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("max_response_bytes", &self.max_response_bytes)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for GcpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            query: None,
            scope: "gcp-default".to_owned(),
            page_size: 100,
            deadline: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            retry_initial: Duration::from_millis(500),
            retry_max: DEFAULT_MAX_WAIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            access_token: None,
        }
    }
}

impl GcpConfig {
    /// Reads `GCP_RESOURCEMANAGER_ENDPOINT`, `GCP_PROJECT_QUERY`, `GCP_SCOPE`, `GCP_PAGE_SIZE`,
    /// `GCP_DEADLINE_SECS`, `GCP_TIMEOUT_SECS`, `GCP_RETRY_MAX_WAIT_SECS` and `GCP_ACCESS_TOKEN`,
    /// all optional.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self {
            endpoint: env_opt("GCP_RESOURCEMANAGER_ENDPOINT"),
            query: env_opt("GCP_PROJECT_QUERY"),
            access_token: env_opt("GCP_ACCESS_TOKEN"),
            ..Self::default()
        };
        if let Some(s) = env_opt("GCP_SCOPE") {
            c.scope = s;
        }
        if let Some(p) = env_opt("GCP_PAGE_SIZE") {
            c.page_size = p.trim().parse().map_err(|_| {
                ConfigError::invalid("GCP_PAGE_SIZE", format!("{p:?} is not a number"))
            })?;
        }
        if let Some(t) = env_opt("GCP_DEADLINE_SECS") {
            c.deadline = parse_secs("GCP_DEADLINE_SECS", &t)?;
        }
        if let Some(t) = env_opt("GCP_TIMEOUT_SECS") {
            c.timeout = parse_secs("GCP_TIMEOUT_SECS", &t)?;
        }
        if let Some(t) = env_opt("GCP_RETRY_MAX_WAIT_SECS") {
            c.retry_max = parse_secs("GCP_RETRY_MAX_WAIT_SECS", &t)?;
        }
        Ok(c)
    }
}

/// The `gcp` source.
#[derive(Debug)]
pub struct GcpSource {
    config: GcpConfig,
    /// Validated endpoint without its trailing `/` (the client appends `/v3/...`).
    endpoint: Option<String>,
    principal: String,
    client: reqwest::Client,
    api: OnceCell<ResourceManager>,
}

impl GcpSource {
    /// Validates the config (`GCP_RESOURCEMANAGER_ENDPOINT: relative URL without a base`, ...).
    /// The credentials (ADC) are set up at the first `collect`.
    pub fn new(config: GcpConfig) -> Result<Self, ConfigError> {
        validate_name("GCP_SCOPE", &config.scope)?;
        let endpoint = match &config.endpoint {
            Some(e) => {
                let url = parse_endpoint_url("GCP_RESOURCEMANAGER_ENDPOINT", e)?;
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(ConfigError::invalid(
                        "GCP_RESOURCEMANAGER_ENDPOINT",
                        "must not carry credentials",
                    ));
                }
                Some(url.as_str().trim_end_matches('/').to_owned())
            }
            None => None,
        };
        if !(1..=1000).contains(&config.page_size) {
            return Err(ConfigError::invalid(
                "GCP_PAGE_SIZE",
                format!("{} is not within 1..=1000", config.page_size),
            ));
        }
        if config.access_token.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::invalid("GCP_ACCESS_TOKEN", "is empty"));
        }
        let principal = if config.access_token.is_some() {
            "access-token".to_owned()
        } else {
            adc_principal().unwrap_or_else(|| "adc".to_owned())
        };
        Ok(Self {
            client: http_client(config.timeout)?,
            config,
            endpoint,
            principal,
            api: OnceCell::new(),
        })
    }

    async fn api(&self) -> Result<&ResourceManager, SourceError> {
        self.api
            .get_or_try_init(|| async {
                // Without their default features the Google crates bring no crypto provider (the
                // default one, aws-lc-rs, needs cmake): use ring, which reqwest already uses.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let credentials = match &self.config.access_token {
                    Some(token) => Credentials::from(StaticToken::new(token)?),
                    None => gauth::Builder::default().build().map_err(|e| {
                        SourceError::Auth(format!(
                            "GCP credentials (ADC): {}",
                            one_line(&e.to_string())
                        ))
                    })?,
                };
                ResourceManager::new(
                    self.client.clone(),
                    self.endpoint.as_deref(),
                    credentials,
                    self.config.max_response_bytes,
                )
            })
            .await
    }

    async fn sweep(&self) -> Result<Collected, SourceError> {
        let api = self.api().await?;
        let backoff = Backoff {
            initial: self.config.retry_initial,
            max: self.config.retry_max,
            deadline: deadline_after(self.config.deadline),
        };
        let mut request_ids = Vec::new();
        let mut projects = Vec::new();
        let mut incomplete: Option<String> = None;
        let mut pages = 0u32;
        let mut token = String::new();
        loop {
            let page = retry(backoff, |_| {
                api.search_projects(self.config.query.as_deref(), self.config.page_size, &token)
            })
            .await;
            match page {
                Ok(resp) => {
                    pages += 1;
                    projects.extend(resp.projects);
                    if resp.next_page_token.is_empty() {
                        break;
                    }
                    token = resp.next_page_token;
                }
                Err(gave_up) => {
                    let (e, what) = explain(gave_up, &format!("SearchProjects page {}", pages + 1));
                    request_ids.extend(e.request_ids.iter().cloned());
                    if pages == 0 {
                        return Err(e.into_source_error(what, &self.principal));
                    }
                    incomplete = Some(what);
                    break;
                }
            }
        }

        // Search is eventually consistent: a project may show up on two pages. Keep the last.
        let mut seen = HashMap::new();
        for (i, p) in projects.iter().enumerate() {
            seen.insert(p.project_id.clone(), i);
        }
        let mut projects: Vec<Project> = projects
            .into_iter()
            .enumerate()
            .filter(|(i, p)| seen.get(&p.project_id) == Some(i))
            .map(|(_, p)| p)
            .collect();
        projects.sort_by(|a, b| a.project_id.cmp(&b.project_id));

        // Folder paths, each folder read once in this sweep.
        let mut folders: HashMap<String, FolderLookup> = HashMap::new();
        let mut assets = Vec::with_capacity(projects.len());
        let mut unresolved = 0usize;
        let mut prov = provenance(PROVIDER, API);
        prov.pages = pages;
        prov.principal = Some(self.principal.clone());
        'projects: for p in &projects {
            let mut path = Vec::new();
            let mut cur = p.parent.clone();
            while !cur.is_empty() && path.len() < MAX_DEPTH {
                path.push(cur.clone());
                if !cur.starts_with("folders/") {
                    break; // an organization: the root
                }
                if !folders.contains_key(&cur) {
                    let lookup = self.folder(api, &cur, backoff, &mut request_ids).await;
                    folders.insert(cur.clone(), lookup);
                }
                match &folders[&cur] {
                    FolderLookup::Parent(parent) => cur = parent.clone(),
                    FolderLookup::Hidden => break,
                    FolderLookup::Failed(why) => {
                        unresolved += 1;
                        if incomplete.is_none() {
                            incomplete = Some(why.clone());
                        }
                        continue 'projects;
                    }
                }
            }
            path.reverse();
            assets.push(normalise(p, path, prov.clone()));
        }
        if unresolved > 0 {
            warn!(
                unresolved,
                "projects left out: their folder path could not be read"
            );
        }
        request_ids.sort();
        request_ids.dedup();
        prov.request_ids = request_ids.clone();
        for a in &mut assets {
            a.provenance.request_ids = request_ids.clone();
        }
        Ok(Collected {
            assets,
            complete: incomplete.is_none(),
            error: incomplete,
            provenance: prov,
        })
    }

    /// Reads one folder's parent.
    async fn folder(
        &self,
        api: &ResourceManager,
        name: &str,
        backoff: Backoff,
        request_ids: &mut Vec<String>,
    ) -> FolderLookup {
        let got = retry(backoff, |_| api.get_folder(name)).await;
        match got {
            Ok(f) => FolderLookup::Parent(f.parent),
            Err(GaveUp::Fatal(e)) if e.hidden => {
                warn!(folder = %name, error = %e.line, "folder not readable: the path stops at it");
                FolderLookup::Hidden
            }
            Err(gave_up) => {
                let (e, what) = explain(gave_up, &format!("GetFolder {name}"));
                request_ids.extend(e.request_ids);
                FolderLookup::Failed(what)
            }
        }
    }
}

enum FolderLookup {
    Parent(String),
    /// 403/404: the principal may not see it; the path ends here.
    Hidden,
    Failed(String),
}

/// Builds the project asset: `org_path` is root first (`organizations/1`, `folders/..`, the
/// parent); `raw` is the project record without `etag` and `updateTime`, plus `projectNumber`.
fn normalise(p: &Project, org_path: Vec<String>, provenance: Provenance) -> Asset {
    let mut raw = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut raw {
        m.remove("etag");
        m.remove("updateTime");
        // The client asks for enums as numbers; record the API's own names.
        if let Some(state) = p.state.name() {
            m.insert("state".into(), Value::String(state.to_owned()));
        }
        if let Some(n) = p.name.strip_prefix("projects/") {
            m.insert("projectNumber".into(), Value::String(n.to_owned()));
        }
    }
    let status = match p.state {
        project::State::Active => AssetStatus::Active,
        project::State::DeleteRequested => AssetStatus::PendingClosure,
        _ => AssetStatus::Unknown,
    };
    Asset {
        id: p.project_id.clone(),
        provider: PROVIDER.to_owned(),
        kind: KIND.to_owned(),
        name: if p.display_name.is_empty() {
            p.project_id.clone()
        } else {
            p.display_name.clone()
        },
        status,
        org_path,
        region_residency: Vec::new(),
        url: Some(format!(
            "https://console.cloud.google.com/home/dashboard?project={}",
            p.project_id
        )),
        auth_mode: None,
        labels: p
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        raw,
        provenance,
    }
}

impl Source for GcpSource {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn provider(&self) -> &str {
        PROVIDER
    }

    fn scope(&self) -> &str {
        &self.config.scope
    }

    /// Every GCP project; projects last reported by another scope are never tombstoned by this
    /// one (source check).
    fn subject_filter(&self) -> String {
        asset_filter(Some(PROVIDER), Some(KIND))
    }

    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(self.sweep())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_errors_name_the_setting() {
        let bad = |c: GcpConfig| GcpSource::new(c).unwrap_err().to_string();
        let e = bad(GcpConfig {
            endpoint: Some("localhost:8080/x".into()),
            ..GcpConfig::default()
        });
        assert!(e.starts_with("GCP_RESOURCEMANAGER_ENDPOINT: "), "{e}");
        let e = bad(GcpConfig {
            scope: "org.1".into(),
            ..GcpConfig::default()
        });
        assert!(e.starts_with("GCP_SCOPE: "), "{e}");
        let e = bad(GcpConfig {
            page_size: 0,
            ..GcpConfig::default()
        });
        assert!(e.starts_with("GCP_PAGE_SIZE: "), "{e}");
        let c = GcpConfig {
            access_token: Some("ya29.secret".into()),
            ..GcpConfig::default()
        };
        assert!(!format!("{c:?}").contains("ya29"));
    }

    #[test]
    fn projects_normalise_without_volatile_fields() {
        let p: Project = serde_json::from_value(serde_json::json!({
            "name": "projects/123", "parent": "folders/456", "projectId": "my-proj",
            "state": "DELETE_REQUESTED", "displayName": "", "createTime": "2024-01-02T03:04:05Z",
            "updateTime": "2025-01-02T03:04:05Z", "etag": "W/\"abc\"", "labels": {"env": "prod"}
        }))
        .unwrap();
        let a = normalise(
            &p,
            vec!["organizations/1".into(), "folders/456".into()],
            provenance(PROVIDER, API),
        );
        assert_eq!(a.key().unwrap().to_string(), "gcp/project/my-proj");
        assert_eq!(
            (a.name.as_str(), a.status),
            ("my-proj", AssetStatus::PendingClosure)
        );
        assert_eq!(a.labels["env"], "prod");
        assert_eq!(a.raw["projectNumber"], "123");
        assert_eq!(a.raw["state"], "DELETE_REQUESTED");
        assert!(a.raw.get("etag").is_none() && a.raw.get("updateTime").is_none());
        assert_eq!(a.raw["createTime"], "2024-01-02T03:04:05Z");
    }
}
