//! Settings of the `prometheus` source.

use std::time::Duration;

use url::Url;

use crate::config::{
    defaults, parse_endpoint_url, secs_up_to_an_hour, validate_name, ConfigError,
    DEFAULT_MAX_RESPONSE_BYTES,
};

/// Settings of the `prometheus` source: the flags of `inventory collect prometheus`, each with
/// its environment variable.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PrometheusConfig {
    /// Base URL of the Prometheus server, e.g. http://prometheus:9090.
    #[arg(long, env = "PROM_URL")]
    pub url: String,
    /// Name of the endpoint asset: its id and the collector scope.
    #[arg(long, env = "PROM_NAME", default_value = "prom-default")]
    pub name: String,
    /// Timeout of each HTTP request to the server, in seconds.
    #[arg(long = "timeout-secs", env = "PROM_TIMEOUT_SECS", value_name = "SECS", default_value = "10", value_parser = secs_up_to_an_hour)]
    pub timeout: Duration,
    /// Largest response body read, in bytes: `inventory collect --max-response-bytes`
    /// (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default [`DEFAULT_MAX_RESPONSE_BYTES`]).
    #[arg(skip = DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: u64,
}

impl PrometheusConfig {
    /// The server at `url`, every other setting its default (`prom-default`, 10 s).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..defaults(&["--url=-"])
        }
    }

    /// Checks the settings; the error names the wrong one (`PROM_URL: relative URL without a
    /// base`). Returns the base URL.
    pub fn validate(&self) -> Result<Url, ConfigError> {
        validate_name("PROM_NAME", &self.name)?;
        parse_endpoint_url("PROM_URL", &self.url)
    }
}
