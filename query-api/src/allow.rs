//! `Allow` on 405 answers (RFC 9110 §15.5.6): the methods the spec declares for the path.
//!
//! The table is built from the spec's operations ([`crate::api::Apis`]), plus the plain routes
//! ([`crate::PLAIN_ROUTES`], `GET`), so it cannot drift from the routes.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use poem_openapi::OpenApi;

/// Every path template of the application and its methods.
#[derive(Debug, Clone)]
pub struct AllowTable {
    /// (template segments, `Allow` value)
    routes: Vec<(Vec<String>, HeaderValue)>,
}

impl AllowTable {
    /// The table of the application's routes.
    pub fn new() -> Self {
        let mut by_path: Vec<(String, BTreeSet<String>)> = Vec::new();
        let mut add = |path: &str, method: String| match by_path.iter_mut().find(|(p, _)| p == path)
        {
            Some((_, methods)) => {
                methods.insert(method);
            }
            None => by_path.push((path.to_owned(), BTreeSet::from([method]))),
        };
        for api in <crate::api::Apis as OpenApi>::meta() {
            for path in api.paths {
                for op in path.operations {
                    add(&path.path, op.method.as_str().to_owned());
                }
            }
        }
        for path in crate::PLAIN_ROUTES.iter().chain(crate::ui::ROUTES) {
            add(path, "GET".to_owned());
        }
        let routes = by_path
            .into_iter()
            .filter_map(|(path, methods)| {
                let value = methods.into_iter().collect::<Vec<_>>().join(", ");
                let value = HeaderValue::from_str(&value).ok()?;
                Some((segments(&path), value))
            })
            .collect();
        Self { routes }
    }

    /// The `Allow` value for a request path, if a route matches it.
    pub fn allow(&self, path: &str) -> Option<&HeaderValue> {
        let path = segments(path);
        self.routes
            .iter()
            .find(|(template, _)| matches(template, &path))
            .map(|(_, value)| value)
    }
}

impl Default for AllowTable {
    fn default() -> Self {
        Self::new()
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

/// Whether `path` matches `template`, where a `{param}` segment stands for one or more segments
/// (asset keys may be sent as a path tail: `/api/v1/assets/aws/account/1`).
fn matches(template: &[String], path: &[String]) -> bool {
    match template.split_first() {
        None => path.is_empty(),
        Some((t, rest)) if t.starts_with('{') && t.ends_with('}') => (1..=path.len())
            .any(|n| !path[..n].iter().any(String::is_empty) && matches(rest, &path[n..])),
        Some((t, rest)) => path
            .split_first()
            .is_some_and(|(p, prest)| p == t && matches(rest, prest)),
    }
}

/// Adds `Allow` to every 405 answer of `ep`.
pub async fn allow<E: Endpoint>(ep: Arc<E>, req: Request) -> Result<Response> {
    static TABLE: OnceLock<AllowTable> = OnceLock::new();
    let table = TABLE.get_or_init(AllowTable::new);
    let path = req.uri().path().to_owned();
    let mut resp = ep.call(req).await?.into_response();
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && !resp.headers().contains_key(header::ALLOW)
    {
        if let Some(value) = table.allow(&path) {
            resp.headers_mut().insert(header::ALLOW, value.clone());
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_their_methods() {
        let t = AllowTable::new();
        let allow = |p: &str| t.allow(p).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(allow("/api/v1/monitoring").as_deref(), Some("GET, POST"));
        assert_eq!(allow("/api/v1/assets").as_deref(), Some("GET"));
        assert_eq!(
            allow("/api/v1/assets/aws%2Faccount%2F1").as_deref(),
            Some("GET")
        );
        assert_eq!(
            allow("/api/v1/assets/aws/account/1/history").as_deref(),
            Some("GET")
        );
        assert_eq!(allow("/openapi.json").as_deref(), Some("GET"));
        assert_eq!(allow("/api/v1/nothing"), None);
        assert_eq!(allow("/api/v1/assets//history"), None);
    }
}
