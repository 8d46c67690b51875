//! The web console (issue 12): server-rendered pages over the same service layer as the JSON
//! API ([`crate::service`]), with a small stylesheet and script embedded in the binary.
//!
//! Every page is a *shell* and a *fragment*:
//! - the shell (`/`, `/ui/asset`, `/ui/diff`, `/ui/changes`, `/ui/live`, `/ui/collectors`)
//!   holds no data: navigation, the global *as of* control and the token prompt. It loads
//!   without a token, so the console can ask for one;
//! - its fragment (`/ui/f/<page>`, same query string) holds the data and is authorised exactly
//!   like the API (`Authorization: Bearer`, [`crate::auth::TokenSet::authorize_read`]); the
//!   script fetches it with the token the user typed, kept in `sessionStorage` (the tab's
//!   lifetime) only.
//!
//! The query string is the state (filters, cursor, `as_of`, the versions compared), so every
//! view is a shareable, reproducible URL. Parameters are parsed by the API's own parameter types
//! ([`crate::params`]); a refused one renders a readable error with the API's status.

mod chart;
mod integrity;
mod pages;

use std::future::Future;
use std::sync::OnceLock;

use maud::{html, Markup, DOCTYPE};
use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result, Route};
use poem_openapi::types::ParseFromParameter;
use sha2::{Digest, Sha256};

use crate::auth::bearer_token;
use crate::problem::{ErrorCode, ServiceError};
use crate::state::AppState;

/// The console's routes (all `GET`), as the metrics label them and `Allow` lists them.
pub const ROUTES: &[&str] = &[
    "/",
    "/ui/asset",
    "/ui/diff",
    "/ui/changes",
    "/ui/live",
    "/ui/collectors",
    "/ui/f/inventory",
    "/ui/f/asset",
    "/ui/f/diff",
    "/ui/f/changes",
    "/ui/f/collectors",
    "/ui/export.csv",
    "/ui/export.json",
    "/ui/static/console.css",
    "/ui/static/console.js",
];

/// Whether a request path is the console's (everything else is the API's).
pub fn owns(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

/// The content security policy of every console answer: nothing inline, nothing from
/// elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The application with the console: requests for [`owns`] paths go to the console, the rest
/// to `api` unchanged.
pub struct WithConsole<A> {
    api: A,
    console: Route,
}

impl<A> WithConsole<A> {
    pub fn new(api: A, state: &AppState) -> Self {
        Self {
            api,
            console: routes(state),
        }
    }
}

impl<A: Endpoint> Endpoint for WithConsole<A> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        if owns(req.uri().path()) {
            self.console.call(req).await
        } else {
            self.api.call(req).await.map(IntoResponse::into_response)
        }
    }
}

/// A console page: its path, title and the fragment holding its data (`None`: the page's
/// script fills it, the live view).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    path: &'static str,
    title: &'static str,
    fragment: Option<&'static str>,
    /// Shown in the navigation.
    nav: bool,
}

const INVENTORY: Page = Page {
    path: "/",
    title: "Inventory",
    fragment: Some("/ui/f/inventory"),
    nav: true,
};
const ASSET: Page = Page {
    path: "/ui/asset",
    title: "Asset",
    fragment: Some("/ui/f/asset"),
    nav: false,
};
const DIFF: Page = Page {
    path: "/ui/diff",
    title: "Estate diff",
    fragment: Some("/ui/f/diff"),
    nav: true,
};
const CHANGES: Page = Page {
    path: "/ui/changes",
    title: "Changes",
    fragment: Some("/ui/f/changes"),
    nav: true,
};
const LIVE: Page = Page {
    path: "/ui/live",
    title: "Live",
    fragment: None,
    nav: true,
};
const COLLECTORS: Page = Page {
    path: "/ui/collectors",
    title: "Collectors",
    fragment: Some("/ui/f/collectors"),
    nav: true,
};
const PAGES: [Page; 6] = [INVENTORY, DIFF, CHANGES, LIVE, COLLECTORS, ASSET];

fn routes(state: &AppState) -> Route {
    let mut route = Route::new();
    for page in PAGES {
        route = route.at(page.path, poem::get(shell_endpoint(page)));
    }
    route
        .at(
            "/ui/f/inventory",
            poem::get(fragment(state, pages::inventory)),
        )
        .at("/ui/f/asset", poem::get(fragment(state, pages::asset)))
        .at("/ui/f/diff", poem::get(fragment(state, pages::diff)))
        .at("/ui/f/changes", poem::get(fragment(state, pages::changes)))
        .at(
            "/ui/f/collectors",
            poem::get(fragment(state, pages::collectors)),
        )
        .at(
            "/ui/export.csv",
            poem::get(download(state, pages::export_csv)),
        )
        .at(
            "/ui/export.json",
            poem::get(download(state, pages::export_json)),
        )
        .at("/ui/static/console.css", poem::get(static_endpoint(&CSS)))
        .at("/ui/static/console.js", poem::get(static_endpoint(&JS)))
}

