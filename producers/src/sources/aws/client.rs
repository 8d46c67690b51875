//! The AWS SDK clients of the `aws` source (Organizations and STS, optionally assuming the
//! audit role), each request under the sweep's deadline, and the classification of SDK errors
//! into [`SourceError`]s.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_organizations as org;
use aws_sdk_organizations::config::{Region, SharedCredentialsProvider};
use aws_sdk_organizations::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::time::Instant;

use super::AwsConfig;
use crate::config::{display_url, parse_endpoint_url};
use crate::source::SourceError;
use crate::sources::shared::one_line;

/// The SDK clients of a source.
#[derive(Clone, Debug)]
pub(super) struct Clients {
    pub org: org::Client,
    pub sts: aws_sdk_sts::Client,
}

/// Runs one request under the sweep's deadline.
pub(super) async fn within<T>(
    deadline: Instant,
    op: &str,
    fut: impl std::future::Future<Output = Result<T, SourceError>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(SourceError::Transient(format!(
            "aws {op}: the sweep's deadline passed"
        ))),
    }
}

pub(super) async fn build_clients(config: &AwsConfig) -> Clients {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let retry = RetryConfig::standard()
        .with_max_attempts(config.max_attempts)
        .with_initial_backoff(config.initial_backoff);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .operation_attempt_timeout(config.timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(config.region().to_owned()))
        .retry_config(retry)
        .timeout_config(timeouts);
    if let Some(creds) = &config.credentials {
        loader = loader.credentials_provider(creds.clone());
    }
    let base = loader.load().await;
    // Validated before: the setting named here is never shown.
    let endpoint = |u: Option<&str>| {
        u.and_then(|u| parse_endpoint_url("AWS_ENDPOINT_URL", u).ok())
            .map(|u| display_url(&u))
    };
    let org_url = endpoint(config.organizations_endpoint());
    let sts_url = endpoint(config.sts_endpoint());
    let sts_base = match &sts_url {
        Some(u) => base.to_builder().endpoint_url(u).build(),
        None => base.clone(),
    };
    let assumed = match &config.role_arn {
        Some(role) => {
            let mut b = AssumeRoleProvider::builder(role)
                .session_name(&config.session_name)
                .configure(&sts_base);
            if let Some(x) = &config.external_id {
                b = b.external_id(x);
            }
            Some(SharedCredentialsProvider::new(b.build().await))
        }
        None => None,
    };
    let mut ob = org::config::Builder::from(&base);
    let mut sb = aws_sdk_sts::config::Builder::from(&sts_base);
    if let Some(u) = org_url {
        ob = ob.endpoint_url(u);
    }
    if let Some(p) = assumed {
        ob.set_credentials_provider(Some(p.clone()));
        sb.set_credentials_provider(Some(p));
    }
    Clients {
        org: org::Client::from_conf(ob.build()),
        sts: aws_sdk_sts::Client::from_conf(sb.build()),
    }
}

/// Error codes that mean the credentials were refused or are not allowed to list.
const AUTH_CODES: [&str; 13] = [
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "AuthFailure",
    "InvalidAccessKeyId",
];

/// Maps an SDK error (after the SDK's own retries) to a [`SourceError`], in one line that names
/// the operation and never shows credentials.
pub(super) fn classify<E>(
    op: &str,
    err: SdkError<E, org::config::http::HttpResponse>,
) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amzn-requestid").map(str::to_owned))
        .map(|r| format!(" (request id {r})"))
        .unwrap_or_default();
    // The code and message the SDK parsed, else an XML error body (what some endpoints and
    // proxies answer even for JSON protocols).
    let (code, message) = match err.code() {
        Some(c) => (
            Some(c.to_owned()),
            err.message().unwrap_or_default().to_owned(),
        ),
        None => {
            let body = err
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            (
                xml_element(&body, "Code"),
                xml_element(&body, "Message").unwrap_or_default(),
            )
        }
    };
    if let Some(c) = code.as_deref() {
        if AUTH_CODES.contains(&c) {
            return SourceError::Auth(format!(
                "aws {op}: credentials refused: {c}: {message}{request}"
            ));
        }
        if c == "AWSOrganizationsNotInUseException" {
            return SourceError::Config(format!(
                "aws {op}: the account of these credentials is not in an organisation ({c}); use the management or a delegated administrator account, or set AWS_ORG_AUDIT_ROLE_ARN"
            ));
        }
    }
    if credentials_missing(&err) {
        return SourceError::Auth(format!(
            "aws {op}: no usable credentials: {}",
            one_line(&DisplayErrorContext(&err).to_string())
        ));
    }
    let what = match &code {
        Some(c) if message.is_empty() => c.clone(),
        Some(c) => format!("{c}: {message}"),
        None => "error answer without an error code".to_owned(),
    };
    match (&err, status) {
        (SdkError::ServiceError(_) | SdkError::ResponseError(_), Some(s @ (401 | 403))) => {
            SourceError::Auth(format!(
                "aws {op}: credentials refused: HTTP {s}: {what}{request}"
            ))
        }
        (SdkError::ServiceError(_) | SdkError::ResponseError(_), Some(s)) => {
            let line = format!("aws {op}: HTTP {s}: {what}{request}");
            let throttled = code
                .as_deref()
                .is_some_and(|c| c.contains("Throttl") || c == "TooManyRequestsException");
            if s >= 500 || s == 429 || throttled {
                SourceError::Transient(line)
            } else {
                SourceError::BadResponse(line)
            }
        }
        (SdkError::ConstructionFailure(_), _) => SourceError::Config(format!(
            "aws {op}: {}",
            one_line(&DisplayErrorContext(&err).to_string())
        )),
        _ => SourceError::Transient(format!(
            "aws {op}: {}",
            one_line(&DisplayErrorContext(&err).to_string())
        )),
    }
}

/// The text of the first `<name>…</name>` in an XML error body.
pub(super) fn xml_element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_owned()).filter(|s| !s.is_empty())
}

fn credentials_missing<E>(err: &SdkError<E, org::config::http::HttpResponse>) -> bool
where
    E: std::error::Error + 'static,
{
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(c) = cause {
        if c.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
            .is_some()
        {
            return true;
        }
        cause = c.source();
    }
    false
}
