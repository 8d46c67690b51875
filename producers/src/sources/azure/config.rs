//! Settings of the `azure` source.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::config::{
    boolean, defaults, parse_endpoint_url, secs, validate_name, ConfigError,
    DEFAULT_MAX_RESPONSE_BYTES,
};

/// Default ARM endpoint (public cloud).
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// Default `api-version` of the subscriptions API.
pub const DEFAULT_API_VERSION: &str = "2022-12-01";
/// Default token scope: ARM in the public cloud.
pub const DEFAULT_TOKEN_SCOPE: &str = "https://management.azure.com/.default";

/// Settings of the `azure` source: the flags of `inventory collect azure`, each with its
/// environment variable. The credential is chosen from them (see `auth.rs`): an access token,
/// a client secret, workload identity, else the host's managed identity. `Debug` redacts the
/// secret and the token.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct AzureConfig {
    /// Collector scope, the <scope> of /collectors/azure/<scope>: 1-128 of [A-Za-z0-9_-]
    /// (default: AZURE_TENANT_ID; one of the two is required).
    #[arg(long, env = "AZURE_SCOPE")]
    pub scope: Option<String>,
    /// ARM base URL; set it for sovereign clouds, private endpoints and tests.
    #[arg(long, env = "AZURE_RESOURCE_MANAGER_ENDPOINT", value_name = "URL", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// api-version of GET /subscriptions.
    #[arg(long, env = "AZURE_SUBSCRIPTIONS_API_VERSION", default_value = DEFAULT_API_VERSION)]
    pub api_version: String,
    /// Read the management-group path of each subscription (true or false).
    #[arg(long, env = "AZURE_MANAGEMENT_GROUPS", value_name = "BOOL", default_value = "true", value_parser = boolean, action = clap::ArgAction::Set)]
    pub management_groups: bool,
    /// Scope of the requested token.
    #[arg(long, env = "AZURE_TOKEN_SCOPE", default_value = DEFAULT_TOKEN_SCOPE)]
    pub token_scope: String,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long = "timeout-secs", env = "AZURE_TIMEOUT_SECS", value_name = "SECS", default_value = "30", value_parser = secs)]
    pub timeout: Duration,
    /// How long one ARM request may be retried, in seconds.
    #[arg(long = "retry-deadline-secs", env = "AZURE_RETRY_DEADLINE_SECS", value_name = "SECS", default_value = "60", value_parser = secs)]
    pub deadline: Duration,
    /// Upper bound of the first retry wait, doubled per attempt up to `retry_max` (default
    /// 500 ms); not a setting.
    #[arg(skip = Duration::from_millis(500))]
    pub retry_base: Duration,
    /// Upper bound of any single retry wait, in seconds, ARM's Retry-After included: a longer
    /// one is clamped to it.
    #[arg(long = "retry-max-wait-secs", env = "AZURE_RETRY_MAX_WAIT_SECS", value_name = "SECS", default_value = "30", value_parser = secs)]
    pub retry_max: Duration,
    /// Largest response body read, in bytes: `inventory collect --max-response-bytes`
    /// (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default [`DEFAULT_MAX_RESPONSE_BYTES`]); a
    /// larger ARM or Entra ID answer fails the request.
    #[arg(skip = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: u64,
    /// Entra ID tenant of the credential.
    #[arg(long, env = "AZURE_TENANT_ID")]
    pub tenant_id: Option<String>,
    /// Client id of the app registration or user-assigned identity.
    #[arg(long, env = "AZURE_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret of the app registration; never logged. From the environment only (a secret on the command line is refused).
    #[arg(long, env = "AZURE_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Projected service-account token of Azure Workload Identity (injected by the AKS
    /// webhook).
    #[arg(long, env = "AZURE_FEDERATED_TOKEN_FILE", value_name = "FILE")]
    pub federated_token_file: Option<PathBuf>,
    /// A ready bearer token: tests and CI only; never logged. From the environment only (a secret on the command line is refused).
    #[arg(long, env = "AZURE_ACCESS_TOKEN", hide_env_values = true)]
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
            scope: Some(scope.into()),
            ..defaults(&[])
        }
    }

    /// A blank optional setting counts as unset (an empty ConfigMap key).
    pub(super) fn unset_blanks(&mut self) {
        for v in [
            &mut self.scope,
            &mut self.tenant_id,
            &mut self.client_id,
            &mut self.client_secret,
            &mut self.access_token,
        ] {
            crate::config::unset_if_blank(v);
        }
        if self
            .federated_token_file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            self.federated_token_file = None;
        }
    }

    /// Checks the settings; the error names the wrong one
    /// (`AZURE_RESOURCE_MANAGER_ENDPOINT: relative URL without a base`). Returns the scope
    /// (`AZURE_SCOPE`, else `AZURE_TENANT_ID`) and the ARM base URL.
    pub fn validate(&self) -> Result<(String, Url), ConfigError> {
        let scope = self
            .scope
            .clone()
            .or_else(|| self.tenant_id.clone())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "AZURE_SCOPE",
                    "required but not set (or set AZURE_TENANT_ID)",
                )
            })?;
        validate_name("AZURE_SCOPE", &scope)?;
        let base = parse_endpoint_url("AZURE_RESOURCE_MANAGER_ENDPOINT", &self.endpoint)?;
        let version_ok = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !version_ok(&self.api_version) {
            return Err(ConfigError::invalid(
                "AZURE_SUBSCRIPTIONS_API_VERSION",
                format!("{:?} is not an api-version", self.api_version),
            ));
        }
        if self.token_scope.trim().is_empty() {
            return Err(ConfigError::Missing {
                setting: "AZURE_TOKEN_SCOPE".into(),
            });
        }
        Ok((scope, base))
    }
}
