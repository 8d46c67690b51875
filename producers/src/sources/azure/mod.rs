//! The `azure` source: the Azure subscriptions a principal can read, from the Azure Resource
//! Manager (ARM) REST API, reported as `azure/subscription/<subscription GUID>`.
//!
//! - `GET {endpoint}/subscriptions?api-version=2022-12-01`, following `nextLink` to the end.
//! - The management-group path of every subscription from **one** paged
//!   `POST {endpoint}/providers/Microsoft.Management/getEntities?api-version=2021-04-01` per
//!   sweep: it lists every management group and subscription the principal can see, each with
//!   `parentNameChain` (its ancestors, root first). The alternative,
//!   `GET managementGroups/{id}?$expand=ancestors`, needs the parent of each subscription
//!   first and one call per group; getEntities answers for the whole tenant in a page or two.
//!   Read after the subscriptions. Forbidden (403): every `org_path` is empty and the sweep goes
//!   on (a warning says why); any other failure of it fails the sweep (an empty path would be a
//!   spurious change of every subscription).
//!
//! Normalisation: id = `subscriptionId`, name = `displayName`, status from `state`
//! (`Enabled`, `Warned`, `PastDue` → `active`: Azure says all three can still be used;
//! `Disabled`, `Expired` → `suspended`; `Deleted` → `closed`; anything else `unknown`),
//! `org_path` = management-group names root → parent, `labels` = `tags`, `raw` = the whole
//! subscription record (it has no volatile field), `region_residency` empty (a subscription has
//! no region; `locationPlacementId` is a placement policy, not a location).
//!
//! Failures: 429, 5xx and connection errors are retried with exponential backoff and jitter
//! (a `Retry-After` is honoured) until the retry deadline. A first page that still fails fails
//! the sweep (401/403 as one line, e.g. `ARM GET /subscriptions: 401
//! ExpiredAuthenticationToken: ...`); a later page that fails makes the sweep `partial`: what
//! was read is published, nothing is tombstoned. The token is sent to the configured endpoint
//! only (a `nextLink` to another host is refused) and never logged or published.

mod auth;
mod client;
mod config;
mod normalise;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use inventory_schemas::{asset_filter, Provenance};
use reqwest::StatusCode;
use serde_json::Value;
use tracing::{info, warn};
use url::Url;

pub use config::{AzureConfig, DEFAULT_API_VERSION, DEFAULT_ENDPOINT, DEFAULT_TOKEN_SCOPE};

use crate::config::{display_url, ConfigError};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};
use crate::sources::shared::http::http_client;
use crate::sources::{Common, Settings};
use auth::one_line;
use client::{ancestry, bad_endpoint, parse, Arm, Calls, EntityPage, ListPage};
use normalise::normalise;

const PROVIDER: &str = "azure";
const KIND: &str = "subscription";
/// `api-version` of the management-groups API (getEntities).
pub const MANAGEMENT_API_VERSION: &str = "2021-04-01";
const SUBSCRIPTIONS_API: &str = "GET /subscriptions";
const ENTITIES_API: &str = "POST /providers/Microsoft.Management/getEntities";

/// The `azure` source.
pub struct AzureSource {
    scope: String,
    base: Url,
    api_version: String,
    management_groups: bool,
    token_scope: String,
    arm: Arm,
    credential: Arc<dyn TokenCredential>,
    credential_kind: &'static str,
}

impl fmt::Debug for AzureSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureSource")
            .field("scope", &self.scope)
            .field("endpoint", &display_url(&self.base))
            .field("credential", &self.credential_kind)
            .finish_non_exhaustive()
    }
}

impl AzureSource {
    /// Validates the config and selects the credential (see the module docs). Errors name the
    /// setting (`AZURE_RESOURCE_MANAGER_ENDPOINT: relative URL without a base`).
    pub fn new(config: AzureConfig) -> Result<Self, ConfigError> {
        let client = http_client(config.timeout)?;
        let chosen = auth::choose(&config, &client)?;
        Self::build(config, client, chosen.credential, chosen.kind)
    }

