//! The stream's signed checkpoints on the console ([`crate::integrity`]): the asset page says
//! whether the newest checkpoint verified and which of the asset's versions it covers; the
//! collectors page carries the same summary. Nothing is called verified without a verifier key.

use chrono::{DateTime, Utc};
use maud::{html, Markup};

use crate::integrity::{Integrity, IntegrityState};

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
