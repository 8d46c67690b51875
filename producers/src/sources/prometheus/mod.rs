//! The `prometheus` source: one Prometheus server, reported as the asset
//! `prometheus/endpoint/<name>` from its own HTTP API (`/-/healthy`, `/api/v1/status/buildinfo`,
//! `/api/v1/status/runtimeinfo`).
//!
//! An endpoint that does not answer is still a complete sweep: it exists and is `down`. Only
//! stable fields go to `raw` (version, revision, branch, goVersion, storageRetention): start
//! times, reload timestamps and counters would make every sweep a `changed`.

mod client;
mod config;
mod normalise;

use std::future::Future;

use inventory_schemas::{asset_filter, Asset};
use serde_json::Map;

pub use config::PrometheusConfig;

use crate::config::{display_url, ConfigError};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};
use crate::sources::shared::http::http_client;
use crate::sources::{Common, Settings};
use client::Api;
use normalise::normalise;

const PROVIDER: &str = "prometheus";
const API: &str = "GET /-/healthy, GET /api/v1/status/buildinfo, GET /api/v1/status/runtimeinfo";
const BUILD_FIELDS: [&str; 4] = ["version", "revision", "branch", "goVersion"];
const RUNTIME_FIELDS: [&str; 1] = ["storageRetention"];

/// The `prometheus` source.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    name: String,
    api: Api,
}

impl PrometheusSource {
    /// Validates the config (`PROM_URL: relative URL without a base`, ...).
    pub fn new(config: PrometheusConfig) -> Result<Self, ConfigError> {
        let base = config.validate()?;
        Ok(Self {
            name: config.name,
            api: Api {
                base,
                max_body: config.max_response_bytes,
                client: http_client(config.timeout)?,
            },
        })
    }

    async fn observe(&self) -> Result<Asset, SourceError> {
        let healthy = self.api.healthy(&self.name).await?;
        let mut raw = Map::new();
        let mut build_ok = false;
        if healthy {
            if let Some(build) = self
                .api
                .status_fields("api/v1/status/buildinfo", &BUILD_FIELDS)
                .await?
            {
                build_ok = true;
                raw.extend(build);
            }
            if let Some(runtime) = self
                .api
                .status_fields("api/v1/status/runtimeinfo", &RUNTIME_FIELDS)
                .await?
            {
                raw.extend(runtime);
            }
        }
        Ok(normalise(
            &self.name,
            &display_url(&self.api.base),
            healthy && build_ok,
            raw,
        ))
    }
}

impl Settings for PrometheusConfig {
    fn build(
        self,
        common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send {
        let config = Self {
            max_response_bytes: common.max_response_bytes,
            ..self
        };
        std::future::ready(PrometheusSource::new(config).map(|s| Box::new(s) as Box<dyn Source>))
    }
}

impl Source for PrometheusSource {
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
    use inventory_schemas::AssetStatus;

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
    fn defaults_and_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            c: PrometheusConfig,
        }
        let c = PrometheusConfig::new("http://p:9090");
        assert_eq!(
            (c.name.as_str(), c.timeout, c.max_response_bytes),
            (
                "prom-default",
                std::time::Duration::from_secs(10),
                crate::config::DEFAULT_MAX_RESPONSE_BYTES
            )
        );
        let parsed = Cmd::try_parse_from(["x", "--url", "http://p:9090", "--timeout-secs", "3"])
            .unwrap()
            .c;
        assert_eq!(parsed.timeout, std::time::Duration::from_secs(3));
        assert!(Cmd::try_parse_from(["x", "--url", "u", "--timeout-secs", "0"]).is_err());
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
