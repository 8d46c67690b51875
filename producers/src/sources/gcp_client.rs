//! The `gcp` source's dealings with the official client: building it, credentials (a static
//! token for tests, never shown), and the classification of its errors into retry or give up.

use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use google_cloud_gax::error::rpc::{Code, StatusDetails};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::retry_policy::NeverRetry;
use http::{Extensions, HeaderMap, HeaderValue};
use serde_json::Value;
use tracing::debug;

use super::retry::{parse_retry_after, GaveUp, Verdict};
use crate::source::SourceError;

/// Builds a Resource Manager client (`Projects`, `Folders`) with our credentials, an optional
/// endpoint override, and the SDK's own retry loop off: [`super::retry`] decides, so that
/// `Retry-After` and the sweep deadline are honoured.
pub(super) async fn build<F, C>(
    builder: google_cloud_gax::client_builder::ClientBuilder<F, Credentials>,
    endpoint: &Option<String>,
    credentials: &Credentials,
) -> Result<C, SourceError>
where
    F: google_cloud_gax::client_builder::internal::ClientFactory<
        Client = C,
        Credentials = Credentials,
    >,
{
    let mut builder = builder
        .with_credentials(credentials.clone())
        .with_retry_policy(NeverRetry);
    if let Some(e) = endpoint {
        builder = builder.with_endpoint(e.clone());
    }
    builder.build().await.map_err(|e| {
        SourceError::Config(format!(
            "GCP Resource Manager client: {}",
            one_line(&e.to_string())
        ))
    })
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
    pub(super) fn into_source_error(self, what: String, principal: &str) -> SourceError {
        if self.auth {
            SourceError::Auth(format!("{what} (principal {principal})"))
        } else if self
            .http
            .is_some_and(|h| (400..500).contains(&h) && h != 429)
        {
            SourceError::Config(what)
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

/// Decides whether a failed call is worth another attempt.
pub(super) fn classify(e: GaxError) -> Verdict<CallError> {
    let http = e.http_status_code();
    let code = e.status().map(|s| s.code);
    let request_ids = e
        .status()
        .map(|s| {
            s.details
                .iter()
                .filter_map(|d| match d {
                    StatusDetails::RequestInfo(r) if !r.request_id.is_empty() => {
                        Some(r.request_id.clone())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let line = match (http, e.status()) {
        (Some(h), Some(s)) => format!("HTTP {h} {}: {}", s.code.name(), one_line(&s.message)),
        (Some(h), None) => format!("HTTP {h}"),
        (None, Some(s)) => format!("{}: {}", s.code.name(), one_line(&s.message)),
        (None, None) => one_line(&e.to_string()),
    };
    let auth = e.is_authentication()
        || matches!(http, Some(401 | 403))
        || matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied));
    let hidden = matches!(http, Some(403 | 404))
        || matches!(code, Some(Code::PermissionDenied | Code::NotFound));
    let retryable = matches!(http, Some(429 | 500..=599))
        || matches!(
            code,
            Some(Code::ResourceExhausted | Code::Unavailable | Code::Internal)
        )
        || (http.is_none() && (e.is_io() || e.is_connect() || e.is_timeout() || e.is_transport()));
    let retry_after = e
        .http_headers()
        .and_then(|h| h.get("retry-after"))
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let error = CallError {
        line,
        http,
        auth,
        hidden,
        request_ids,
    };
    if retryable && !auth {
        debug!(error = %error.line, "retryable Resource Manager error");
        Verdict::Retry { error, retry_after }
    } else {
        Verdict::Fail(error)
    }
}

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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
