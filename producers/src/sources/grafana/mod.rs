//! The `grafana` source: one Grafana server, reported as the asset `grafana/endpoint/<name>`
//! from `GET /api/health` (`{"commit":"…","database":"ok","version":"10.4.1"}`).
//!
//! `up` when the database is `ok`, `down` when it is not or the server does not answer; a
//! refused token (401/403) fails the sweep. The token is sent as `Authorization: Bearer`, marked
//! sensitive, and never logged or stored: events only say `auth_mode: bearer`.

mod client;
mod config;
mod normalise;

use std::fmt;
use std::future::Future;

use inventory_schemas::{asset_filter, Asset};

pub use config::GrafanaConfig;

use crate::config::{display_url, ConfigError};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};
use crate::sources::shared::http::http_client;
use crate::sources::{Common, Settings};
use client::Api;
use normalise::normalise;

const PROVIDER: &str = "grafana";
const API: &str = "GET /api/health";

/// The `grafana` source.
#[derive(Clone)]
pub struct GrafanaSource {
    name: String,
    api: Api,
}

impl fmt::Debug for GrafanaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrafanaSource")
            .field("name", &self.name)
            .field("url", &display_url(&self.api.base))
            .field("auth_mode", &self.auth_mode())
            .finish()
    }
}

impl GrafanaSource {
    /// Validates the config (`GRAFANA_URL: ...`, `GRAFANA_TOKEN: ...`).
    pub fn new(config: GrafanaConfig) -> Result<Self, ConfigError> {
        let (base, auth) = config.validate()?;
        Ok(Self {
            name: config.name,
            api: Api {
                base,
                max_body: config.max_response_bytes,
                auth,
                client: http_client(config.timeout)?,
            },
        })
    }

    fn auth_mode(&self) -> &'static str {
        if self.api.auth.is_some() {
            "bearer"
        } else {
            "none"
        }
    }

    async fn observe(&self) -> Result<Asset, SourceError> {
        let health = self.api.health(&self.name).await?;
        Ok(normalise(
            &self.name,
            &display_url(&self.api.base),
            self.auth_mode(),
            health.as_ref(),
        ))
    }
}

impl Settings for GrafanaConfig {
    fn build(
        mut self,
        common: Common,
    ) -> impl Future<Output = Result<Box<dyn Source>, ConfigError>> + Send {
        self.max_response_bytes = common.max_response_bytes;
        std::future::ready(GrafanaSource::new(self).map(|s| Box::new(s) as Box<dyn Source>))
    }
}

impl Source for GrafanaSource {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn scope(&self) -> &str {
        &self.name
    }

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
    use client::Health;
    use inventory_schemas::AssetStatus;
    use serde_json::json;

    #[test]
    fn debug_never_shows_the_token() {
        let mut c = GrafanaConfig::new("http://127.0.0.1:3000");
        c.token = Some("glsa_s3cr3t".into());
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let s = GrafanaSource::new(c).unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("bearer"),
            "{shown}"
        );
    }

    #[test]
    fn config_errors_name_the_setting() {
        let e = GrafanaSource::new(GrafanaConfig::new("grafana:3000")).unwrap_err();
        assert!(e.to_string().starts_with("GRAFANA_URL: "), "{e}");
        let mut c = GrafanaConfig::new("http://127.0.0.1:3000");
        c.token = Some("a\nb".into());
        let e = GrafanaSource::new(c).unwrap_err();
        assert!(e.to_string().starts_with("GRAFANA_TOKEN: "), "{e}");
    }

    #[test]
    fn health_normalises_to_up_or_down() {
        let h: Health =
            serde_json::from_str(r#"{"commit":"abc","database":"ok","version":"10.4.1"}"#).unwrap();
        let a = normalise("g", "http://g", "bearer", Some(&h));
        assert_eq!(a.status, AssetStatus::Up);
        assert_eq!(a.raw, json!({"version": "10.4.1", "commit": "abc"}));
        let failing = Health {
            database: "failing".into(),
            ..h
        };
        assert_eq!(
            normalise("g", "http://g", "none", Some(&failing)).status,
            AssetStatus::Down
        );
        assert_eq!(
            normalise("g", "http://g", "none", None).status,
            AssetStatus::Down
        );
    }
}