    /// Like [`AzureSource::new`], with a credential of the caller's choosing (credential
    /// settings in `config` are ignored).
    pub fn with_credential(
        config: AzureConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ConfigError> {
        let client = http_client(config.timeout)?;
        Self::build(config, client, credential, "custom credential")
    }

    fn build(
        config: AzureConfig,
        client: reqwest::Client,
        credential: Arc<dyn TokenCredential>,
        credential_kind: &'static str,
    ) -> Result<Self, ConfigError> {
        let (scope, base) = config.validate()?;
        Ok(Self {
            scope,
            base,
            api_version: config.api_version,
            management_groups: config.management_groups,
            token_scope: config.token_scope,
            arm: Arm {
                client,
                retry_base: config.retry_base,
                retry_max: config.retry_max,
                deadline: config.deadline,
                max_body: config.max_response_bytes,
            },
            credential,
            credential_kind,
        })
    }

    async fn token(&self) -> Result<String, SourceError> {
        self.credential
            .get_token(&[self.token_scope.as_str()], None)
            .await
            .map(|t| t.token.secret().to_owned())
            .map_err(|e| {
                SourceError::Auth(format!(
                    "Azure credential ({}): {}",
                    self.credential_kind,
                    one_line(&e)
                ))
            })
    }

    async fn sweep(&self) -> Result<Collected, SourceError> {
        let token = self.token().await?;
        let principal = auth::principal(&token)
            .unwrap_or_else(|| format!("azure-identity:{}", self.credential_kind));
        let mut calls = Calls::default();

        let mut url = self.base.join("subscriptions").map_err(bad_endpoint)?;
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        let mut records = Vec::new();
        let mut incomplete = None;
        let mut page = 0u32;
        loop {
            page += 1;
            let body = match self
                .arm
                .call(
                    reqwest::Method::GET,
                    &url,
                    SUBSCRIPTIONS_API,
                    &token,
                    &mut calls,
                )
                .await
            {
                Ok(body) => body,
                Err(e) if page == 1 => return Err(e),
                Err(e) => {
                    incomplete = Some(format!("page {page}: {e}"));
                    break;
                }
            };
            calls.pages += 1;
            let list: ListPage = parse(SUBSCRIPTIONS_API, &body)?;
            records.extend(list.value);
            match list.next_link.filter(|l| !l.is_empty()) {
                None => break,
                Some(next) => match self.next_url(&next) {
                    Ok(next) => url = next,
                    Err(e) => {
                        incomplete = Some(format!("page {}: {e}", page + 1));
                        break;
                    }
                },
            }
        }

        // After the listing, so that a refused token is reported by the main call.
        let paths = if self.management_groups {
            self.management_group_paths(&token, &mut calls).await?
        } else {
            None
        };

        let mut api = format!("{SUBSCRIPTIONS_API}?api-version={}", self.api_version);
        if paths.is_some() {
            api.push_str(&format!(
                ", {ENTITIES_API}?api-version={MANAGEMENT_API_VERSION}"
            ));
        }
        let prov = Provenance {
            request_ids: calls.request_ids,
            pages: calls.pages,
            principal: Some(principal),
            ..provenance(PROVIDER, api)
        };
        let no_path = Vec::new();
        let mut assets = Vec::with_capacity(records.len());
        let mut seen = std::collections::HashSet::new();
        for record in records {
            let id = record
                .get("subscriptionId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // A subscription repeated across pages (the listing moved under us) counts once.
            if !id.is_empty() && !seen.insert(id.to_ascii_lowercase()) {
                continue;
            }
            let org_path = paths
                .as_ref()
                .and_then(|p| p.get(&id.to_ascii_lowercase()))
                .unwrap_or(&no_path)
                .clone();
            assets.push(normalise(record, org_path, prov.clone())?);
        }
        info!(scope = %self.scope, subscriptions = assets.len(), pages = prov.pages, complete = incomplete.is_none(), "azure subscriptions listed");
        Ok(Collected {
            assets,
            complete: incomplete.is_none(),
            error: incomplete,
            provenance: prov,
        })
    }

    /// Management-group names root → parent, by lower-case subscription id; `None` when the
    /// principal may not read management groups.
    async fn management_group_paths(
        &self,
        token: &str,
        calls: &mut Calls,
    ) -> Result<Option<HashMap<String, Vec<String>>>, SourceError> {
        let mut url = self
            .base
            .join("providers/Microsoft.Management/getEntities")
            .map_err(bad_endpoint)?;
        url.query_pairs_mut()
            .append_pair("api-version", MANAGEMENT_API_VERSION);
        let mut entities = Vec::new();
        loop {
            let body = match self
                .arm.call(reqwest::Method::POST, &url, ENTITIES_API, token, calls)
                .await
            {
                Ok(body) => body,
                Err(SourceError::Auth(why)) if calls.refused == Some(StatusCode::FORBIDDEN) => {
                    warn!(scope = %self.scope, reason = %why, "management groups not readable; org_path left empty (grant Management Group Reader)");
                    return Ok(None);
                }
                Err(e @ SourceError::Auth(_)) => return Err(e),
                Err(e) => {
                    return Err(SourceError::Transient(format!(
                        "{e} (management-group paths are needed for a correct listing; set AZURE_MANAGEMENT_GROUPS=false to skip them)"
                    )))
                }
            };
            let list: EntityPage = parse(ENTITIES_API, &body)?;
            entities.extend(list.value);
            match list.next_link.filter(|l| !l.is_empty()) {
                None => break,
                Some(next) => url = self.next_url(&next)?,
            }
        }
        Ok(Some(ancestry(&entities)))
    }

    /// Resolves a `nextLink` and refuses one that leaves the configured endpoint (the bearer
    /// token goes with it).
    fn next_url(&self, link: &str) -> Result<Url, SourceError> {
        let url = self
            .base
            .join(link)
            .map_err(|e| SourceError::BadResponse(format!("nextLink {link:?}: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(SourceError::BadResponse(format!(
                "nextLink points to {}, not the configured endpoint {}",
                url.origin().ascii_serialization(),
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }
}

impl Settings for AzureConfig {
    fn build(
        mut self,
        common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send {
        self.unset_blanks();
        self.max_response_bytes = common.max_response_bytes;
        std::future::ready(AzureSource::new(self).map(|s| Box::new(s) as Box<dyn Source>))
    }
}

impl Source for AzureSource {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn scope(&self) -> &str {
        &self.scope
    }

    /// Every Azure subscription; those another scope reported are never tombstoned by this one
    /// (source check).
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
    use normalise::status;
    use serde_json::json;

    fn source(endpoint: &str) -> Result<AzureSource, ConfigError> {
        let mut c = AzureConfig::new("contoso");
        c.endpoint = endpoint.into();
        c.access_token = Some("t".into());
        AzureSource::new(c)
    }

    #[test]
    fn config_errors_name_the_setting_and_debug_redacts() {
        let e = source("management.azure.com").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("AZURE_RESOURCE_MANAGER_ENDPOINT: "),
            "{e}"
        );
        let mut c = AzureConfig::new("con.toso");
        c.access_token = Some("t".into());
        let e = AzureSource::new(c).unwrap_err();
        assert!(e.to_string().starts_with("AZURE_SCOPE: "), "{e}");
        let mut c = AzureConfig::new("contoso");
        c.client_secret = Some("s3cr3t".into());
        c.access_token = Some("t0k3n".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0k3n"),
            "{shown}"
        );
        assert!(crate::config::boolean("maybe").is_err());
        assert!(!crate::config::boolean("False").unwrap());
        let e = AzureSource::new(AzureConfig {
            scope: None,
            access_token: Some("t".into()),
            ..AzureConfig::new("x")
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AZURE_SCOPE: required but not set (or set AZURE_TENANT_ID)"
        );
    }

    #[test]
    fn next_links_must_stay_on_the_endpoint() {
        let s = source("http://127.0.0.1:8080").unwrap();
        let ok = s
            .next_url("http://127.0.0.1:8080/subscriptions?api-version=2022-12-01&%24skiptoken=x")
            .unwrap();
        assert_eq!(ok.path(), "/subscriptions");
        let e = s
            .next_url("https://evil.example.com/subscriptions?x=1")
            .unwrap_err();
        assert!(e.to_string().contains("not the configured endpoint"), "{e}");
        assert_eq!(s.source_uri(), "/collectors/azure/contoso");
        assert_eq!(s.subject_filter(), "inventory.asset.azure.subscription.*");
    }

    #[test]
    fn a_subscription_normalises() {
        let record = json!({
            "id": "/subscriptions/5f1c1f4e-0b5a-4a4e-9a53-8f0b3c1d2e3f",
            "subscriptionId": "5f1c1f4e-0b5a-4a4e-9a53-8f0b3c1d2e3f",
            "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "displayName": "prod-payments",
            "state": "PastDue",
            "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "tags": {"team": "payments", "pci": true}
        });
        let a = normalise(
            record.clone(),
            vec!["root".into()],
            provenance("azure", "x"),
        )
        .unwrap();
        assert_eq!(
            a.key().unwrap().to_string(),
            "azure/subscription/5f1c1f4e-0b5a-4a4e-9a53-8f0b3c1d2e3f"
        );
        assert_eq!(
            (a.name.as_str(), a.status),
            ("prod-payments", AssetStatus::Active)
        );
        assert_eq!(a.labels["team"], "payments");
        assert_eq!(a.labels["pci"], "true");
        assert_eq!(a.raw, record);
        assert_eq!(status("Disabled"), AssetStatus::Suspended);
        assert_eq!(status("Deleted"), AssetStatus::Closed);
        assert_eq!(status("Sideways"), AssetStatus::Unknown);
        assert!(normalise(json!({"id": "x"}), vec![], provenance("azure", "x")).is_err());
    }
}
