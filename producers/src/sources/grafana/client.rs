//! The call the `grafana` source makes: `GET /api/health`, with the token as `Authorization:
//! Bearer` when there is one.

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::Client;
use serde::Deserialize;
use url::Url;

use crate::config::display_url;
use crate::source::SourceError;
use crate::sources::shared::http::{get, Reply};

/// Grafana's `/api/health` document (`enterpriseCommit` and others are ignored).
#[derive(Debug, Deserialize)]
pub(super) struct Health {
    pub database: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
}

/// One Grafana server's HTTP API.
#[derive(Clone)]
pub(super) struct Api {
    pub base: Url,
    pub max_body: u64,
    /// `Bearer <token>`, marked sensitive.
    pub auth: Option<HeaderValue>,
    pub client: Client,
}

impl Api {
    /// The health document; `Ok(None)` when the server does not answer or not with one (it is
    /// down). A refused token is an error, and so is a 2xx that is not Grafana's document.
    pub(super) async fn health(&self, endpoint: &str) -> Result<Option<Health>, SourceError> {
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
        Ok(
            match reply {
                Reply::Unreachable(why) => {
                    tracing::info!(endpoint = %endpoint, reason = %why, "grafana endpoint unreachable");
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
            },
        )
    }
}
