//! The newest link of an asset's chain as a writer or a checker sees it, and the write decision.
//!
//! Collectors (before a sweep), API writes (before a declaration) and `inventory verify` (while it
//! follows every chain) all read "the newest message of this asset's subject" and must agree on
//! what it is: a valid event of the subject (by the trust rule, [`crate::trust`]), or a message
//! that is not one, after which the chain restarts (the next event links to its sequence with ""
//! as the previous chain hash). This is that one type, and [`decide_upsert`] the one decision of
//! what to publish for a new state.

use crate::event::{ChainLink, EventData, EventType, InventoryEvent};
use crate::trust::Rejection;

/// The newest message of an asset's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastLink {
    /// A valid event of the subject (`discovered`, `changed` or `deleted`).
    Event(LastEvent),
    /// A message that is not a valid event of the subject: never tombstoned; the chain restarts
    /// after it, linked by its sequence.
    Unreadable { seq: u64 },
}

/// A valid asset event, as far as a writer or checker cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEvent {
    pub seq: u64,
    pub chainhash: String,
    pub contenthash: String,
    /// CloudEvents `source` of its writer.
    pub source: String,
    /// Whether it is a tombstone.
    pub deleted: bool,
    pub id: String,
    pub provider: String,
    pub kind: String,
    /// The asset's name (its last known name, for a tombstone).
    pub name: String,
}

impl LastLink {
    /// The link of the message at `seq`, given what [`crate::decode_stored`] made of it.
    pub fn of(seq: u64, decoded: Result<&InventoryEvent, &Rejection>) -> Self {
        let Ok(ev) = decoded else {
            return Self::Unreadable { seq };
        };
        let (id, provider, kind, name, deleted) = match &ev.data {
            EventData::Asset(a) => (&a.id, &a.provider, &a.kind, &a.name, false),
            EventData::Tombstone(t) => (&t.id, &t.provider, &t.kind, &t.name, true),
            EventData::Sweep(_) => return Self::Unreadable { seq },
        };
        // `decode` requires both on asset events.
        let (Some(chainhash), Some(contenthash)) = (&ev.chainhash, &ev.contenthash) else {
            return Self::Unreadable { seq };
        };
        Self::Event(LastEvent {
            seq,
            chainhash: chainhash.clone(),
            contenthash: contenthash.clone(),
            source: ev.source.clone(),
            deleted,
            id: id.clone(),
            provider: provider.clone(),
            kind: kind.clone(),
            name: name.clone(),
        })
    }

    /// Stream sequence of the message.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Event(e) => e.seq,
            Self::Unreadable { seq } => *seq,
        }
    }

    /// Its chain hash ("" when unreadable: the chain restarts).
    pub fn chainhash(&self) -> &str {
        match self {
            Self::Event(e) => &e.chainhash,
            Self::Unreadable { .. } => "",
        }
    }

    /// What the next event of the asset links to.
    pub fn link(&self) -> ChainLink {
        ChainLink {
            prevseq: self.seq(),
            chainhash: self.chainhash().to_owned(),
        }
    }

    /// The event, when it is a live (not deleted) asset state.
    pub fn live(&self) -> Option<&LastEvent> {
        match self {
            Self::Event(e) if !e.deleted => Some(e),
            _ => None,
        }
    }

    /// A live asset last written by `source`: the only kind a sweep of that source may tombstone.
    pub fn live_of(&self, source: &str) -> Option<&LastEvent> {
        self.live().filter(|e| e.source == source)
    }
}

/// Decides what to publish for an asset state with content hash `hash`, given its subject's newest
/// message (`None`: the subject has none). `None`: unchanged, publish nothing.
///
/// - no message, a tombstone, or an unreadable message: `discovered`, linked to it;
/// - a live state with the same content hash: nothing;
/// - a live state with another content hash: `changed`, linked to it.
pub fn decide_upsert(hash: &str, last: Option<&LastLink>) -> Option<(EventType, ChainLink)> {
    match last {
        None => Some((EventType::Discovered, ChainLink::default())),
        Some(l) => match l.live() {
            None => Some((EventType::Discovered, l.link())),
            Some(e) if e.contenthash == hash => None,
            Some(_) => Some((EventType::Changed, l.link())),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::event::tests::sample_asset;
    use crate::event::{decode, encode_asset};
    use crate::trust::RejectReason;
    use chrono::Utc;

    fn event(hash_of: &str) -> LastLink {
        let out = encode_asset(
            EventType::Discovered,
            &sample_asset(hash_of),
            "/file/x",
            Utc::now(),
            &ChainLink {
                prevseq: 3,
                chainhash: "c3".into(),
            },
        )
        .unwrap();
        LastLink::of(9, Ok(&decode(&out.payload).unwrap()))
    }

    #[test]
    fn the_write_decision() {
        let last = event("1");
        let LastLink::Event(e) = &last else {
            panic!("valid event")
        };
        assert_eq!(e.seq, 9);
        assert_eq!(decide_upsert(&e.contenthash, Some(&last)), None);
        assert_eq!(
            decide_upsert("other", Some(&last)),
            Some((EventType::Changed, last.link()))
        );
        assert_eq!(
            decide_upsert("h", None),
            Some((EventType::Discovered, ChainLink::default()))
        );
        let mut tomb = e.clone();
        tomb.deleted = true;
        let tomb = LastLink::Event(tomb);
        assert_eq!(
            decide_upsert(&e.contenthash, Some(&tomb)),
            Some((EventType::Discovered, tomb.link()))
        );
        let rejection = Rejection::new(RejectReason::Undecodable, "x");
        let bad = LastLink::of(12, Err(&rejection));
        assert_eq!(
            decide_upsert("h", Some(&bad)),
            Some((
                EventType::Discovered,
                ChainLink {
                    prevseq: 12,
                    chainhash: String::new()
                }
            ))
        );
        assert!(bad.live_of("/file/x").is_none());
        assert!(last.live_of("/file/x").is_some());
        assert!(last.live_of("/api").is_none());
    }
}
