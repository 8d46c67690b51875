//! The asset page's *Integrity* section: the asset's own chain ([`chain_check`]), and the
//! stream's signed checkpoints ([`crate::integrity`]): whether the newest checkpoint verified and
//! which of the asset's versions it covers; the collectors page carries the same summary.
//! Nothing is called verified without a verifier key.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::integrity::{Integrity, IntegrityState};
use crate::model::ChangeDoc;

fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// The class of the status line: `ok` only for a verified checkpoint.
fn class(i: &Integrity) -> &'static str {
    match i.state {
        IntegrityState::Verified => "ok",
        IntegrityState::Failed => "bad",
        _ => "unknown",
    }
}

/// One sentence on the newest checkpoint and its outcome.
fn outcome(i: &Integrity) -> Markup {
    html! {
        @match i.state {
            IntegrityState::NoKey => {
                "Signed checkpoints: not checked, no verifier key is configured. Set "
                code { "INVENTORY_VERIFIER_KEY" } " (or " code { "--verifier-key" } ") of "
                code { "inventory serve" } " to the checkpoints' public key (written by "
                code { "inventory keygen" } ")."
                @if let Some(c) = &i.checkpoint {
                    " The newest checkpoint claims " (c.size) " messages of " code { (c.origin) } " (unverified)."
                }
            }
            IntegrityState::Pending => { "Signed checkpoints: the first check is running." }
            IntegrityState::NoCheckpoint => {
                "Signed checkpoints: none yet (" code { "inventory checkpoint" } " signs one; "
                code { "inventory up" } " signs one periodically)."
            }
            IntegrityState::Verified => {
                @if let Some(c) = &i.verified {
                    "Signed checkpoints: verified. The newest checkpoint of " code { (c.origin) }
                    " (" (c.size) " messages, signed by " (c.signers.join(", ")) ")"
                    @if let Some(t) = &i.verified_at { " was verified at " (time(t)) }
                    ": its signature checks with a configured key and the stream's messages 1.."
                    (c.size) " hash to the root it signed."
                }
            }
            IntegrityState::Failed => {
                "Signed checkpoints: the newest checkpoint did NOT verify: "
                (i.reason.as_deref().unwrap_or("")) "."
                @if let Some(v) = &i.verified {
                    " The last checkpoint that verified covers seq 1.." (v.size)
                    @if let Some(t) = &i.verified_at { " (verified at " (time(t)) ")" } "."
                }
            }
        }
        @if let Some(e) = &i.error { " The last check could not read the streams (" (e) "); it is retried." }
    }
}

/// The asset page's paragraph: the outcome and how many of the versions shown (`seqs`) the
/// newest verified checkpoint covers.
pub(crate) fn checkpoint_status(i: &Integrity, seqs: &[u64]) -> Markup {
    let covered = seqs.iter().filter(|&&s| i.covers(s)).count();
    html! {
        p #checkpoint-status class=(class(i)) {
            (outcome(i))
            @if let Some(v) = &i.verified {
                " Of the " (seqs.len()) " versions shown, " (covered) " are covered by it (seq ≤ " (v.size) ")"
                @if covered < seqs.len() { "; newer ones are covered by the next checkpoint" }
                "."
            }
            " " code { "inventory verify --checkpoints" } " re-checks every checkpoint and names the first differing message."
        }
    }
}

/// A timeline cell: whether the version at `seq` is covered by the newest verified checkpoint.
pub(crate) fn version_cell(i: &Integrity, seq: u64) -> Markup {
    html! {
        @match &i.verified {
            Some(v) if seq <= v.size => span.badge.ok title={"seq ≤ " (v.size)} { "covered" },
            Some(_) => span.badge { "not yet" },
            None if i.state == IntegrityState::NoKey => span.badge { "not checked" },
            None => span.badge { "not covered" },
        }
    }
}

/// The summary line of other pages (collectors).
pub(crate) fn summary(i: &Integrity) -> Markup {
    html! { p #integrity-status class=(class(i)) { (outcome(i)) } }
}

/// What the asset page found checking an asset's chain over the versions it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChainCheck {
    /// Every version names the one before it and its chain hash is
    /// `chain_hash(previous chain hash, contenthash, type)`: how many versions.
    Verified(usize),
    /// The first version (oldest first) that does not: its sequence and why.
    Broken { seq: u64, reason: &'static str },
}

/// Follows the asset's chain over `items` (newest first, as the history returns them) with the
/// one chain rule `inventory verify` applies ([`inventory_schemas::hash::chain_hash`]). The
/// oldest version shown links to an event outside the page (the timeline is bounded) or to a
/// message that is not an event of the asset: its chain hash is taken as given, as `verify`
/// does for a chain anchored before its window.
pub(crate) fn chain_check(items: &[&ChangeDoc]) -> ChainCheck {
    use inventory_schemas::{hash::chain_hash, EventType};
    let mut previous: Option<&ChangeDoc> = None;
    for &v in items.iter().rev() {
        let Some(ty) = EventType::from_short(&v.ty) else {
            return ChainCheck::Broken {
                seq: v.seq,
                reason: "its type is not an asset event's",
            };
        };
        let prev_chain = match previous {
            Some(p) if v.prevseq != p.seq => {
                return ChainCheck::Broken {
                    seq: v.seq,
                    reason: "its prevseq does not name the version before it",
                }
            }
            Some(p) => Some(p.chainhash.as_str()),
            None if v.prevseq == 0 => Some(""),
            None => None,
        };
        if let Some(prev_chain) = prev_chain {
            if chain_hash(prev_chain, &v.contenthash, ty) != v.chainhash {
                return ChainCheck::Broken {
                    seq: v.seq,
                    reason:
                        "its chain hash is not sha256(previous chain hash ‖ contenthash ‖ type)",
                };
            }
        }
        previous = Some(v);
    }
    ChainCheck::Verified(items.len())
}
