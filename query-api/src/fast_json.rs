//! A JSON response written with serde straight from the document, for the hot read routes.
//!
//! poem-openapi's `Json<T>` first turns the whole document into a `serde_json::Value` tree
//! (every asset document parsed and rebuilt) and then writes that; for a page of 100 assets
//! that is most of the request's cost. [`FastJson`] declares the same schema and content type
//! and writes the same JSON (the documents implement both `ToJSON` and `Serialize`, and a test
//! keeps the two equal), plus the `Inventory-Seq` header: the committed checkpoint the answer
//! was read at.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;
use serde::Serialize;

/// The response header that names the stream sequence of the checkpoint a read answered at.
pub const SEQ_HEADER: &str = "Inventory-Seq";

/// A read's answer and the committed checkpoint it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct FastJson<T> {
    pub body: T,
    /// Stream sequence of the checkpoint the answer reflects.
    pub seq: u64,
}

const CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl<T: Serialize + Send> IntoResponse for FastJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.body) {
            Ok(body) => Response::builder()
                .content_type(CONTENT_TYPE)
                .header(SEQ_HEADER, self.seq)
                .body(body),
            // Unreachable for the documents of this API (string keys, finite numbers).
            Err(e) => Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(format!("cannot write the response: {e}")),
        }
    }
}

impl<T: Type + Serialize + Send> ApiResponse for FastJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: CONTENT_TYPE,
                    schema: T::schema_ref(),
                }],
                headers: vec![MetaHeader {
                    name: SEQ_HEADER.to_owned(),
                    description: Some(
                        "Stream sequence of the committed checkpoint the answer was read at: a \
                         reader never sees part of a batch."
                            .to_owned(),
                    ),
                    required: true,
                    deprecated: false,
                    schema: seq_schema(),
                }],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

fn seq_schema() -> MetaSchemaRef {
    <u64 as Type>::schema_ref()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::{TimeZone, Utc};
    use poem_openapi::types::ToJSON;

    use crate::model::{AssetDoc, AssetPage, ChangeDoc, ChangePage, Document};

    fn doc(i: u32, data: Option<&str>, deleted: bool) -> AssetDoc {
        let t = Utc
            .timestamp_opt(1_700_000_000 + i64::from(i), 123_456_000)
            .unwrap();
        AssetDoc {
            key: format!("aws/account/{i}"),
            provider: "aws".into(),
            kind: "account".into(),
            id: i.to_string(),
            name: "n \"quoted\" ü".into(),
            status: "active".into(),
            org_path: vec!["r".into(), "ou".into()],
            labels: [("team".to_owned(), "x".to_owned())].into(),
            url: i.is_multiple_of(2).then(|| "https://x".to_owned()),
            source: "/collectors/aws/o".into(),
            first_seen: t,
            last_changed: t,
            last_seen: t,
            deleted_at: deleted.then_some(t),
            version: u64::from(i),
            contenthash: "c".into(),
            chainhash: "h".into(),
            data: Document(data.map(Into::into)),
        }
    }

    #[test]
    fn writes_exactly_what_poem_openapi_writes() {
        let page = AssetPage {
            items: vec![
                doc(
                    1,
                    Some(r#"{"a": [1, 2.5, null, {"b": "\u00e9"}], "n": "x"}"#),
                    false,
                ),
                doc(2, None, true),
                doc(3, Some("not json"), false),
            ],
            next_cursor: None,
            as_of_seq: Some(7),
        };
        let written = |p: &AssetPage| -> serde_json::Value {
            serde_json::from_slice(&serde_json::to_vec(p).unwrap()).unwrap()
        };
        assert_eq!(written(&page), page.to_json().unwrap());
        let with_cursor = AssetPage {
            next_cursor: Some("abc".into()),
            as_of_seq: None,
            ..page
        };
        assert_eq!(written(&with_cursor), with_cursor.to_json().unwrap());
    }

    #[test]
    fn writes_change_pages_exactly_as_poem_openapi_does() {
        let t = Utc.timestamp_opt(1_700_000_000, 5_000).unwrap();
        let change = |seq: u64, previous: bool| ChangeDoc {
            seq,
            ty: if previous { "changed" } else { "discovered" }.into(),
            key: "gcp/project/p \"1\"".into(),
            time: t,
            recorded_at: t,
            name: "ü".into(),
            status: "active".into(),
            source: "/collectors/gcp/o".into(),
            event_id: "e".into(),
            contenthash: "c".into(),
            chainhash: "h".into(),
            prevseq: seq.saturating_sub(1),
            patch: previous
                .then(|| vec![serde_json::json!({"op": "replace", "path": "/a", "value": 2.5})]),
            provenance: previous.then(|| serde_json::json!({"request_ids": ["r"]})),
            data: serde_json::json!({"a": [1, null, {"b": "é"}]}),
        };
        let written = |p: &ChangePage| -> serde_json::Value {
            serde_json::from_slice(&serde_json::to_vec(p).unwrap()).unwrap()
        };
        for next_cursor in [None, Some("9".to_owned())] {
            let page = ChangePage {
                items: vec![change(1, false), change(2, true)],
                next_cursor,
            };
            assert_eq!(written(&page), page.to_json().unwrap());
        }
    }
}
