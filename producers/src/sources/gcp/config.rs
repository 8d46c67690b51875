//! Settings of the `gcp` source.

use std::time::Duration;

use crate::config::{
    defaults, parse_endpoint_url, secs, validate_name, ConfigError, DEFAULT_MAX_RESPONSE_BYTES,
};

/// Settings of the `gcp` source: the flags of `inventory collect gcp`, each with its
/// environment variable. Credentials: Application Default Credentials, or `--access-token`.
/// `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct GcpConfig {
    /// Base URL of the Resource Manager v3 API, for private endpoints and tests (default
    /// https://cloudresourcemanager.googleapis.com).
    #[arg(long, env = "GCP_RESOURCEMANAGER_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// SearchProjects query, e.g. parent:organizations/123 (default: every project the
    /// principal can see).
    #[arg(long, env = "GCP_PROJECT_QUERY")]
    pub query: Option<String>,
    /// The collector scope: events come from /collectors/gcp/<scope> (use the organisation id
    /// when there is one).
    #[arg(long, env = "GCP_SCOPE", default_value = "gcp-default")]
    pub scope: String,
    /// Projects asked for per page (1-1000).
    #[arg(long, env = "GCP_PAGE_SIZE", default_value = "100")]
    pub page_size: i32,
    /// Time budget of the whole listing, retries included, in seconds.
    #[arg(long = "deadline-secs", env = "GCP_DEADLINE_SECS", value_name = "SECS", default_value = "300", value_parser = secs)]
    pub deadline: Duration,
    /// Timeout of each HTTP attempt, in seconds.
    #[arg(long = "timeout-secs", env = "GCP_TIMEOUT_SECS", value_name = "SECS", default_value = "30", value_parser = secs)]
    pub timeout: Duration,
    /// First retry wait (doubles, capped at `retry_max`, with full jitter). Default 500 ms; not
    /// a setting.
    #[arg(skip = Duration::from_millis(500))]
    pub retry_initial: Duration,
    /// Upper bound of any single retry wait, in seconds, Google's Retry-After included: a
    /// longer one is clamped to it.
    #[arg(long = "retry-max-wait-secs", env = "GCP_RETRY_MAX_WAIT_SECS", value_name = "SECS", default_value = "30", value_parser = secs)]
    pub retry_max: Duration,
    /// Largest response body read, in bytes: `inventory collect --max-response-bytes`
    /// (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    #[arg(skip = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: u64,
    /// Static OAuth 2 access token instead of ADC (tests and CI only); never logged, never
    /// published. From the environment only (a secret on the command line is refused).
    #[arg(long, env = "GCP_ACCESS_TOKEN", hide_env_values = true)]
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
    /// Every default: ADC, the public endpoint, scope `gcp-default`.
    fn default() -> Self {
        defaults(&[])
    }
}

impl GcpConfig {
    /// Checks the settings; the error names the wrong one
    /// (`GCP_RESOURCEMANAGER_ENDPOINT: relative URL without a base`, ...). Returns the endpoint
    /// without its trailing `/` (the client appends `/v3/...`).
    pub fn validate(&self) -> Result<Option<String>, ConfigError> {
        validate_name("GCP_SCOPE", &self.scope)?;
        let endpoint = match &self.endpoint {
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
        if !(1..=1000).contains(&self.page_size) {
            return Err(ConfigError::invalid(
                "GCP_PAGE_SIZE",
                format!("{} is not within 1..=1000", self.page_size),
            ));
        }
        if self.access_token.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::invalid("GCP_ACCESS_TOKEN", "is empty"));
        }
        Ok(endpoint)
    }
}