/// The query string of a request, decoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn of(req: &Request) -> Self {
        Self(
            url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name` (`None`: absent).
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `name` parsed by the API's parameter type `T`; absent or empty (a form's unset field)
    /// as the API takes an absent parameter.
    pub(crate) fn get<T: ParseFromParameter>(&self, name: &str) -> Result<T, ServiceError> {
        T::parse_from_parameters(self.raw(name).filter(|v| !v.is_empty())).map_err(|e| {
            let reason = e.into_message();
            let (param, detail) = crate::problem::parameter_problem(name, &reason);
            ServiceError::invalid_parameter(
                &param,
                detail.unwrap_or_else(|| format!("{name} is not valid")),
            )
        })
    }

    /// Every non-empty value of `name` parsed by the API's parameter type `T` (a repeated
    /// parameter, `label`).
    pub(crate) fn get_all<T: ParseFromParameter>(
        &self,
        name: &str,
    ) -> Result<Vec<T>, ServiceError> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| {
                T::parse_from_parameters(Some(v.as_str())).map_err(|e| {
                    let reason = e.into_message();
                    let (param, detail) = crate::problem::parameter_problem(name, &reason);
                    ServiceError::invalid_parameter(
                        &param,
                        detail.unwrap_or_else(|| format!("{name} is not valid")),
                    )
                })
            })
            .collect()
    }

    /// Whether `name` has the value `value` (a repeated parameter).
    pub(crate) fn has(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v == value)
    }

    /// This query with `value` added to the values of `name` (`add`) or removed from them, and
    /// the cursor dropped, encoded.
    pub(crate) fn toggled(&self, name: &str, value: &str, add: bool) -> String {
        let mut pairs: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, v)| k != "cursor" && !(k == name && (v == value || v.is_empty())))
            .cloned()
            .collect();
        if add {
            pairs.push((name.to_owned(), value.to_owned()));
        }
        encode(&pairs)
    }

    /// This query with `name` set to `value` (`None`: removed) and the cursor dropped, encoded
    /// (with its leading `?`, or empty).
    pub(crate) fn with(&self, changes: &[(&str, Option<&str>)]) -> String {
        let mut pairs: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(k, _)| k != "cursor" && !changes.iter().any(|(c, _)| c == k))
            .cloned()
            .collect();
        for (k, v) in changes {
            if let Some(v) = v {
                pairs.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
        encode(&pairs)
    }

    /// Only the global `as_of`, for links to other pages (with its leading `?`, or empty).
    pub(crate) fn as_of_only(&self) -> String {
        match self.raw("as_of").filter(|v| !v.is_empty()) {
            Some(v) => encode(&[("as_of".to_owned(), v.to_owned())]),
            None => String::new(),
        }
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Encodes query pairs (with a leading `?`; empty when there are none).
pub(crate) fn encode(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut s = url::form_urlencoded::Serializer::for_suffix(String::from("?"), 1);
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// What a fragment renders from: the state, the query, and the request's origin (for the
/// equivalent API call).
pub(crate) struct Ctx {
    pub state: AppState,
    pub query: Query,
    pub origin: String,
}

fn origin(state: &AppState, req: &Request) -> String {
    if let Some(url) = &state.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

/// Authorises a data request like the API does (a viewer or writer token when viewer tokens
/// are configured).
fn authorize(state: &AppState, req: &Request) -> Result<(), ServiceError> {
    state
        .tokens
        .authorize_read(bearer_token(req.headers()))
        .map(drop)
}

/// A fragment endpoint: authorised, rendered by `render`, errors rendered readable.
fn fragment<F, Fut>(state: &AppState, render: F) -> impl Endpoint
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Markup, ServiceError>> + Send,
{
    let state = state.clone();
    let render = std::sync::Arc::new(render);
    poem::endpoint::make(move |req: Request| {
        let state = state.clone();
        let render = std::sync::Arc::clone(&render);
        async move {
            if let Err(e) = authorize(&state, &req) {
                return html_response(error_markup(&e), e.code.status(), false);
            }
            let ctx = Ctx {
                origin: origin(&state, &req),
                query: Query::of(&req),
                state: state.clone(),
            };
            match render(ctx).await {
                Ok(m) => html_response(m, StatusCode::OK, false),
                Err(e) => html_response(error_markup(&e), e.code.status(), false),
            }
        }
    })
}

/// A download of the current query (authorised; errors as problem+json like the API's).
fn download<F, Fut>(state: &AppState, export: F) -> impl Endpoint
where
    F: Fn(Ctx) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(&'static str, Vec<u8>), ServiceError>> + Send,
{
    let state = state.clone();
    let export = std::sync::Arc::new(export);
    poem::endpoint::make(move |req: Request| {
        let state = state.clone();
        let export = std::sync::Arc::clone(&export);
        async move {
            if let Err(e) = authorize(&state, &req) {
                return e.to_problem().into_response();
            }
            let ctx = Ctx {
                origin: origin(&state, &req),
                query: Query::of(&req),
                state: state.clone(),
            };
            match export(ctx).await {
                Ok((content_type, body)) => Response::builder()
                    .content_type(content_type)
                    .header(header::CACHE_CONTROL, "no-store")
                    .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                    .body(body),
                Err(e) => e.to_problem().into_response(),
            }
        }
    })
}

/// An error as the console shows it: what went wrong and which parameter, readable.
fn error_markup(e: &ServiceError) -> Markup {
    let auth = e.code == ErrorCode::Unauthenticated;
    html! {
        div.error role="alert" data-status=(e.code.status().as_u16()) data-auth-required[auth] {
            h2 { (e.code.title()) }
            p { (e.detail) }
            @if let Some(p) = &e.parameter {
                p { "Parameter: " code { (p) } }
            }
        }
    }
}

pub(crate) fn html_response(m: Markup, status: StatusCode, cacheable: bool) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(
            header::CACHE_CONTROL,
            if cacheable { "no-cache" } else { "no-store" },
        )
        .body(m.into_string())
}

fn shell_endpoint(page: Page) -> impl Endpoint {
    poem::endpoint::make_sync(move |req: Request| {
        html_response(shell(page, &Query::of(&req)), StatusCode::OK, true)
    })
}

/// A page's shell: navigation, the *as of* control, the token prompt, and where the fragment
/// goes. It repeats the URL's parameters only, never data.
fn shell(page: Page, q: &Query) -> Markup {
    let as_of = q.raw("as_of").unwrap_or("");
    let keep = q.as_of_only();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) " · asset-inventory" }
                link rel="stylesheet" href=(CSS.href());
                script src=(JS.href()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Console" {
                        span.brand { "asset-inventory" }
                        ul {
                            @for p in PAGES.iter().filter(|p| p.nav) {
                                li {
                                    a href={(p.path) (keep)}
                                        aria-current=[(p.path == page.path).then_some("page")] {
                                        (p.title)
                                    }
                                }
                            }
                            li { a href="/docs" { "API" } }
                        }
                    }
                    form.asof method="get" action=(page.path) aria-label="Time travel" {
                        @for (k, v) in q.pairs().iter().filter(|(k, _)| k != "as_of" && k != "cursor") {
                            input type="hidden" name=(k) value=(v);
                        }
                        label for="as_of" { "As of" }
                        input #as_of name="as_of" value=(as_of) size="26"
                            placeholder="now · 2026-01-31T12:00:00Z · seq:42"
                            aria-describedby="as_of_help";
                        label.visually-hidden for="as_of_slider" { "Stream position" }
                        input #as_of_slider type="range" min="0" max="0" value="0" disabled;
                        button type="submit" { "Go" }
                        a href=(page.path) { "Now" }
                        span #as_of_help .hint { "An RFC 3339 time or seq:N; kept in the URL." }
                    }
                    form #token-form .token hidden aria-label="Viewer token" {
                        label for="token" { "This server needs a viewer token" }
                        input #token type="password" name="token" autocomplete="off" required;
                        button type="submit" { "Use token" }
                        span.hint { "Kept for this tab only (sessionStorage)." }
                    }
                    button #token-forget .link hidden type="button" { "Forget token" }
                }
                @match page.fragment {
                    Some(f) => {
                        main #main data-fragment=(f) aria-live="polite" aria-busy="true" tabindex="-1" {
                            p.loading { "Loading…" }
                            noscript { p { "The console needs JavaScript to fetch its data (with your token). The JSON API is at " a href="/docs" { "/docs" } "." } }
                        }
                    }
                    None => {
                        main #main tabindex="-1" { (pages::live_shell(q)) }
                    }
                }
            }
        }
    }
}

/// An embedded static file, served with a content-derived `ETag` and cached for a year under
/// a versioned URL.
pub(crate) struct Static {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
    tag: OnceLock<String>,
}

impl Static {
    /// The content's SHA-256, first 16 hex digits.
    fn tag(&self) -> &str {
        self.tag
            .get_or_init(|| hex::encode(&Sha256::digest(self.body.as_bytes())[..8]))
    }

    fn href(&self) -> String {
        format!("{}?v={}", self.path, self.tag())
    }
}

static CSS: Static = Static {
    path: "/ui/static/console.css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("../../static/console.css"),
    tag: OnceLock::new(),
};

static JS: Static = Static {
    path: "/ui/static/console.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("../../static/console.js"),
    tag: OnceLock::new(),
};

fn static_endpoint(file: &'static Static) -> impl Endpoint {
    poem::endpoint::make_sync(move |req: Request| {
        let etag = format!("\"{}\"", file.tag());
        let fresh = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let builder = Response::builder()
            .header(header::ETAG, etag.as_str())
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        if fresh {
            return builder.status(StatusCode::NOT_MODIFIED).finish();
        }
        builder.content_type(file.content_type).body(file.body)
    })
}
