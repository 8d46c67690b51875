//! What the HTTP sources share: GET with a clear classification of what came back.

use reqwest::{Client, RequestBuilder, StatusCode};
use url::Url;

use crate::config::display_url;
use crate::source::SourceError;

/// The answer to a GET, or why there is none.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Any HTTP answer (the caller judges the status).
    Answered { status: StatusCode, body: String },
    /// No HTTP answer: refused, timed out, reset. The endpoint is down.
    Unreachable(String),
}

/// GETs `path` under `base`. 401/403 become [`SourceError::Auth`]; a body that cannot be read
/// is `Unreachable`. Errors never show credentials (reqwest's URL is dropped, ours is redacted).
pub(crate) async fn get(
    client: &Client,
    base: &Url,
    path: &str,
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
    match resp.text().await {
        Ok(body) => Ok(Reply::Answered { status, body }),
        Err(e) => Ok(Reply::Unreachable(format!("GET {shown}: {}", describe(e)))),
    }
}

fn describe(e: reqwest::Error) -> String {
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
