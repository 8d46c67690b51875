//! Middleware: request logging and metrics, problem+json for framework errors, and the
//! multi-segment form of asset keys.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use poem::http::uri::PathAndQuery;
use poem::http::{header, HeaderValue, StatusCode, Uri};
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;
use crate::problem::problem_from_poem_error;

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
