//! What the HTTP sources share: the HTTP client ([`http_client`]), GET with a clear
//! classification of what came back, and the one bounded reader of response bodies
//! ([`read_body`]) that every source reading a provider over `reqwest` uses.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use url::Url;

use crate::config::{display_url, ConfigError, MAX_RESPONSE_BYTES_SETTING};
use crate::source::SourceError;

/// The HTTP client of the HTTP sources: bounded connect and request timeouts, no redirects to
/// other hosts' credentials (reqwest drops `Authorization` on cross-host redirects).
pub(crate) fn http_client(timeout: Duration) -> Result<Client, ConfigError> {
    Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("asset-inventory/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::invalid("HTTP client", e.to_string()))
}

/// A response body that was not read whole.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// `Content-Length` announced more than the limit: nothing was read.
    #[error("response of {length} bytes refused: larger than the limit of {limit} bytes ({MAX_RESPONSE_BYTES_SETTING})")]
    Declared { length: u64, limit: u64 },
    /// The body grew past the limit while streaming: reading stopped there.
    #[error("response refused after {limit} bytes: larger than the limit of {limit} bytes ({MAX_RESPONSE_BYTES_SETTING})")]
    Streamed { limit: u64 },
    /// The connection failed while reading (reset, timed out).
    #[error("{0}")]
    Read(String),
}

impl BodyError {
    /// The body was larger than the limit (retrying will not make it smaller).
    pub(crate) fn too_large(&self) -> bool {
        !matches!(self, Self::Read(_))
    }
}

/// Reads a response body of at most `limit` bytes: refused from `Content-Length` when it says
/// more, else read chunk by chunk and abandoned (the connection closed) as soon as it passes the
/// limit, so that no more than `limit` bytes are ever held.
pub(crate) async fn read_body(mut resp: Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if let Some(length) = resp.content_length().filter(|&l| l > limit) {
        return Err(BodyError::Declared { length, limit });
    }
    let expected = resp.content_length().unwrap_or(0).min(limit).min(1 << 20);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Read(describe(e)))?
    {
        let total = u64::try_from(body.len().saturating_add(chunk.len())).unwrap_or(u64::MAX);
        if total > limit {
            return Err(BodyError::Streamed { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The answer to a GET, or why there is none.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Any HTTP answer (the caller judges the status).
    Answered { status: StatusCode, body: String },
    /// No HTTP answer: refused, timed out, reset. The endpoint is down.
    Unreachable(String),
}

/// GETs `path` under `base`. 401/403 become [`SourceError::Auth`]; a body larger than
/// `max_body` bytes is [`SourceError::BadResponse`] (read no further); a body that cannot be
/// read is `Unreachable`. Errors never show credentials (reqwest's URL is dropped, ours is
/// redacted).
pub(crate) async fn get(
    client: &Client,
    base: &Url,
    path: &str,
    max_body: u64,
    auth: impl FnOnce(RequestBuilder) -> RequestBuilder,
) -> Result<Reply, SourceError> {
    let url = base
        .join(path)
        .map_err(|e| SourceError::Config(format!("{}{path}: {e}", display_url(base))))?;
    let shown = format!("{}/{path}", display_url(base));
    let resp = match auth(client.get(url)).send().await {
        Ok(r) => r,
        Err(e) => return Ok(Reply::Unreachable(format!("GET {shown}: {}", describe(e)))),
    };
    let status = resp.status();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Err(SourceError::Auth(format!(
            "GET {shown}: HTTP {status}: credentials refused"
        )));
    }
    match read_body(resp, max_body).await {
        Ok(body) => Ok(Reply::Answered {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        }),
        Err(e) if e.too_large() => Err(SourceError::BadResponse(format!(
            "GET {shown}: HTTP {status}: {e}"
        ))),
        Err(e) => Ok(Reply::Unreachable(format!("GET {shown}: {e}"))),
    }
}

/// A `reqwest` error in one line: what failed and its causes, never the URL (which may carry
/// credentials).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The cause chain without the URL (which may carry credentials).
    let mut out = what.to_owned();
    let e = e.without_url();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
