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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use inventory_schemas::{asset_filter, Asset, AssetStatus, Provenance};
use reqwest::StatusCode;
use serde_json::Value;
use tracing::{info, warn};
use url::Url;

use super::azure_auth::{self, one_line};
use super::azure_rest::{ancestry, bad_endpoint, parse, Arm, Calls, EntityPage, ListPage};
use super::retry::DEFAULT_MAX_WAIT;
use crate::config::{
    display_url, env_opt, http_client, parse_endpoint_url, parse_secs, validate_name, ConfigError,
    DEFAULT_MAX_RESPONSE_BYTES,
};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};

const PROVIDER: &str = "azure";
const KIND: &str = "subscription";
/// Default ARM endpoint (public cloud).
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// Default `api-version` of the subscriptions API.
pub const DEFAULT_API_VERSION: &str = "2022-12-01";
/// `api-version` of the management-groups API (getEntities).
pub const MANAGEMENT_API_VERSION: &str = "2021-04-01";
/// Default token scope: ARM in the public cloud.
pub const DEFAULT_TOKEN_SCOPE: &str = "https://management.azure.com/.default";
const SUBSCRIPTIONS_API: &str = "GET /subscriptions";
const ENTITIES_API: &str = "POST /providers/Microsoft.Management/getEntities";

/// Settings of the `azure` source. `Debug` redacts the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// Collector scope, the `<scope>` of `/collectors/azure/<scope>` (`AZURE_SCOPE`, default
    /// `AZURE_TENANT_ID`): 1-128 of `[A-Za-z0-9_-]`.
    pub scope: String,
    /// ARM base URL (`AZURE_RESOURCE_MANAGER_ENDPOINT`, default `https://management.azure.com`);
    /// set it for sovereign clouds, private endpoints and tests.
    pub endpoint: String,
    /// `api-version` of `GET /subscriptions` (`AZURE_SUBSCRIPTIONS_API_VERSION`, default
    /// `2022-12-01`).
    pub api_version: String,
    /// Read the management-group path of each subscription (`AZURE_MANAGEMENT_GROUPS`,
    /// `true`/`false`, default `true`).
    pub management_groups: bool,
    /// Scope of the requested token (`AZURE_TOKEN_SCOPE`, default
    /// `https://management.azure.com/.default`).
    pub token_scope: String,
    /// Timeout of one HTTP request (`AZURE_TIMEOUT_SECS`, default 30).
    pub timeout: Duration,
    /// How long one ARM request may be retried (`AZURE_RETRY_DEADLINE_SECS`, default 60).
    pub deadline: Duration,
    /// Upper bound of the first retry wait, doubled per attempt up to `retry_max` (default
    /// 500 ms).
    pub retry_base: Duration,
    /// Upper bound of any single retry wait, ARM's `Retry-After` included: a longer one is
    /// clamped to it (`AZURE_RETRY_MAX_WAIT_SECS`, default 30).
    pub retry_max: Duration,
    /// Largest response body read, in bytes (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]); a larger ARM or Entra ID answer fails the request.
    pub max_response_bytes: u64,
    /// Entra ID tenant of the credential (`AZURE_TENANT_ID`).
    pub tenant_id: Option<String>,
    /// Client id of the app registration or user-assigned identity (`AZURE_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Client secret of the app registration (`AZURE_CLIENT_SECRET`); never logged.
    pub client_secret: Option<String>,
    /// Projected service-account token of Azure Workload Identity
    /// (`AZURE_FEDERATED_TOKEN_FILE`, injected by the AKS webhook).
    pub federated_token_file: Option<PathBuf>,
    /// A ready bearer token (`AZURE_ACCESS_TOKEN`): tests and CI only; never logged.
    pub access_token: Option<String>,
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("AzureConfig")
            .field("scope", &self.scope)
            .field("endpoint", &self.endpoint)
            .field("api_version", &self.api_version)
            .field("management_groups", &self.management_groups)
            .field("token_scope", &self.token_scope)
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &redact(&self.client_secret))
            .field("federated_token_file", &self.federated_token_file)
            .field("access_token", &redact(&self.access_token))
            .finish()
    }
}

impl AzureConfig {
    /// A config for `scope` with every default and no credential setting (managed identity).
    pub fn new(scope: impl Into<String>) -> Self {
        Self {
            scope: scope.into(),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            management_groups: true,
            token_scope: DEFAULT_TOKEN_SCOPE.to_owned(),
            timeout: Duration::from_secs(30),
            deadline: Duration::from_secs(60),
            retry_base: Duration::from_millis(500),
            retry_max: DEFAULT_MAX_WAIT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            tenant_id: None,
            client_id: None,
            client_secret: None,
            federated_token_file: None,
            access_token: None,
        }
    }

