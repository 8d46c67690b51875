//! The pure fold: (current state of an asset, event) → new state. No IO; the store persists what
//! this computes, and replay/as-of views use the same function.

use chrono::{DateTime, Utc};
use inventory_schemas::{DataSummary, EventSummary, EventType, SchemaError};

/// What the current view holds about an asset. Its `data` document stays in the event that
/// carried it ([`AssetState::data_seq`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetState {
    pub key: String,
    pub provider: String,
    pub kind: String,
    pub native_id: String,
    pub name: String,
    pub status: String,
    /// CloudEvents source of the newest event.
    pub source: String,
    pub first_seen: DateTime<Utc>,
    pub last_changed: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// Stream sequence of the newest event.
    pub version: u64,
    /// Stream sequence of the event whose `data` is the asset's last known state: the newest
    /// `discovered`/`changed` event (a tombstone keeps the state before it). `None` for an asset
    /// known only from a tombstone.
    pub data_seq: Option<u64>,
    pub contenthash: String,
    pub chainhash: String,
}

/// Why an event could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("{0} is not an asset event")]
    NotAnAssetEvent(&'static str),
}

/// Applies one asset event to an asset's previous state (`None`: never seen).
///
/// - `discovered`/`changed`: the asset is live with the event's name and status; `first_seen` is
///   kept from the first event ever, `last_changed` moves only when the content hash differs.
/// - `deleted`: the asset keeps its last name and status and gets `deleted_at`; a tombstone for
///   an asset never seen creates a deleted row, so history stays complete.
pub fn fold(
    prev: Option<&AssetState>,
    seq: u64,
    ev: &EventSummary,
) -> Result<AssetState, FoldError> {
    let (provider, kind, native_id, name, status) = match &ev.data {
        DataSummary::Asset {
            provider,
            kind,
            id,
            name,
            status,
        } => (
            provider.as_str(),
            kind.as_str(),
            id.as_str(),
            name.clone(),
            status.as_str().to_owned(),
        ),
        DataSummary::Tombstone {
            provider,
            kind,
            id,
            name,
        } => (
            provider.as_str(),
            kind.as_str(),
            id.as_str(),
            prev.map(|p| p.name.clone()).unwrap_or_else(|| name.clone()),
            prev.map(|p| p.status.clone())
                .unwrap_or_else(|| "unknown".to_owned()),
        ),
        DataSummary::Sweep(_) => return Err(FoldError::NotAnAssetEvent(ev.ty.short())),
    };
    let contenthash = ev.contenthash.clone().unwrap_or_default();
    let changed = prev.is_none_or(|p| p.contenthash != contenthash);
    let at = ev.time;
    let key = format!("{provider}/{kind}/{native_id}");
    Ok(AssetState {
        first_seen: prev.map_or(at, |p| p.first_seen),
        last_changed: if changed {
            at
        } else {
            prev.map_or(at, |p| p.last_changed)
        },
        last_seen: at,
        deleted_at: (ev.ty == EventType::Deleted).then_some(at),
        version: seq,
        data_seq: match ev.data {
            DataSummary::Asset { .. } => Some(seq),
            _ => prev.and_then(|p| p.data_seq),
        },
        source: ev.source.clone(),
        chainhash: ev.chainhash.clone().unwrap_or_default(),
        contenthash,
        key,
        provider: provider.to_owned(),
        kind: kind.to_owned(),
        native_id: native_id.to_owned(),
        name,
        status,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use inventory_schemas::{
        decode_summary, encode_asset, encode_tombstone, Asset, AssetStatus, ChainLink, Provenance,
        Tombstone,
    };

    fn asset(name: &str) -> Asset {
        Asset {
            id: "1".into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: name.into(),
            status: AssetStatus::Active,
            org_path: vec![],
            region_residency: vec![],
            url: None,
            auth_mode: None,
            labels: Default::default(),
            raw: serde_json::Value::Null,
            provenance: Provenance::default(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    fn rec(ty: EventType, name: &str, t: i64) -> EventSummary {
        let out = if ty == EventType::Deleted {
            let tomb = Tombstone {
                id: "1".into(),
                provider: "aws".into(),
                kind: "account".into(),
                name: name.into(),
                reason: "gone".into(),
                last_contenthash: String::new(),
                provenance: Provenance::default(),
            };
            encode_tombstone(&tomb, "/file/t", at(t), &ChainLink::default()).unwrap()
        } else {
            encode_asset(ty, &asset(name), "/file/t", at(t), &ChainLink::default()).unwrap()
        };
        decode_summary(&out.payload).unwrap()
    }

    #[test]
    fn lifecycle() {
        let s1 = fold(None, 1, &rec(EventType::Discovered, "a", 0)).unwrap();
        assert_eq!(
            (s1.first_seen, s1.last_changed, s1.version),
            (at(0), at(0), 1)
        );
        assert_eq!(s1.key, "aws/account/1");
        let s2 = fold(Some(&s1), 5, &rec(EventType::Changed, "b", 10)).unwrap();
        assert_eq!(
            (s2.first_seen, s2.last_changed, s2.name.as_str()),
            (at(0), at(10), "b")
        );
        // Same content again (e.g. a replayed duplicate): last_changed does not move.
        let s3 = fold(Some(&s2), 6, &rec(EventType::Changed, "b", 20)).unwrap();
        assert_eq!((s3.last_changed, s3.last_seen), (at(10), at(20)));
        let s4 = fold(Some(&s3), 9, &rec(EventType::Deleted, "b", 30)).unwrap();
        assert_eq!(s4.deleted_at, Some(at(30)));
        assert_eq!((s4.name.as_str(), s4.status.as_str()), ("b", "active"));
        assert_eq!(
            (s3.data_seq, s4.data_seq),
            (Some(6), Some(6)),
            "tombstone keeps the data"
        );
        let s5 = fold(Some(&s4), 12, &rec(EventType::Discovered, "c", 40)).unwrap();
        assert_eq!((s5.deleted_at, s5.first_seen), (None, at(0)));
        assert_eq!(s5.data_seq, Some(12));
    }

    #[test]
    fn tombstone_of_unknown_asset_creates_a_deleted_row() {
        let s = fold(None, 3, &rec(EventType::Deleted, "x", 0)).unwrap();
        assert_eq!(s.deleted_at, Some(at(0)));
        assert_eq!(s.status, "unknown");
        assert_eq!(s.data_seq, None);
    }
}
