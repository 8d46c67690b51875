//! The `grafana` source: one Grafana server, reported as the asset `grafana/endpoint/<name>`
//! from `GET /api/health` (`{"commit":"…","database":"ok","version":"10.4.1"}`).
//!
//! `up` when the database is `ok`, `down` when it is not or the server does not answer; a
//! refused token (401/403) fails the sweep. The token is sent as `Authorization: Bearer`, marked
//! sensitive, and never logged or stored: events only say `auth_mode: bearer`.

use std::fmt;
use std::time::Duration;

use inventory_schemas::{asset_filter, Asset, AssetStatus};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Client;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::http::{get, Reply};
use crate::config::{
    display_url, http_client, parse_endpoint_url, validate_name, ConfigError, DEFAULT_HTTP_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
};
use crate::source::{provenance, CollectFuture, Collected, Source, SourceError};

const PROVIDER: &str = "grafana";
const API: &str = "GET /api/health";

/// Settings of the `grafana` source. `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq)]
pub struct GrafanaConfig {
    /// Endpoint name: the asset id and the collector scope (`GRAFANA_NAME`, default
    /// `grafana-default`).
    pub name: String,
    /// Base URL of the server, e.g. `http://grafana:3000` (`GRAFANA_URL`).
    pub url: String,
    /// Service-account token sent as `Authorization: Bearer` (`GRAFANA_TOKEN`); never logged.
    pub token: Option<String>,
    /// Timeout of each HTTP request (`GRAFANA_TIMEOUT_SECS`, default 10).
    pub timeout: Duration,
    /// Largest response body read, in bytes (`INVENTORY_COLLECT_MAX_RESPONSE_BYTES`, default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`]).
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
    /// A config with the default name and timeout and no token.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            name: "grafana-default".to_owned(),
            url: url.into(),
            token: None,
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// The `grafana` source.
#[derive(Clone)]
pub struct GrafanaSource {
    name: String,
    base: Url,
    max_body: u64,
    auth: Option<HeaderValue>,
    client: Client,
}

impl fmt::Debug for GrafanaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrafanaSource")
            .field("name", &self.name)
            .field("url", &display_url(&self.base))
            .field("auth_mode", &self.auth_mode())
            .finish()
    }
}

impl GrafanaSource {
    /// Validates the config (`GRAFANA_URL: ...`, `GRAFANA_TOKEN: ...`).
    pub fn new(config: GrafanaConfig) -> Result<Self, ConfigError> {
        validate_name("GRAFANA_NAME", &config.name)?;
        let base = parse_endpoint_url("GRAFANA_URL", &config.url)?;
        let auth = match config.token.as_deref().map(str::trim) {
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
        Ok(Self {
            name: config.name,
            base,
            max_body: config.max_response_bytes,
            auth,
            client: http_client(config.timeout)?,
        })
    }

    fn auth_mode(&self) -> &'static str {
        if self.auth.is_some() {
            "bearer"
        } else {
            "none"
        }
    }

    async fn observe(&self) -> Result<Asset, SourceError> {
        let reply = get(
            &self.client,
            &self.base,
            "api/health",
            self.max_body,
            |r| match &self.auth {
                Some(v) => r.header(AUTHORIZATION, v.clone()),
                None => r,
            },
        )
        .await?;
        let health =
            match reply {
                Reply::Unreachable(why) => {
                    tracing::info!(endpoint = %self.name, reason = %why, "grafana endpoint unreachable");
                    None
                }
                // Grafana answers 503 with the same document when its database is failing.
                Reply::Answered { status, body }
                    if status.is_success() || status.as_u16() == 503 =>
                {
                    match serde_json::from_str::<Health>(&body) {
                    Ok(h) => Some(h),
                    Err(e) if status.is_success() => {
                        return Err(SourceError::BadResponse(format!(
                            "GET {}/api/health: HTTP {status} but not Grafana's health document ({e}); is GRAFANA_URL a Grafana server?",
                            display_url(&self.base)
                        )))
                    }
                    Err(_) => None,
                }
                }
                Reply::Answered { .. } => None,
            };
        Ok(normalise(
            &self.name,
            &display_url(&self.base),
            self.auth_mode(),
            health.as_ref(),
        ))
    }
}

/// Grafana's `/api/health` document (`enterpriseCommit` and others are ignored).
#[derive(Debug, Deserialize)]
struct Health {
    database: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    commit: Option<String>,
}

fn normalise(name: &str, url: &str, auth_mode: &str, health: Option<&Health>) -> Asset {
    let up = health.is_some_and(|h| h.database == "ok");
    let raw = match health {
        Some(h) => json!({ "version": h.version, "commit": h.commit }),
        None => json!({}),
    };
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
        auth_mode: Some(auth_mode.to_owned()),
        labels: Default::default(),
        raw: strip_nulls(raw),
        provenance: provenance(PROVIDER, API),
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

impl Source for GrafanaSource {
    fn name(&self) -> &str {
        PROVIDER
    }

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
