//! The calls the `prometheus` source makes: `GET /-/healthy` and the `data` of the status API
//! (`/api/v1/status/buildinfo`, `/api/v1/status/runtimeinfo`).

use reqwest::Client;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::config::display_url;
use crate::source::SourceError;
use crate::sources::shared::http::{get, Reply};

/// One Prometheus server's HTTP API.
#[derive(Debug, Clone)]
pub(super) struct Api {
    pub base: Url,
    pub max_body: u64,
    pub client: Client,
}

impl Api {
    /// `GET /-/healthy` answered 2xx; `Err` only for refused credentials or an oversized answer.
    pub(super) async fn healthy(&self, endpoint: &str) -> Result<bool, SourceError> {
        Ok(
            match get(&self.client, &self.base, "-/healthy", self.max_body, |r| r).await? {
                Reply::Answered { status, .. } => status.is_success(),
                Reply::Unreachable(why) => {
                    tracing::info!(endpoint = %endpoint, reason = %why, "prometheus endpoint unreachable");
                    false
                }
            },
        )
    }

    /// Fetches `data` of a Prometheus API answer, keeping only `fields`. `Ok(None)`: no usable
    /// answer (the endpoint is down or unhealthy).
    pub(super) async fn status_fields(
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
}
