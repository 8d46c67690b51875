//! Middleware: request logging and metrics, problem+json for framework errors, the bounds on
//! each request ([`guard`]), and the multi-segment form of asset keys.

use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::Stream;

use poem::http::uri::PathAndQuery;
use poem::http::{header, HeaderValue, StatusCode, Uri};
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use tracing::{debug, info, warn};

use crate::auth::{bearer_token, TokenSet};
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::problem::{problem_from_poem_error, ErrorCode, Problem};
use crate::state::AppState;

const ASSETS_PREFIX: &str = "/api/v1/assets/";
const HISTORY_SUFFIX: &str = "/history";
const QUIET_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Rewrites `/api/v1/assets/<provider>/<kind>/<native id...>[/history]` to the percent-encoded
/// single segment form the routes match (`/api/v1/assets/aws%2Faccount%2F123[/history]`).
pub fn rewrite_asset_tail(mut req: Request) -> Result<Request> {
    let Some(rest) = req.uri().path().strip_prefix(ASSETS_PREFIX) else {
        return Ok(req);
    };
    // `<key>/history` is the history route; the key before it is the one to encode. (A native
    // id that itself ends in `/history` must be sent percent-encoded.)
    let (key, suffix) = match rest.strip_suffix(HISTORY_SUFFIX) {
        Some(key) => (key, HISTORY_SUFFIX),
        None => (rest, ""),
    };
    if key.matches('/').count() < 2 {
        return Ok(req);
    }
    let mut target = format!("{ASSETS_PREFIX}{}{suffix}", key.replace('/', "%2F"));
    if let Some(q) = req.uri().query() {
        target.push('?');
        target.push_str(q);
    }
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.path_and_query = Some(
        PathAndQuery::from_str(&target)
            .map_err(|_| poem::Error::from_string("malformed path", StatusCode::BAD_REQUEST))?,
    );
    *req.uri_mut() = Uri::from_parts(parts)
        .map_err(|_| poem::Error::from_string("malformed path", StatusCode::BAD_REQUEST))?;
    Ok(req)
}

/// What [`guard`] needs of the state.
#[derive(Clone)]
pub struct Guard {
    tokens: Arc<TokenSet>,
    limits: Limits,
}

impl Guard {
    pub fn new(state: &AppState) -> Self {
        Self {
            tokens: Arc::clone(&state.tokens),
            limits: state.limits,
        }
    }
}

/// Bounds one request before the endpoint sees it:
/// - a request that carries a body is authenticated from its headers before a byte of the body
///   is read (401/403, [`TokenSet::authorize_body`]);
/// - a body declared larger than `INVENTORY_MAX_BODY_BYTES` is refused from its `Content-Length`
///   (413), and a streamed one is cut off as soon as it passes the limit (413): at most the limit
///   is ever buffered;
///
/// The server loop bounds the time to receive the body and produce the response's headers
/// (`INVENTORY_REQUEST_TIMEOUT`, [`timed_out`]), reading the body's progress this records in the
/// request's [`BodyProgress`]. The connection of a refused body is closed after the answer (the
/// rest is not read).
pub async fn guard<E: Endpoint>(ep: Arc<E>, mut req: Request, guard: Guard) -> Result<Response> {
    let max = guard.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let has_body =
        declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut body = None;
    if has_body {
        if let Err(e) = guard
            .tokens
            .authorize_body(req.method(), bearer_token(req.headers()))
        {
            return Ok(close_after(e.to_problem().into_response()));
        }
        if let Some(n) = declared.filter(|n| *n > max) {
            return Ok(too_large(max, Some(n)));
        }
        let progress = req
            .extensions()
            .get::<Arc<BodyProgress>>()
            .cloned()
            .unwrap_or_default();
        progress.has_body.store(true, Ordering::Relaxed);
        let stream = Limited {
            inner: Box::pin(req.take_body().into_bytes_stream()),
            max,
            progress: Arc::clone(&progress),
        };
        req.set_body(poem::Body::from_bytes_stream(stream));
        body = Some(progress);
    }
    let out = ep.call(req).await;
    // The endpoint saw its body cut off at the limit (and answered some error): it is a 413.
    if body
        .as_ref()
        .is_some_and(|p| p.exceeded.load(Ordering::Relaxed))
    {
        return Ok(too_large(max, None));
    }
    out.map(IntoResponse::into_response)
}

fn too_large(max: u64, declared: Option<u64>) -> Response {
    let detail = match declared {
        Some(n) => format!(
            "the request body ({n} bytes) is larger than the limit of {max} bytes (INVENTORY_MAX_BODY_BYTES)"
        ),
        None => format!(
            "the request body is larger than the limit of {max} bytes (INVENTORY_MAX_BODY_BYTES)"
        ),
    };
    close_after(Problem::new(ErrorCode::PayloadTooLarge, detail).into_response())
}

