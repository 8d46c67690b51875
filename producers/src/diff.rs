//! The pure half of a sweep: classify the last event of each subject, and decide what to publish
//! for a collected listing (discovered / changed / unchanged, tombstones and the mass-deletion
//! guard). No IO here; [`crate::sweep`] feeds it what it read and publishes what it returns.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use inventory_bus::StoredMessage;
use inventory_schemas::{
    decide_upsert, encode_asset, encode_tombstone, hash::asset_content_hash, Asset, EventType,
    LastLink, OutgoingEvent, Provenance, SchemaError, Tombstone,
};
use tracing::warn;

use crate::source::Collected;

/// Classifies a stored message. Never fails: what is not a valid event of its subject (the trust
/// rule, [`StoredMessage::decode`]) is logged and `Unreadable`.
pub(crate) fn classify(msg: &StoredMessage) -> LastLink {
    let decoded = msg.decode();
    if let Err(reason) = &decoded {
        warn!(subject = %msg.subject, seq = msg.seq, reason = reason.reason.as_str(), detail = %reason.detail, "newest message of the subject is not its asset's event; the chain restarts after it");
    }
    LastLink::of(msg.seq, decoded.as_ref())
}

/// Whether a NATS subject matches a filter with `*` and `>` wildcards.
pub(crate) fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One write a sweep intends to make.
#[derive(Debug, Clone)]
pub struct PlannedWrite {
    /// What it records: `discovered`, `changed` or `deleted`.
    pub ty: EventType,
    /// The asset key (`aws/account/123456789012`).
    pub key: String,
    pub(crate) intent: Intent,
    pub(crate) event: OutgoingEvent,
}

/// What a write means, so it can be re-decided after a conflict.
#[derive(Debug, Clone)]
pub(crate) enum Intent {
    Upsert(Box<Asset>),
    /// A tombstone: re-decided from the subject's new last event.
    Delete,
}

/// The decisions of one sweep.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub writes: Vec<PlannedWrite>,
    pub seen: u64,
    pub unchanged: u64,
    pub deletions_withheld: u64,
    /// Why the sweep is partial (incomplete listing, guard).
    pub notes: Vec<String>,
}

/// The mass-deletion guard's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guard {
    pub max_delete_share: f64,
    pub force: bool,
}

/// Where and when the writes are made.
pub(crate) struct Context<'a> {
    pub source_uri: &'a str,
    pub scope: &'a str,
    pub filter: &'a str,
    pub observed: DateTime<Utc>,
}

/// A collected listing the sweep cannot publish (a bug or bad input in the source).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlanError {
    #[error("{what}: {source}")]
    Invalid { what: String, source: SchemaError },
    #[error("the source reported {key} twice")]
    Duplicate { key: String },
    #[error("the source reported {key}, outside its subject filter {filter}")]
    OutOfScope { key: String, filter: String },
}

/// Builds the write of a collected asset, or `None` when it is unchanged.
pub(crate) fn upsert_write(
    asset: &Asset,
    last: Option<&LastLink>,
    cx: &Context<'_>,
) -> Result<Option<PlannedWrite>, SchemaError> {
    let hash = asset_content_hash(asset)?;
    let Some((ty, link)) = decide_upsert(&hash, last) else {
        return Ok(None);
    };
    let event = encode_asset(ty, asset, cx.source_uri, cx.observed, &link)?;
    Ok(Some(PlannedWrite {
        ty,
        key: asset.key()?.to_string(),
        intent: Intent::Upsert(Box::new(asset.clone())),
        event,
    }))
}

/// Builds the tombstone of an asset absent from a complete sweep, or `None` when the subject's
/// last event is not a live asset of ours (anymore).
pub(crate) fn delete_write(
    last: &LastLink,
    provenance: &Provenance,
    cx: &Context<'_>,
) -> Result<Option<PlannedWrite>, SchemaError> {
    let Some(e) = last.live_of(cx.source_uri) else {
        return Ok(None);
    };
    let tombstone = Tombstone {
        id: e.id.clone(),
        provider: e.provider.clone(),
        kind: e.kind.clone(),
        name: e.name.clone(),
        reason: format!("absent from complete sweep of {}", cx.scope),
        last_contenthash: e.contenthash.clone(),
        provenance: provenance.clone(),
    };
    let event = encode_tombstone(&tombstone, cx.source_uri, cx.observed, &last.link())?;
    Ok(Some(PlannedWrite {
        ty: EventType::Deleted,
        key: tombstone.key()?.to_string(),
        intent: Intent::Delete,
        event,
    }))
}

/// Decides every write of a sweep. `last` maps NATS subjects to their newest message.
pub(crate) fn plan(
    collected: &Collected,
    last: &HashMap<String, LastLink>,
    cx: &Context<'_>,
    guard: Guard,
) -> Result<Plan, PlanError> {
    let mut plan = Plan {
        seen: collected.assets.len() as u64,
        ..Plan::default()
    };
    let mut present: HashSet<String> = HashSet::with_capacity(collected.assets.len());
    for (index, asset) in collected.assets.iter().enumerate() {
        let invalid = |source| PlanError::Invalid {
            what: format!(
                "asset {index} of the listing ({}/{}/{})",
                asset.provider, asset.kind, asset.id
            ),
            source,
        };
        let key = asset.key().map_err(invalid)?;
        let subject = key.subject();
        if !subject_matches(cx.filter, &subject) {
            return Err(PlanError::OutOfScope {
                key: key.to_string(),
                filter: cx.filter.to_owned(),
            });
        }
        if !present.insert(subject.clone()) {
            return Err(PlanError::Duplicate {
                key: key.to_string(),
            });
        }
        match upsert_write(asset, last.get(&subject), cx).map_err(invalid)? {
            Some(write) => plan.writes.push(write),
            None => plan.unchanged += 1,
        }
    }

    // Our live assets that the provider no longer reports, in a stable order.
    let live_ours = last
        .values()
        .filter(|l| l.live_of(cx.source_uri).is_some())
        .count();
    let absent: BTreeMap<&String, &LastLink> = last
        .iter()
        .filter(|(subject, l)| l.live_of(cx.source_uri).is_some() && !present.contains(*subject))
        .collect();
    if absent.is_empty() {
        if !collected.complete {
            plan.notes.push(incomplete_note(collected));
        }
        return Ok(plan);
    }
    if !collected.complete {
        plan.deletions_withheld = absent.len() as u64;
        plan.notes.push(format!(
            "{}; {} deletion(s) withheld",
            incomplete_note(collected),
            absent.len()
        ));
        return Ok(plan);
    }
    let share = absent.len() as f64 / live_ours as f64;
    if absent.len() >= 2 && share > guard.max_delete_share && !guard.force {
        plan.deletions_withheld = absent.len() as u64;
        plan.notes.push(format!(
            "mass-deletion guard: would delete {} of {} assets (> {:.0}%); rerun with --force-deletions if intended",
            absent.len(),
            live_ours,
            guard.max_delete_share * 100.0
        ));
        return Ok(plan);
    }
    for (subject, l) in absent {
        // Every entry is live and ours, so a write always results.
        let write =
            delete_write(l, &collected.provenance, cx).map_err(|source| PlanError::Invalid {
                what: format!("tombstone of {subject}"),
                source,
            })?;
        if let Some(write) = write {
            plan.writes.push(write);
        }
    }
    Ok(plan)
}

fn incomplete_note(collected: &Collected) -> String {
    match &collected.error {
        Some(e) => format!("incomplete sweep: {e}"),
        None => "incomplete sweep".to_owned(),
    }
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
