//! The asset-inventory HTTP API (DESIGN §6): a poem-openapi service that reads the DuckDB read
//! model its own embedded projector keeps up to date (DESIGN §5), and declares monitoring
//! endpoints by publishing events.
//!
//! - [`serve`] runs everything: NATS, the stream, the store, the projector, the HTTP server.
//! - [`app`] is the HTTP endpoint alone (tests drive it with `poem::test::TestClient`).
//!
//! Routes: `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json`, `GET /docs`,
//! `GET /api/v1/assets`, `GET /api/v1/assets/{key}`, `GET /api/v1/accounts`,
//! `GET|POST /api/v1/monitoring`, `GET /api/v1/assets/{key}/history`, `GET /api/v1/changes`,
//! `GET /api/v1/changes/stream` (SSE), `GET /api/v1/diff`, `GET /api/v1/collectors`,
//! `GET /api/v1/integrity` (the stream's signed checkpoints, checked by [`integrity`]); the
//! listings and `/assets/{key}` take `as_of`. Errors are
//! `application/problem+json` ([`problem`]).
//!
//! The web console ([`ui`]): `GET /` (inventory), `/ui/asset?key=`, `/ui/diff`, `/ui/changes`
//! (chart), `/ui/live`, `/ui/collectors` (shells without data), their data fragments
//! `/ui/f/{inventory,asset,diff,changes,collectors}` and `/ui/export.{csv,json}` (authorised like
//! the API), and the embedded `/ui/static/console.{css,js}`.

mod allow;
pub mod api;
pub mod auth;
mod conn;
pub mod cursor;
pub mod declare;
pub mod fast_json;
mod http;
pub mod integrity;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod params;
pub mod patch;
pub mod problem;
pub mod reads;
mod server;
pub mod service;
mod state;
pub mod ui;

use std::sync::Arc;

use poem::{Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;

pub use auth::{ConfigError, Principal, Role, TokenSet};
pub use declare::Publisher;
pub use integrity::{Integrity, IntegrityConfig, IntegrityState};
pub use limits::{Limits, ReadyBounds};
pub use server::{serve, ApiError, ServeConfig, SHUTDOWN_TIMEOUT};
pub use state::{AppState, FeedSettings, DEFAULT_SWEEP_INTERVAL};

/// Routes served outside the OpenAPI operations.
pub const PLAIN_ROUTES: &[&str] = &["/openapi.json", "/docs"];

/// The OpenAPI service over `state` (the spec and the operations).
pub fn openapi_service(state: &AppState) -> OpenApiService<api::Apis, ()> {
    let mut service = OpenApiService::new(
        api::apis(state),
        "asset-inventory",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Event-sourced, multi-cloud inventory of an organisation's cloud accounts and monitoring \
         endpoints. Reads come from this replica's read model; errors are \
         application/problem+json (RFC 9457).",
    );
    if let Some(url) = &state.public_url {
        service = service.server(url.clone());
    }
    service
}

/// The whole HTTP application: the API, `/openapi.json`, `/docs` (Swagger UI), the console, request
/// logging and metrics, problem+json for every error, and the bounds on each request
/// ([`http::guard`]: authentication before a body is read, body size). The server loop
/// (`conn.rs`) adds the connection bounds and the request timeout.
pub fn app(state: AppState) -> impl Endpoint {
    let service = openapi_service(&state);
    let metrics = Arc::clone(&state.metrics);
    let guard = http::Guard::new(&state);
    let api = Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .nest("/docs", service.swagger_ui())
        .nest("/", service);
    ui::WithConsole::new(api, &state)
        .before(|req| async move { http::rewrite_asset_tail(req) })
        .around(move |ep, req| http::guard(ep, req, guard.clone()))
        .around(move |ep, req| http::observe(ep, req, Arc::clone(&metrics)))
        .around(allow::allow)
}
