//! `GET /api/v1/assets/{key}/history`, `GET /api/v1/changes`, `GET /api/v1/changes/stream`
//! and `GET /api/v1/diff`.

use poem::web::sse::Event;
use poem::IntoResponse;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, OpenApi};

use super::ApiTags;
use crate::auth::OptionalBearer;
use crate::fast_json::FastJson;
use crate::model::{ChangePage, ChangeType, DiffPage, FeedEvent};
use crate::params::{
    KeyCursor, KeyParam, LastEventId, Limit, OptionalPoint, RequiredPoint, SeqCursor, Word,
};
use crate::problem::{ErrorCode, Problem, ServiceError};
use crate::problem_responses;
use crate::service::feed::{self, FeedItem, FEED_RETRY_AFTER};
use crate::service::history::{self, ChangeFilter};
use crate::state::AppState;

problem_responses! {
    /// Errors of `GET /api/v1/assets/{key}/history`.
    pub enum HistoryError {
        /// The key or a parameter is malformed; `parameter` names it.
        400 => BadRequest,
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
        /// No asset with this key has ever been recorded.
        404 => NotFound,
    }
}

problem_responses! {
    /// Errors of the change and diff queries.
    pub enum ChangesError {
        /// A parameter is malformed or out of range; `parameter` names it.
        400 => BadRequest,
        /// Reads need a token here, and none (or an unknown one) was presented.
        401 => Unauthorized,
        /// A point (`since`, `until`, `from`, `to`) names a sequence beyond the newest event
        /// the read model holds; `parameter` names it.
        404 => NotFound,
    }
}

