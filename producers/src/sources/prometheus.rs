//! The `prometheus` source: one Prometheus server, reported as the asset
//! `prometheus/endpoint/<name>` from its own HTTP API (`/-/healthy`, `/api/v1/status/buildinfo`,
//! `/api/v1/status/runtimeinfo`).
//!
//! An endpoint that does not answer is still a complete sweep: it exists and is `down`. Only
//! stable fields go to `raw` (version, revision, branch, goVersion, storageRetention): start
//! times, reload timestamps and counters would make every sweep a `changed`.

use std::time::Duration;

use inventory_schemas::{asset_filter, Asset, AssetStatus};
use reqwest::Client;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use super::http::{get, Reply};
use crate::config::{
    display_url, http_client, parse_endpoint_url, validate_name, ConfigError, DEFAULT_HTTP_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};

const PROVIDER: &str = "prometheus";
const API: &str = "GET /-/healthy, GET /api/v1/status/buildinfo, GET /api/v1/status/runtimeinfo";
const BUILD_FIELDS: [&str; 4] = ["version", "revision", "branch", "goVersion"];
const RUNTIME_FIELDS: [&str; 1] = ["storageRetention"];

/// Settings of the `prometheus` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// Endpoint name: the asset id and the collector scope (`PROM_NAME`, default `prom-default`).
    pub name: String,
    /// Base URL of the server, e.g. `http://prometheus:9090` (`PROM_URL`).
    pub url: String,
    /// Timeout of each HTTP request (`PROM_TIMEOUT_SECS`, default 10).
    pub timeout: Duration,
    /// Largest response body read, in bytes (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]).
    pub max_response_bytes: u64,
}

impl PrometheusConfig {
    /// A config with the default name and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            name: "prom-default".to_owned(),
            url: url.into(),
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// The `prometheus` source.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    name: String,
    base: Url,
    max_body: u64,
    client: Client,
}

impl PrometheusSource {
    /// Validates the config (`PROM_URL: relative URL without a base`, ...).
    pub fn new(config: PrometheusConfig) -> Result<Self, ConfigError> {
        validate_name("PROM_NAME", &config.name)?;
        let base = parse_endpoint_url("PROM_URL", &config.url)?;
        Ok(Self {
            name: config.name,
            base,
            max_body: config.max_response_bytes,
            client: http_client(config.timeout)?,
        })
    }

    /// Fetches `data` of a Prometheus API answer, keeping only `fields`. `Ok(None)`: no usable
    /// answer (the endpoint is down or unhealthy).
    async fn status_fields(
        &self,
        path: &str,
        fields: &[&str],
    ) -> Result<Option<Map<String, Value>>, SourceError> {
        let (status, body) = match get(&self.client, &self.base, path, self.max_body, |r| r).await?
        {
            Reply::Answered { status, body } if status.is_success() => (status, body),
            Reply::Answered { .. } | Reply::Unreachable(_) => return Ok(None),
        };
        #[derive(Deserialize)]
        struct Envelope {
            status: String,
            #[serde(default)]
            data: Map<String, Value>,
        }
        let envelope: Envelope = serde_json::from_str(&body).map_err(|e| {
            SourceError::BadResponse(format!(
                "GET {}/{path}: HTTP {status} but not a Prometheus API answer ({e}); is PROM_URL a Prometheus server?",
                display_url(&self.base)
            ))
        })?;
        if envelope.status != "success" {
            return Ok(None);
        }
        Ok(Some(
            envelope
                .data
                .into_iter()
                .filter(|(k, _)| fields.contains(&k.as_str()))
                .collect(),
        ))
    }

    async fn observe(&self) -> Result<Asset, SourceError> {
        let healthy = match get(&self.client, &self.base, "-/healthy", self.max_body, |r| r).await?
        {
            Reply::Answered { status, .. } => status.is_success(),
            Reply::Unreachable(why) => {
                tracing::info!(endpoint = %self.name, reason = %why, "prometheus endpoint unreachable");
                false
            }
        };
        let mut raw = Map::new();
        let mut build_ok = false;
        if healthy {
            if let Some(build) = self
                .status_fields("api/v1/status/buildinfo", &BUILD_FIELDS)
                .await?
            {
                build_ok = true;
                raw.extend(build);
            }
            if let Some(runtime) = self
                .status_fields("api/v1/status/runtimeinfo", &RUNTIME_FIELDS)
                .await?
            {
                raw.extend(runtime);
            }
        }
        Ok(normalise(
            &self.name,
            &display_url(&self.base),
            healthy && build_ok,
            raw,
        ))
    }
}

/// Builds the endpoint asset from what the server said.
fn normalise(name: &str, url: &str, up: bool, raw: Map<String, Value>) -> Asset {
    Asset {
        id: name.to_owned(),
        provider: PROVIDER.to_owned(),
        kind: "endpoint".to_owned(),
        name: name.to_owned(),
        status: if up {
            AssetStatus::Up
        } else {
            AssetStatus::Down
        },
        org_path: Vec::new(),
        region_residency: Vec::new(),
        url: Some(url.to_owned()),
        auth_mode: Some("none".to_owned()),
        labels: Default::default(),
        raw: Value::Object(raw),
        provenance: provenance(PROVIDER, API),
    }
}

impl Source for PrometheusSource {
    fn name(&self) -> &str {
        PROVIDER
    }

    fn provider(&self) -> &str {
        PROVIDER
    }

    fn scope(&self) -> &str {
        &self.name
    }

    /// Every Prometheus endpoint; other collectors' endpoints are never tombstoned (source check).
    fn subject_filter(&self) -> String {
        asset_filter(Some(PROVIDER), Some("endpoint"))
    }

    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(async move {
            let asset = self.observe().await?;
            Ok(Collected::complete(vec![asset], provenance(PROVIDER, API)))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_errors_name_the_setting() {
        let e = PrometheusSource::new(PrometheusConfig::new("localhost:9090/x")).unwrap_err();
        assert!(e.to_string().starts_with("PROM_URL: "), "{e}");
        let e = PrometheusSource::new(PrometheusConfig::new("/prom")).unwrap_err();
        assert_eq!(e.to_string(), "PROM_URL: relative URL without a base");
        let mut c = PrometheusConfig::new("http://127.0.0.1:9090");
        c.name = "prom.eu".into();
        let e = PrometheusSource::new(c).unwrap_err();
        assert!(e.to_string().starts_with("PROM_NAME: "), "{e}");
    }

    #[test]
    fn identity_of_the_source() {
        let s = PrometheusSource::new(PrometheusConfig::new("http://127.0.0.1:9090")).unwrap();
        assert_eq!(s.source_uri(), "/collectors/prometheus/prom-default");
        assert_eq!(s.subject_filter(), "inventory.asset.prometheus.endpoint.*");
        let a = normalise("prom-default", "http://127.0.0.1:9090", false, Map::new());
        assert_eq!(
            a.key().unwrap().to_string(),
            "prometheus/endpoint/prom-default"
        );
        assert_eq!(a.status, AssetStatus::Down);
    }
}
