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

mod client;
mod config;
mod normalise;

use std::collections::HashMap;
use std::future::Future;

use google_cloud_auth::credentials::{self as gauth, Credentials};
use google_cloud_resourcemanager_v3::model::Project;
use inventory_schemas::asset_filter;
use tokio::sync::OnceCell;
use tracing::warn;

pub use config::GcpConfig;

use crate::config::ConfigError;
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};
use crate::sources::shared::http::http_client;
use crate::sources::shared::one_line;
use crate::sources::shared::retry::{deadline_after, retry, Backoff, GaveUp};
use crate::sources::{Common, Settings};
use client::{adc_principal, explain, ResourceManager, StaticToken};
use normalise::normalise;

const PROVIDER: &str = "gcp";
const KIND: &str = "project";
const API: &str = "cloudresourcemanager.projects.search,folders.get";
/// Folder chains deeper than this are cut (GCP allows 10 levels of folders).
const MAX_DEPTH: usize = 32;

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
        let endpoint = config.validate()?;
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

impl Settings for GcpConfig {
    fn build(
        mut self,
        common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send {
        for v in [&mut self.endpoint, &mut self.query, &mut self.access_token] {
            crate::config::unset_if_blank(v);
        }
        self.max_response_bytes = common.max_response_bytes;
        std::future::ready(GcpSource::new(self).map(|s| Box::new(s) as Box<dyn Source>))
    }
}

impl Source for GcpSource {
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
    use inventory_schemas::AssetStatus;

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
