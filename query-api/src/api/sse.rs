//! The spec of an event stream: what one Server-Sent Event of the change feed looks like.
//!
//! OpenAPI 3.0 has no `itemSchema`: the schema of a `text/event-stream` response describes each
//! event (its `event`, `id` and `data` fields), as tools read it. poem-openapi's `EventStream`
//! declares an array of the `data` documents instead, which no event matches; [`FeedEvents`]
//! declares the events as they are sent, and the documents their `data` carries.

use poem::{IntoResponse, Response};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;

use crate::model::FeedEvent;

/// The SSE answer of `GET /api/v1/changes/stream` (already made a response).
pub struct FeedEvents(pub Response);

impl IntoResponse for FeedEvents {
    fn into_response(self) -> Response {
        self.0
    }
}

fn string(description: &'static str) -> MetaSchema {
    MetaSchema {
        description: Some(description),
        ..MetaSchema::new("string")
    }
}

impl ApiResponse for FeedEvents {
    fn meta() -> MetaResponses {
        let event = MetaSchema {
            description: Some(
                "One Server-Sent Event. `change`: `id` is the stream sequence and `data` the JSON \
                 of a ChangeDoc. `end` (the last event before the server closes the stream): \
                 `data` is the JSON of a FeedEnd.",
            ),
            required: vec!["event", "data"],
            properties: vec![
                (
                    "event",
                    MetaSchemaRef::Inline(Box::new(MetaSchema {
                        enum_items: vec!["change".into(), "end".into()],
                        ..string("The event type.")
                    })),
                ),
                (
                    "id",
                    MetaSchemaRef::Inline(Box::new(MetaSchema {
                        pattern: Some("^[0-9]+$".to_owned()),
                        ..string("The stream sequence of a `change` (send it as `Last-Event-ID`).")
                    })),
                ),
                (
                    "data",
                    MetaSchemaRef::Inline(Box::new(string(
                        "JSON: a ChangeDoc (`change`) or a FeedEnd (`end`).",
                    ))),
                ),
            ],
            ..MetaSchema::new("object")
        };
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The change feed, one event per change.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: MetaSchemaRef::Inline(Box::new(event)),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        // The documents the events carry, named in the description.
        <FeedEvent as Type>::register(registry);
    }
}
