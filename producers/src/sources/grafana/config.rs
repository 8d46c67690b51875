//! Settings of the `grafana` source.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use crate::config::{
    defaults, parse_endpoint_url, secs_up_to_an_hour, validate_name, ConfigError,
    DEFAULT_MAX_RESPONSE_BYTES,
};

/// Settings of the `grafana` source: the flags of `inventory collect grafana`, each with its
/// environment variable. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, clap::Args)]
pub struct GrafanaConfig {
    /// Base URL of the Grafana server, e.g. http://grafana:3000.
    #[arg(long, env = "GRAFANA_URL")]
    pub url: String,
    /// Grafana service-account token (sent as a bearer token; never stored or logged). From the environment only (a secret on the command line is refused).
    #[arg(long, env = "GRAFANA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Name of the endpoint asset: its id and the collector scope.
    #[arg(long, env = "GRAFANA_NAME", default_value = "grafana-default")]
    pub name: String,
    /// Timeout of each HTTP request to the server, in seconds.
    #[arg(long = "timeout-secs", env = "GRAFANA_TIMEOUT_SECS", value_name = "SECS", default_value = "10", value_parser = secs_up_to_an_hour)]
    pub timeout: Duration,
    /// Largest response body read, in bytes: `inventory collect --max-response-bytes`
    /// (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    #[arg(skip = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: u64,
}

impl fmt::Debug for GrafanaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrafanaConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl GrafanaConfig {
    /// The server at `url`, no token, every other setting its default (`grafana-default`,
    /// 10 s).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..defaults(&["--url=-"])
        }
    }

    /// Checks the settings; the error names the wrong one (`GRAFANA_URL: ...`,
    /// `GRAFANA_TOKEN: ...`). Returns the base URL and the `Authorization` header of the token,
    /// marked sensitive.
    pub(super) fn validate(&self) -> Result<(Url, Option<HeaderValue>), ConfigError> {
        validate_name("GRAFANA_NAME", &self.name)?;
        let base = parse_endpoint_url("GRAFANA_URL", &self.url)?;
        let auth = match self.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    ConfigError::invalid(
                        "GRAFANA_TOKEN",
                        "contains characters not allowed in an HTTP header",
                    )
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok((base, auth))
    }
}
