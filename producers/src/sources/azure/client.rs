//! The ARM REST plumbing of the `azure` source: one retried request ([`Arm::call`]), the
//! classification of what came back (ARM error bodies, request ids), the list pages, and the
//! management-group ancestry from `getEntities`.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tracing::warn;
use url::Url;

use crate::source::SourceError;
use crate::sources::shared::http::{describe, read_body};
use crate::sources::shared::retry::{self, Backoff, GaveUp, Verdict};

/// The HTTP side of the source: the client and how long a request may be retried.
pub(super) struct Arm {
    pub client: Client,
    /// Upper bound of the first retry wait.
    pub retry_base: Duration,
    /// Upper bound of any single wait, `Retry-After` included.
    pub retry_max: Duration,
    /// How long one request may be retried.
    pub deadline: Duration,
    /// Largest response body read, in bytes.
    pub max_body: u64,
}

impl Arm {
    /// One ARM request, retried on 429, 5xx and connection trouble until the deadline. A body
    /// larger than `max_body` fails it at once (read no further; retrying would not help).
    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        url: &Url,
        what: &str,
        token: &str,
        calls: &mut Calls,
    ) -> Result<String, SourceError> {
        let backoff = Backoff {
            initial: self.retry_base,
            max: self.retry_max,
            deadline: retry::deadline_after(self.deadline),
        };
        let outcome = retry::retry(backoff, |attempt| {
            let req = self
                .client
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, format!("Bearer {token}"));
            let req = if method == reqwest::Method::POST {
                req.header(reqwest::header::CONTENT_LENGTH, "0")
            } else {
                req
            };
            let max_body = self.max_body;
            async move {
                let resp = req.send().await.map_err(|e| Verdict::Retry {
                    error: Failure::new(describe(e), None),
                    retry_after: None,
                })?;
                let status = resp.status();
                let request_id = request_id(resp.headers());
                let retry_after = retry::retry_after(resp.headers());
                let body = match read_body(resp, max_body).await {
                    Ok(body) => String::from_utf8_lossy(&body).into_owned(),
                    Err(e) => {
                        let error = Failure::new(format!("HTTP {status}: {e}"), request_id);
                        return Err(if e.too_large() {
                            Verdict::Fail(error)
                        } else {
                            Verdict::Retry {
                                error,
                                retry_after: None,
                            }
                        });
                    }
                };
                if status.is_success() {
                    return Ok((body, request_id));
                }
                let mut error = Failure::new(arm_error(status, &body), request_id);
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::REQUEST_TIMEOUT
                    || status.is_server_error()
                {
                    warn!(
                        api = what,
                        attempt,
                        status = status.as_u16(),
                        retry_after_s = retry_after.map(|d| d.as_secs()),
                        "ARM request failed; retrying"
                    );
                    Err(Verdict::Retry { error, retry_after })
                } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    error.auth = true;
                    error.status = status;
                    Err(Verdict::Fail(error))
                } else {
                    Err(Verdict::Fail(error))
                }
            }
        })
        .await;
        match outcome {
            Ok((body, id)) => {
                calls.request_ids.extend(id);
                Ok(body)
            }
            Err(GaveUp::Fatal(f)) => {
                calls.request_ids.extend(f.request_id);
                calls.refused = f.auth.then_some(f.status);
                let line = format!("ARM {what}: {}", f.message);
                Err(if f.auth {
                    SourceError::Auth(line)
                } else {
                    SourceError::BadResponse(line)
                })
            }
            Err(GaveUp::Exhausted { error, attempts }) => {
                calls.request_ids.extend(error.request_id);
                Err(SourceError::Transient(format!(
                    "ARM {what}: {} (gave up after {attempts} attempts)",
                    error.message
                )))
            }
        }
    }
}

/// A failed ARM attempt: one line, the provider's request id, whether credentials were refused.
#[derive(Debug)]
struct Failure {
    message: String,
    request_id: Option<String>,
    /// Credentials refused (401/403, in `status`).
    auth: bool,
    status: StatusCode,
}

impl Failure {
    fn new(message: String, request_id: Option<String>) -> Self {
        Self {
            message,
            request_id,
            auth: false,
            status: StatusCode::OK,
        }
    }
}

/// What a sweep's requests returned, for provenance.
#[derive(Default)]
pub(super) struct Calls {
    pub request_ids: Vec<String>,
    pub pages: u32,
    /// Status of the last request that refused the credentials (401 or 403).
    pub refused: Option<StatusCode>,
}

