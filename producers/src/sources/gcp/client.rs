//! The `gcp` source's dealings with Resource Manager v3: one GET over the collector's own
//! `reqwest` client (every body read with the byte limit, which the official client's transport
//! cannot do), the official crate's model types, `google-cloud-auth` credentials (a static token
//! for tests, never shown), and the classification of failures into retry or give up.

use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{Extensions, HeaderMap, HeaderValue};
use reqwest::{Client, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tracing::debug;
use url::Url;

use crate::source::SourceError;
use crate::sources::shared::http::{describe, read_body};
use crate::sources::shared::one_line;
use crate::sources::shared::retry::{retry_after, GaveUp, Verdict};

/// Default Resource Manager endpoint.
const DEFAULT_ENDPOINT: &str = "https://cloudresourcemanager.googleapis.com/";

/// Resource Manager v3 over REST: the calls the source makes, one attempt each ([`crate::sources::shared::retry`]
/// decides about the next one, so that `Retry-After` and the sweep deadline are honoured).
#[derive(Debug)]
pub(super) struct ResourceManager {
    client: Client,
    /// Base URL ending in `/`.
    endpoint: Url,
    credentials: Credentials,
    max_body: u64,
}

impl ResourceManager {
    /// `endpoint` is a validated base URL (`GCP_RESOURCEMANAGER_ENDPOINT`) or `None` for Google's.
    pub(super) fn new(
        client: Client,
        endpoint: Option<&str>,
        credentials: Credentials,
        max_body: u64,
    ) -> Result<Self, SourceError> {
        let endpoint = match endpoint {
            Some(e) => format!("{}/", e.trim_end_matches('/')),
            None => DEFAULT_ENDPOINT.to_owned(),
        };
        let endpoint = Url::parse(&endpoint)
            .map_err(|e| SourceError::Config(format!("GCP_RESOURCEMANAGER_ENDPOINT: {e}")))?;
        Ok(Self {
            client,
            endpoint,
            credentials,
            max_body,
        })
    }

    /// `SearchProjects`: one page.
    pub(super) async fn search_projects(
        &self,
        query: Option<&str>,
        page_size: i32,
        page_token: &str,
    ) -> Result<google_cloud_resourcemanager_v3::model::SearchProjectsResponse, Verdict<CallError>>
    {
        let size = page_size.to_string();
        let mut params = vec![("pageSize", size.as_str())];
        if let Some(q) = query {
            params.push(("query", q));
        }
        if !page_token.is_empty() {
            params.push(("pageToken", page_token));
        }
        self.get("v3/projects:search", &params).await
    }

    /// `GetFolder` of `folders/<id>`.
    pub(super) async fn get_folder(
        &self,
        name: &str,
    ) -> Result<google_cloud_resourcemanager_v3::model::Folder, Verdict<CallError>> {
        self.get(&format!("v3/{name}"), &[]).await
    }

    /// One GET of `path` under the endpoint, answered as JSON with enums as numbers (what the
    /// official client asks for).
    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<T, Verdict<CallError>> {
        let mut url = self.endpoint.join(path).map_err(|e| {
            Verdict::Fail(CallError::new(format!("GCP_RESOURCEMANAGER_ENDPOINT: {e}")))
        })?;
        url.query_pairs_mut()
            .extend_pairs(params)
            .append_pair("$alt", "json;enum-encoding=int");
        let auth = match self.credentials.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => HeaderMap::new(),
            Err(e) => return Err(credentials_failed(&e)),
        };
        let resp = self
            .client
            .get(url)
            .headers(auth)
            .send()
            .await
            .map_err(|e| Verdict::Retry {
                error: CallError::new(describe(e)),
                retry_after: None,
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match read_body(resp, self.max_body).await {
            Ok(body) => body,
            Err(e) => {
                let mut error = CallError::new(format!("HTTP {}: {e}", status.as_u16()));
                error.http = Some(status.as_u16());
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
            return serde_json::from_slice(&body).map_err(|e| {
                let mut error = CallError::new(format!(
                    "HTTP {} but not a Resource Manager answer ({e}); is GCP_RESOURCEMANAGER_ENDPOINT Resource Manager v3?",
                    status.as_u16()
                ));
                error.http = Some(status.as_u16());
                Verdict::Fail(error)
            });
        }
        Err(classify(status, &headers, &body))
    }
}

/// Credentials that could not be obtained (ADC, metadata server): retried when the library
/// says it may pass, else refused.
fn credentials_failed(e: &CredentialsError) -> Verdict<CallError> {
    let mut error = CallError::new(format!("credentials: {}", one_line(&e.to_string())));
    if e.is_transient() {
        Verdict::Retry {
            error,
            retry_after: None,
        }
    } else {
        error.auth = true;
        Verdict::Fail(error)
    }
}

/// A classified provider error: one line, without credentials.
#[derive(Debug)]
pub(super) struct CallError {
    /// `HTTP 429 RESOURCE_EXHAUSTED: <Google's message>`, or the transport error.
    pub(super) line: String,
    /// The HTTP status, when the provider answered.
    pub(super) http: Option<u16>,
    /// Credentials refused (401, 403) or not obtainable (ADC).
    pub(super) auth: bool,
    /// 403/404: for a folder, "may not see it" (the path stops there).
    pub(super) hidden: bool,
    /// `google.rpc.RequestInfo` ids from the error details.
    pub(super) request_ids: Vec<String>,
}

impl CallError {
    fn new(line: String) -> Self {
        Self {
            line,
            http: None,
            auth: false,
            hidden: false,
            request_ids: Vec::new(),
        }
    }

    pub(super) fn into_source_error(self, what: String, principal: &str) -> SourceError {
        if self.auth {
            SourceError::Auth(format!("{what} (principal {principal})"))
        } else if self
            .http
            .is_some_and(|h| (400..500).contains(&h) && h != 429)
        {
            SourceError::Config(what)
        } else if self.http.is_some_and(|h| (200..300).contains(&h)) {
            // Answered, but not with something usable (too large, not Resource Manager's).
            SourceError::BadResponse(what)
        } else {
            SourceError::Transient(what)
        }
    }
}

/// The sweep-event line of a call that was given up: `<at>: credentials refused: ...`,
/// `<at>: still failing after N attempts within the deadline: ...`.
pub(super) fn explain(gave_up: GaveUp<CallError>, at: &str) -> (CallError, String) {
    match gave_up {
        GaveUp::Fatal(e) => {
            let what = if e.auth {
                format!("{at}: credentials refused: {}", e.line)
            } else {
                format!("{at}: {}", e.line)
            };
            (e, what)
        }
        GaveUp::Exhausted { error, attempts } => {
            let what = format!(
                "{at}: still failing after {attempts} attempts within the deadline: {}",
                error.line
            );
            (error, what)
        }
    }
}

/// Google's error document (`{"error": {"code", "message", "status", "details"}}`).
#[derive(Deserialize)]
struct ErrorDoc {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Value>,
}

/// Decides whether an HTTP error answer is worth another attempt.
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Verdict<CallError> {
    let http = status.as_u16();
    let doc = serde_json::from_slice::<ErrorDoc>(body)
        .ok()
        .map(|d| d.error);
    let code = doc.as_ref().map_or("", |d| d.status.as_str());
    let request_ids = doc
        .as_ref()
        .map(|d| {
            d.details
                .iter()
                .filter(|v| {
                    v.get("@type").and_then(Value::as_str)
                        == Some("type.googleapis.com/google.rpc.RequestInfo")
                })
                .filter_map(|v| v.get("requestId").and_then(Value::as_str))
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let line = match &doc {
        Some(d) if !d.status.is_empty() => {
            format!("HTTP {http} {}: {}", d.status, one_line(&d.message))
        }
        _ => format!("HTTP {http}"),
    };
    let auth = matches!(http, 401 | 403) || matches!(code, "UNAUTHENTICATED" | "PERMISSION_DENIED");
    let hidden = matches!(http, 403 | 404) || matches!(code, "PERMISSION_DENIED" | "NOT_FOUND");
    let retryable = matches!(http, 408 | 429 | 500..=599)
        || matches!(code, "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL");
    let error = CallError {
        line,
        http: Some(http),
        auth,
        hidden,
        request_ids,
    };
    if retryable && !auth {
        debug!(error = %error.line, "retryable Resource Manager error");
        Verdict::Retry {
            error,
            retry_after: retry_after(headers),
        }
    } else {
        Verdict::Fail(error)
    }
}

/// The service account of `GOOGLE_APPLICATION_CREDENTIALS`, when that file names one
/// (`client_email`, or the impersonated account of an external account); `None` otherwise
/// (metadata server, gcloud user): the principal is then recorded as `adc`.
pub(super) fn adc_principal() -> Option<String> {
    let path = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS")?;
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    if let Some(email) = v.get("client_email").and_then(Value::as_str) {
        return Some(email.to_owned());
    }
    let url = v
        .get("service_account_impersonation_url")
        .and_then(Value::as_str)?;
    let tail = url.rsplit('/').next()?;
    Some(tail.trim_end_matches(":generateAccessToken").to_owned())
}

/// A fixed bearer token (`GCP_ACCESS_TOKEN`). Its `Debug` does not show it.
pub(super) struct StaticToken {
    headers: HeaderMap,
    tag: EntityTag,
}

impl StaticToken {
    pub(super) fn new(token: &str) -> Result<Self, SourceError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            SourceError::Config("GCP_ACCESS_TOKEN: not a valid header value".into())
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(Self {
            headers,
            tag: EntityTag::new(),
        })
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        extensions: Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data: self.headers.clone(),
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}
