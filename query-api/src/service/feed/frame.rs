//! The unit of the change feed: one change serialized once ([`Frame`]) and shared by every feed
//! that sends it, and the items of a feed's SSE stream ([`FeedItem`]).

use std::sync::Arc;

use inventory_projector::history::ChangeQuery;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};

use crate::model::{ChangeDoc, FeedEnd, FeedEvent};

/// One change, serialized once (the `data` of its SSE event) and shared by every feed that
/// sends it.
#[derive(Debug)]
pub struct Frame {
    /// Stream sequence (the SSE id).
    pub seq: u64,
    /// discovered | changed | deleted
    pub(super) ty: Box<str>,
    /// `<provider>/<kind>/<native id>`
    pub(super) key: Box<str>,
    /// The [`ChangeDoc`] as JSON.
    pub json: Box<str>,
}

impl Frame {
    pub(super) fn new(doc: &ChangeDoc) -> Result<Self, serde_json::Error> {
        Ok(Self {
            seq: doc.seq,
            ty: doc.ty.as_str().into(),
            key: doc.key.as_str().into(),
            json: serde_json::to_string(doc)?.into_boxed_str(),
        })
    }

    /// What the frame counts for in a feed's queue.
    pub(super) fn weight(&self) -> usize {
        self.json.len() + self.key.len() + self.ty.len() + std::mem::size_of::<Self>()
    }

    /// Whether the change passes a feed's filters (those of [`history::changes`]).
    pub(super) fn matches(&self, q: &ChangeQuery) -> bool {
        let mut parts = self.key.splitn(3, '/');
        let (provider, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        q.in_scope(provider, kind) && q.has_type(&self.ty)
    }
}

/// An item of a feed: a change, or the `end` event before the server closes the stream.
#[derive(Debug, Clone)]
pub enum FeedItem {
    Change(Arc<Frame>),
    End(FeedEnd),
}

/// The spec of a feed item is that of [`FeedEvent`]: the items are its pre-serialized form.
impl Type for FeedItem {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        <FeedEvent as Type>::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        <FeedEvent as Type>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <FeedEvent as Type>::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for FeedItem {
    fn to_json(&self) -> Option<serde_json::Value> {
        match self {
            Self::Change(f) => serde_json::from_str(&f.json).ok(),
            Self::End(end) => end.to_json(),
        }
    }
}