    /// Reads `AZURE_SCOPE` or `AZURE_TENANT_ID` (one is required), `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`, `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_RESOURCE_MANAGER_ENDPOINT`,
    /// `AZURE_SUBSCRIPTIONS_API_VERSION`, `AZURE_MANAGEMENT_GROUPS`, `AZURE_TOKEN_SCOPE`,
    /// `AZURE_TIMEOUT_SECS`, `AZURE_RETRY_DEADLINE_SECS`, `AZURE_RETRY_MAX_WAIT_SECS` and
    /// `AZURE_ACCESS_TOKEN`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let tenant_id = env_opt("AZURE_TENANT_ID");
        let scope = env_opt("AZURE_SCOPE")
            .or_else(|| tenant_id.clone())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "AZURE_SCOPE",
                    "required but not set (or set AZURE_TENANT_ID)",
                )
            })?;
        let mut c = Self::new(scope);
        c.tenant_id = tenant_id;
        c.client_id = env_opt("AZURE_CLIENT_ID");
        c.client_secret = env_opt("AZURE_CLIENT_SECRET");
        c.federated_token_file = env_opt("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from);
        c.access_token = env_opt("AZURE_ACCESS_TOKEN");
        if let Some(v) = env_opt("AZURE_RESOURCE_MANAGER_ENDPOINT") {
            c.endpoint = v;
        }
        if let Some(v) = env_opt("AZURE_SUBSCRIPTIONS_API_VERSION") {
            c.api_version = v;
        }
        if let Some(v) = env_opt("AZURE_TOKEN_SCOPE") {
            c.token_scope = v;
        }
        if let Some(v) = env_opt("AZURE_MANAGEMENT_GROUPS") {
            c.management_groups = parse_bool("AZURE_MANAGEMENT_GROUPS", &v)?;
        }
        if let Some(v) = env_opt("AZURE_TIMEOUT_SECS") {
            c.timeout = parse_secs("AZURE_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env_opt("AZURE_RETRY_DEADLINE_SECS") {
            c.deadline = parse_secs("AZURE_RETRY_DEADLINE_SECS", &v)?;
        }
        if let Some(v) = env_opt("AZURE_RETRY_MAX_WAIT_SECS") {
            c.retry_max = parse_secs("AZURE_RETRY_MAX_WAIT_SECS", &v)?;
        }
        Ok(c)
    }
}

fn parse_bool(setting: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ConfigError::invalid(
            setting,
            format!("{value:?} is not true or false"),
        )),
    }
}

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
        let chosen = azure_auth::choose(&config, &client)?;
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
        validate_name("AZURE_SCOPE", &config.scope)?;
        let base = parse_endpoint_url("AZURE_RESOURCE_MANAGER_ENDPOINT", &config.endpoint)?;
        let version_ok = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !version_ok(&config.api_version) {
            return Err(ConfigError::invalid(
                "AZURE_SUBSCRIPTIONS_API_VERSION",
                format!("{:?} is not an api-version", config.api_version),
            ));
        }
        if config.token_scope.trim().is_empty() {
            return Err(ConfigError::Missing {
                setting: "AZURE_TOKEN_SCOPE".into(),
            });
        }
        Ok(Self {
            scope: config.scope,
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
        let principal = azure_auth::principal(&token)
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

/// Maps ARM's subscription `state` to the asset status (see the module docs).
fn status(state: &str) -> AssetStatus {
    match state {
        "Enabled" | "Warned" | "PastDue" => AssetStatus::Active,
        "Disabled" | "Expired" => AssetStatus::Suspended,
        "Deleted" => AssetStatus::Closed,
        _ => AssetStatus::Unknown,
    }
}

/// Builds the subscription asset from its ARM record.
fn normalise(
    record: Value,
    org_path: Vec<String>,
    provenance: Provenance,
) -> Result<Asset, SourceError> {
    let text = |k: &str| record.get(k).and_then(Value::as_str).map(str::to_owned);
    let id = text("subscriptionId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            SourceError::BadResponse(format!(
                "ARM {SUBSCRIPTIONS_API}: a subscription without subscriptionId: {}",
                record.get("id").unwrap_or(&Value::Null)
            ))
        })?;
    let labels: BTreeMap<String, String> = record
        .get("tags")
        .and_then(Value::as_object)
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Asset {
        name: text("displayName").unwrap_or_else(|| id.clone()),
        status: status(text("state").as_deref().unwrap_or_default()),
        url: Some(format!(
            "https://portal.azure.com/#resource/subscriptions/{id}/overview"
        )),
        id,
        provider: PROVIDER.to_owned(),
        kind: KIND.to_owned(),
        org_path,
        region_residency: Vec::new(),
        auth_mode: None,
        labels,
        raw: record,
        provenance,
    })
}

impl Source for AzureSource {
    fn name(&self) -> &str {
        PROVIDER
    }

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
        assert!(parse_bool("AZURE_MANAGEMENT_GROUPS", "maybe").is_err());
        assert!(!parse_bool("X", "False").unwrap());
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