pub(super) fn bad_endpoint(e: url::ParseError) -> SourceError {
    SourceError::Config(format!("AZURE_RESOURCE_MANAGER_ENDPOINT: {e}"))
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-ms-request-id", "x-ms-correlation-request-id"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok().map(str::to_owned))
}

/// `401 ExpiredAuthenticationToken: <message>` from an ARM error body, or the status alone.
fn arm_error(status: StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<Envelope>(body) {
        Ok(Envelope { error }) => {
            let message = error
                .message
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            format!("{} {}: {message}", status.as_u16(), error.code)
        }
        Err(_) => format!("HTTP {status}"),
    }
}

#[derive(Deserialize)]
pub(super) struct ListPage {
    #[serde(default)]
    pub value: Vec<Value>,
    #[serde(default, rename = "nextLink")]
    pub next_link: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EntityPage {
    #[serde(default)]
    pub value: Vec<Entity>,
    #[serde(default, rename = "nextLink")]
    pub next_link: Option<String>,
}

/// One entry of getEntities: a management group or a subscription.
#[derive(Deserialize)]
pub(super) struct Entity {
    #[serde(rename = "type", default)]
    ty: String,
    name: String,
    #[serde(default)]
    properties: EntityProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct EntityProperties {
    #[serde(default)]
    parent: Option<Parent>,
    #[serde(default)]
    parent_name_chain: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Parent {
    id: Option<String>,
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(
    what: &str,
    body: &str,
) -> Result<T, SourceError> {
    serde_json::from_str(body).map_err(|e| {
        SourceError::BadResponse(format!(
            "ARM {what}: not an ARM list answer ({e}); is AZURE_RESOURCE_MANAGER_ENDPOINT an ARM endpoint?"
        ))
    })
}

/// Subscription id (lower case) → management-group names root → parent. Uses the entity's
/// `parentNameChain`; without one, walks `parent.id` through the groups that are visible.
pub(super) fn ancestry(entities: &[Entity]) -> HashMap<String, Vec<String>> {
    let is_sub = |e: &Entity| e.ty.eq_ignore_ascii_case("/subscriptions");
    let parent_of = |e: &Entity| -> Option<String> {
        let id = e.properties.parent.as_ref()?.id.as_deref()?;
        id.rsplit('/').next().map(str::to_owned)
    };
    let groups: HashMap<&str, Option<String>> = entities
        .iter()
        .filter(|e| !is_sub(e))
        .map(|e| (e.name.as_str(), parent_of(e)))
        .collect();
    entities
        .iter()
        .filter(|e| is_sub(e))
        .map(|e| {
            let chain = match &e.properties.parent_name_chain {
                Some(chain) if !chain.is_empty() => chain.clone(),
                _ => {
                    let mut chain = Vec::new();
                    let mut next = parent_of(e);
                    while let Some(g) = next {
                        if chain.contains(&g) || chain.len() > 16 {
                            break; // a cycle or a runaway: keep what we have
                        }
                        next = groups.get(g.as_str()).cloned().flatten();
                        chain.push(g);
                    }
                    chain.reverse();
                    chain
                }
            };
            (e.name.to_ascii_lowercase(), chain)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn ancestry_uses_the_name_chain_or_walks_parents() {
        let entities: EntityPage = serde_json::from_value(json!({"value": [
            {"type": "Microsoft.Management/managementGroups", "name": "root", "properties": {}},
            {"type": "Microsoft.Management/managementGroups", "name": "prod",
             "properties": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/root"}}},
            {"type": "/subscriptions", "name": "AAAA",
             "properties": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/prod"},
                            "parentNameChain": ["root", "prod"]}},
            {"type": "/subscriptions", "name": "bbbb",
             "properties": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/prod"}}}
        ]}))
        .unwrap();
        let paths = ancestry(&entities.value);
        assert_eq!(paths["aaaa"], ["root", "prod"]);
        assert_eq!(paths["bbbb"], ["root", "prod"]);
    }

    #[test]
    fn arm_errors_are_one_line() {
        let body = r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry\nUTC time is earlier than current UTC time."}}"#;
        assert_eq!(
            arm_error(StatusCode::UNAUTHORIZED, body),
            "401 ExpiredAuthenticationToken: The access token expiry UTC time is earlier than current UTC time."
        );
        assert_eq!(
            arm_error(StatusCode::BAD_GATEWAY, "<html>"),
            "HTTP 502 Bad Gateway"
        );
    }
}