/// Errors of the change feed: those of the change queries, and 503 past the feed limit.
#[derive(Debug, ApiResponse)]
pub enum StreamError {
    /// A parameter or `Last-Event-ID` is malformed; `parameter` names it.
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(Json<Problem>),
    /// Reads need a token here, and none (or an unknown one) was presented.
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    /// `since` names a sequence beyond the newest event the read model holds.
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// The server already serves its maximum of change feeds (`INVENTORY_FEED_MAX_CLIENTS`):
    /// retry after `Retry-After` seconds.
    #[oai(status = 503, content_type = "application/problem+json")]
    Unavailable(
        Json<Problem>,
        /// Seconds to wait before retrying.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Internal error (details in the server log).
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

impl From<ServiceError> for StreamError {
    fn from(e: ServiceError) -> Self {
        match e.code {
            ErrorCode::InvalidParameter => Self::BadRequest(Json(e.to_problem())),
            ErrorCode::Unauthenticated => Self::Unauthorized(Json(e.to_problem())),
            // The feed limit, the one 503 of this route.
            ErrorCode::Unavailable => {
                Self::Unavailable(Json(e.to_problem()), FEED_RETRY_AFTER.as_secs())
            }
            _ => match ChangesError::from(e) {
                ChangesError::Internal(p) => Self::Internal(p),
                ChangesError::BadRequest(p) => Self::BadRequest(p),
                ChangesError::Unauthorized(p) => Self::Unauthorized(p),
                ChangesError::NotFound(p) => Self::NotFound(p),
                // Too many reads in progress (the read bound, `crate::reads`).
                ChangesError::Unavailable(p, retry) => {
                    Self::Unavailable(p, retry.unwrap_or(FEED_RETRY_AFTER.as_secs()))
                }
            },
        }
    }
}

/// History, changes and diffs.
pub struct HistoryApi {
    state: AppState,
}

impl HistoryApi {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

/// SSE form of a feed item: `change` events carry the stream sequence as their id.
fn sse_event(item: FeedItem) -> Event {
    match item {
        FeedItem::Change(c) => Event::message(&*c.json)
            .event_type("change")
            .id(c.seq.to_string()),
        FeedItem::End(end) => {
            Event::message(FeedEvent::End(end).to_json_string()).event_type("end")
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::History")]
impl HistoryApi {
    /// History of one asset
    ///
    /// Every event of the asset, newest first, paged: the state after it, what changed (a JSON
    /// Patch against the previous version) and its provenance. The key may be sent
    /// percent-encoded or as a path tail (`/api/v1/assets/aws/account/123/history`).
    #[oai(
        path = "/assets/:key/history",
        method = "get",
        operation_id = "getAssetHistory"
    )]
    async fn history(
        &self,
        auth: OptionalBearer,
        /// `<provider>/<kind>/<native id>`, e.g. `aws/account/123456789012`.
        key: Path<KeyParam>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Limit>,
        /// `next_cursor` of the previous page.
        cursor: Query<SeqCursor>,
    ) -> Result<FastJson<ChangePage>, HistoryError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(history::history(&self.state, key.0 .0, limit.0 .0, cursor.0 .0).await?)
    }

    /// Changes in a window
    ///
    /// Asset events (discovered, changed, deleted) after `since` and up to `until`, in stream
    /// order, filtered, paged by stream sequence. Each carries the state after it, a JSON Patch
    /// against the asset's previous version, and its provenance.
    #[oai(path = "/changes", method = "get", operation_id = "listChanges")]
    #[allow(clippy::too_many_arguments)]
    async fn changes(
        &self,
        auth: OptionalBearer,
        /// Only changes after this point: an RFC 3339 time or `seq:N` (exclusive). Default: the
        /// start of the stream.
        since: Query<OptionalPoint>,
        /// Only changes up to this point: an RFC 3339 time or `seq:N` (inclusive).
        until: Query<OptionalPoint>,
        /// Provider: 1-64 of `[a-z0-9_-]`.
        provider: Query<Word>,
        /// Kind: 1-64 of `[a-z0-9_-]`.
        kind: Query<Word>,
        /// Event type.
        #[oai(name = "type")]
        ty: Query<Option<ChangeType>>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Limit>,
        /// `next_cursor` of the previous page.
        cursor: Query<SeqCursor>,
    ) -> Result<FastJson<ChangePage>, ChangesError> {
        self.state.tokens.authorize_read(auth.token())?;
        let filter = ChangeFilter {
            provider: provider.0 .0,
            kind: kind.0 .0,
            ty: ty.0,
        };
        Ok(history::changes(
            &self.state,
            filter,
            since.0 .0,
            until.0 .0,
            limit.0 .0,
            cursor.0 .0,
        )
        .await?)
    }

    /// Live change feed (Server-Sent Events)
    ///
    /// Changes as the read model applies them, with the same filters as `/changes`. Each
    /// `change` event's SSE id is its stream sequence: a client that reconnects with
    /// `Last-Event-ID` resumes right after it, with no gap and no duplicate. Comments are sent
    /// as heartbeats while nothing changes. A client that leaves its buffer full for
    /// `INVENTORY_FEED_SLOW_AFTER` is sent an `end` event (with the last id it was sent) and
    /// the stream is closed. At most `INVENTORY_FEED_MAX_CLIENTS` feeds are open at once; past
    /// it, 503 with `Retry-After`.
    #[oai(
        path = "/changes/stream",
        method = "get",
        operation_id = "streamChanges"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &self,
        auth: OptionalBearer,
        /// Start after this point (an RFC 3339 time or `seq:N`) instead of at the changes
        /// applied from now on. Ignored when `Last-Event-ID` is sent.
        since: Query<OptionalPoint>,
        /// Provider: 1-64 of `[a-z0-9_-]`.
        provider: Query<Word>,
        /// Kind: 1-64 of `[a-z0-9_-]`.
        kind: Query<Word>,
        /// Event type.
        #[oai(name = "type")]
        ty: Query<Option<ChangeType>>,
        /// The id of the last event received, sent by SSE clients when they reconnect.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<LastEventId>,
        req: &poem::Request,
    ) -> Result<super::FeedEvents, StreamError> {
        crate::params::refuse_opaque_header(req, "Last-Event-ID")?;
        self.state.tokens.authorize_read(auth.token())?;
        let filter = ChangeFilter {
            provider: provider.0 .0,
            kind: kind.0 .0,
            ty: ty.0,
        };
        let slot = feed::admit(&self.state)?;
        let start = feed::start(&self.state, last_event_id.0 .0, since.0 .0).await?;
        let stream = feed::feed(self.state.clone(), filter, start, slot);
        Ok(super::FeedEvents(
            EventStream::new(futures::StreamExt::boxed(stream))
                .keep_alive(self.state.feed.heartbeat)
                .to_event(sse_event)
                .into_response(),
        ))
    }

    /// Difference between two points
    ///
    /// Assets added, removed and changed (content) between `from` and `to` (RFC 3339 times or
    /// `seq:N`), across the estate or for one provider or kind, ordered by key, paged; with the
    /// totals of all pages and, for changed assets, a JSON Patch.
    #[oai(path = "/diff", method = "get", operation_id = "diff")]
    #[allow(clippy::too_many_arguments)]
    async fn diff(
        &self,
        auth: OptionalBearer,
        /// The earlier point: an RFC 3339 time or `seq:N`.
        from: Query<RequiredPoint>,
        /// The later point: an RFC 3339 time or `seq:N`.
        to: Query<RequiredPoint>,
        /// Provider: 1-64 of `[a-z0-9_-]`.
        provider: Query<Word>,
        /// Kind: 1-64 of `[a-z0-9_-]`.
        kind: Query<Word>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Limit>,
        /// `next_cursor` of the previous page.
        cursor: Query<KeyCursor>,
    ) -> Result<Json<DiffPage>, ChangesError> {
        self.state.tokens.authorize_read(auth.token())?;
        Ok(Json(
            history::diff(
                &self.state,
                from.0 .0,
                to.0 .0,
                provider.0 .0,
                kind.0 .0,
                limit.0 .0,
                cursor.0 .0,
            )
            .await?,
        ))
    }
}