/// The answer to a request that took longer than `timeout`: 408 while its body was still
/// arriving (per `progress`), else 504.
pub(crate) fn timed_out(timeout: Duration, progress: &BodyProgress) -> Response {
    let secs = timeout.as_secs_f64();
    let receiving =
        progress.has_body.load(Ordering::Relaxed) && !progress.done.load(Ordering::Relaxed);
    if receiving {
        close_after(
            Problem::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {secs}s (INVENTORY_REQUEST_TIMEOUT)"
                ),
            )
            .into_response(),
        )
    } else {
        Problem::new(
            ErrorCode::Timeout,
            format!("the answer was not ready within {secs}s (INVENTORY_REQUEST_TIMEOUT); retry later or narrow the request"),
        )
        .into_response()
    }
}

/// Asks the client to close the connection after this answer (its request's body is unread).
fn close_after(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// How far a request's body was read (a request extension shared with the server loop).
#[derive(Default)]
pub(crate) struct BodyProgress {
    /// The request carries a body.
    has_body: AtomicBool,
    /// The body passed the limit (and was cut off there).
    exceeded: AtomicBool,
    /// The body was read to its end.
    done: AtomicBool,
    read: AtomicU64,
}

/// A body that fails once more than `max` bytes arrived.
struct Limited {
    inner: Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>,
    max: u64,
    progress: Arc<BodyProgress>,
}

impl Stream for Limited {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.progress.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        let next = self.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                let len = chunk.len() as u64;
                let read = self.progress.read.fetch_add(len, Ordering::Relaxed) + len;
                if read > self.max {
                    self.progress.exceeded.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the request body is larger than {} bytes", self.max),
                    ))));
                }
            }
            Poll::Ready(None) => self.progress.done.store(true, Ordering::Relaxed),
            _ => {}
        }
        next
    }
}

/// Logs and measures every request, and turns framework errors into problem responses.
pub async fn observe<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    metrics: Arc<Metrics>,
) -> Result<Response> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let (pattern, mut resp) = match ep.call(req).await {
        Ok(out) => {
            let resp = out.into_response();
            (resp.data::<poem::PathPattern>().map(|p| p.0.clone()), resp)
        }
        Err(err) => (
            err.data::<poem::PathPattern>().map(|p| p.0.clone()),
            problem_from_poem_error(err),
        ),
    };
    let status = resp.status();
    if status == StatusCode::UNAUTHORIZED && !resp.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"asset-inventory\""),
        );
    }
    let route = metrics.route_label(pattern.as_deref());
    let elapsed = started.elapsed();
    metrics.observe_request(method_label(&method), route, status.as_u16(), elapsed);
    let ms = elapsed.as_secs_f64() * 1e3;
    // A probe answering 503 ("not ready yet") is its normal answer while the projector catches
    // up: polled every few seconds, it must not flood the log at WARN (the reason is at /readyz).
    let not_ready = route == "/readyz" && status == StatusCode::SERVICE_UNAVAILABLE;
    if status.is_server_error() && !not_ready {
        warn!(method = %method, route, path = %path, status = status.as_u16(), ms, "request failed");
    } else if QUIET_ROUTES.contains(&route) {
        debug!(method = %method, route, status = status.as_u16(), ms, "request");
    } else {
        info!(method = %method, route, path = %path, status = status.as_u16(), ms, "request");
    }
    Ok(resp)
}

/// The method label: standard methods by name, anything else as `other` (bounded cardinality).
fn method_label(method: &poem::http::Method) -> &'static str {
    use poem::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(uri: &str) -> String {
        let req = Request::builder().uri(Uri::from_str(uri).unwrap()).finish();
        rewrite_asset_tail(req).unwrap().uri().to_string()
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&poem::http::Method::GET), "GET");
        let odd = poem::http::Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(&odd), "other");
    }

    #[test]
    fn tails_become_one_encoded_segment() {
        assert_eq!(
            rewritten("/api/v1/assets/aws/account/123"),
            "/api/v1/assets/aws%2Faccount%2F123"
        );
        assert_eq!(
            rewritten("/api/v1/assets/gcp/project/folders/1/projects/x?a=b"),
            "/api/v1/assets/gcp%2Fproject%2Ffolders%2F1%2Fprojects%2Fx?a=b"
        );
        assert_eq!(
            rewritten("/api/v1/assets/aws%2Faccount%2F1"),
            "/api/v1/assets/aws%2Faccount%2F1"
        );
        assert_eq!(
            rewritten("/api/v1/assets?limit=1"),
            "/api/v1/assets?limit=1"
        );
        assert_eq!(
            rewritten("/api/v1/accounts/a/b/c"),
            "/api/v1/accounts/a/b/c"
        );
    }
}
