//! The trust rule (DESIGN §4): a stored message counts only as an event *of the NATS subject it
//! was stored on*. NATS permissions protect subjects, not payloads, so whatever a payload claims
//! about itself (its CloudEvents `subject`, its `data` key, its `source`, its time) is checked
//! against what the transport proves: the subject and JetStream's own timestamp.
//!
//! This module is the rule's only home. The projector, the collectors, API writes, `inventory
//! verify`, `inventory watch` and (through the read model) the SSE feed all decide with
//! [`admit`] (or [`decode_stored`] / [`decode_stored_summary`], which decode and then admit).
//!
//! The rule, for a message stored on subject `S` at JetStream time `T`:
//! - `S = inventory.asset.<p>.<k>.<token>`: a `discovered`, `changed` or `deleted` event whose
//!   `data` key is `<p>/<k>/<id>` with `subject_token(id) = token`, whose CloudEvents `subject`
//!   is that key, and whose `source` is `/collectors/<p>/<scope>` (a collector of that very
//!   provider), `/file/<name>` (declared assets) or `/api` (API writes).
//! - `S = inventory.sweep.<p>.<scope token>` (or the older `inventory.sweep.<p>`, still accepted
//!   for history already written): a `sweep.completed` event whose `data.provider` is `p`, whose
//!   `data.scope` (and CloudEvents `subject`) maps to the subject's scope token, and whose
//!   `source` is that scope's: `/collectors/<p>/<scope>`, or `/file/<scope>` when `p` is `file`.
//!   `started_at` is not after `finished_at`.
//! - The event's time (and a sweep's `finished_at`) is not later than `T` plus
//!   [`MAX_CLOCK_SKEW`]: nobody observes the future.
//! - Any other subject is not part of the contract.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};

use crate::asset::SweepCompleted;
use crate::event::{EventData, EventType, InventoryEvent};
use crate::key::{is_token_safe, subject_token, ASSET_SUBJECT_PREFIX, SWEEP_SUBJECT_PREFIX};
use crate::summary::{DataSummary, EventSummary};

/// How far an event's own time may lie after JetStream's timestamp of it (collectors' clocks
/// drift; five minutes is what Kerberos and most token validators allow).
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// Why a stored message is not an event of its subject. The values are bounded (a metrics label)
/// and stable (they are stored in the `rejected` table and answered by the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Not a CloudEvent of this contract.
    Undecodable,
    /// Stored on a subject outside the contract (`inventory.asset.<p>.<k>.<token>`,
    /// `inventory.sweep.<p>[.<scope token>]`).
    UnknownSubject,
    /// A sweep on an asset subject, or an asset event on a sweep subject.
    WrongType,
    /// The event is about another asset (or sweep scope) than its subject's.
    SubjectMismatch,
    /// Its `source` is not one allowed to write this subject.
    SourceMismatch,
    /// It claims a time after it was recorded.
    FutureTime,
    /// Admitted by the rule, but its data cannot be folded into the read model.
    InvalidData,
}

impl RejectReason {
    pub const ALL: [RejectReason; 7] = [
        Self::Undecodable,
        Self::UnknownSubject,
        Self::WrongType,
        Self::SubjectMismatch,
        Self::SourceMismatch,
        Self::FutureTime,
        Self::InvalidData,
    ];

    /// The stable code (metrics label, `rejected.reason_code`, API field).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::UnknownSubject => "unknown_subject",
            Self::WrongType => "wrong_type",
            Self::SubjectMismatch => "subject_mismatch",
            Self::SourceMismatch => "source_mismatch",
            Self::FutureTime => "future_time",
            Self::InvalidData => "invalid_data",
        }
    }

    /// Parses a code written by [`RejectReason::as_str`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message refused by the rule: the reason's code and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// What an event claims about itself, as far as the rule cares.
#[derive(Debug, Clone, Copy)]
pub struct Claims<'a> {
    pub ty: EventType,
    pub source: &'a str,
    /// The CloudEvents `subject`: the asset key, or the sweep's scope.
    pub subject: Option<&'a str>,
    pub time: DateTime<Utc>,
    pub about: About<'a>,
}

/// What the event's `data` is about.
#[derive(Debug, Clone, Copy)]
pub enum About<'a> {
    Asset {
        provider: &'a str,
        kind: &'a str,
        id: &'a str,
    },
    Sweep {
        provider: &'a str,
        scope: &'a str,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    },
}

impl<'a> About<'a> {
    fn sweep(s: &'a SweepCompleted) -> Self {
        Self::Sweep {
            provider: &s.provider,
            scope: &s.scope,
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

impl EventSummary {
    /// What this event claims (see [`admit`]).
    pub fn claims(&self) -> Claims<'_> {
        let about = match &self.data {
            DataSummary::Asset {
                provider, kind, id, ..
            }
            | DataSummary::Tombstone {
                provider, kind, id, ..
            } => About::Asset { provider, kind, id },
            DataSummary::Sweep(s) => About::sweep(s),
        };
        Claims {
            ty: self.ty,
            source: &self.source,
            subject: self.subject.as_deref(),
            time: self.time,
            about,
        }
    }
}

impl InventoryEvent {
    /// What this event claims (see [`admit`]).
    pub fn claims(&self) -> Claims<'_> {
        let about = match &self.data {
            EventData::Asset(a) => About::Asset {
                provider: &a.provider,
                kind: &a.kind,
                id: &a.id,
            },
            EventData::Tombstone(t) => About::Asset {
                provider: &t.provider,
                kind: &t.kind,
                id: &t.id,
            },
            EventData::Sweep(s) => About::sweep(s),
        };
        Claims {
            ty: self.ty,
            source: &self.source,
            subject: self.subject.as_deref(),
            time: self.time,
            about,
        }
    }
}

/// A NATS subject of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractSubject<'a> {
    /// `inventory.asset.<provider>.<kind>.<token>`.
    Asset {
        provider: &'a str,
        kind: &'a str,
        token: &'a str,
    },
    /// `inventory.sweep.<provider>.<scope token>`, or the older `inventory.sweep.<provider>`
    /// (`scope_token` `None`).
    Sweep {
        provider: &'a str,
        scope_token: Option<&'a str>,
    },
}

impl<'a> ContractSubject<'a> {
    /// Parses a NATS subject; `None` when it is outside the contract.
    pub fn parse(subject: &'a str) -> Option<Self> {
        let nonempty = |t: &&str| !t.is_empty();
        if let Some(rest) = subject
            .strip_prefix(ASSET_SUBJECT_PREFIX)
            .and_then(|r| r.strip_prefix('.'))
        {
            let mut parts = rest.split('.');
            let provider = parts.next().filter(nonempty)?;
            let kind = parts.next().filter(nonempty)?;
            let token = parts.next().filter(nonempty)?;
            return parts.next().is_none().then_some(Self::Asset {
                provider,
                kind,
                token,
            });
        }
        let rest = subject
            .strip_prefix(SWEEP_SUBJECT_PREFIX)
            .and_then(|r| r.strip_prefix('.'))?;
        let mut parts = rest.split('.');
        let provider = parts.next().filter(nonempty)?;
        let scope_token = match parts.next() {
            None => None,
            Some(t) if !t.is_empty() => Some(t),
            Some(_) => return None,
        };
        parts.next().is_none().then_some(Self::Sweep {
            provider,
            scope_token,
        })
    }
}

/// A CloudEvents `source` of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceUri<'a> {
    /// `/collectors/<provider>/<scope>`.
    Collector { provider: &'a str, scope: &'a str },
    /// `/file/<name>`: declared assets.
    File { name: &'a str },
    /// `/api`: writes through the HTTP API.
    Api,
}

impl<'a> SourceUri<'a> {
    /// Parses a `source`; `None` when it is not one of the contract's forms.
    pub fn parse(source: &'a str) -> Option<Self> {
        if source == "/api" {
            return Some(Self::Api);
        }
        if let Some(name) = source.strip_prefix("/file/") {
            return (!name.is_empty()).then_some(Self::File { name });
        }
        let rest = source.strip_prefix("/collectors/")?;
        let (provider, scope) = rest.split_once('/')?;
        (!provider.is_empty() && !provider.contains('/') && !scope.is_empty())
            .then_some(Self::Collector { provider, scope })
    }
}

/// Whether `token` is the subject token of `native_id`, without allocating for the common case
/// of a subject-safe id.
fn token_matches(token: &str, native_id: &str) -> bool {
    if is_token_safe(native_id) {
        token == native_id
    } else {
        subject_token(native_id) == token
    }
}

/// Decides whether a message stored on `nats_subject`, recorded by JetStream at `recorded_at`,
/// is a valid event of that subject, given what it claims.
pub fn admit(
    nats_subject: &str,
    recorded_at: DateTime<Utc>,
    claims: &Claims<'_>,
) -> Result<(), Rejection> {
    use RejectReason::*;
    let Some(stored_on) = ContractSubject::parse(nats_subject) else {
        return Err(Rejection::new(
            UnknownSubject,
            format!("{nats_subject:?} is not an inventory.asset.<provider>.<kind>.<id> or inventory.sweep.<provider>.<scope> subject"),
        ));
    };
    match (stored_on, claims.about) {
        (ContractSubject::Asset { .. }, About::Sweep { .. }) => {
            return Err(Rejection::new(
                WrongType,
                format!("a {} event on an asset subject", claims.ty.short()),
            ))
        }
        (ContractSubject::Sweep { .. }, About::Asset { .. }) => {
            return Err(Rejection::new(
                WrongType,
                format!("a {} event on a sweep subject", claims.ty.short()),
            ))
        }
        (
            ContractSubject::Asset {
                provider,
                kind,
                token,
            },
            About::Asset {
                provider: p,
                kind: k,
                id,
            },
        ) => {
            if p != provider || k != kind || !token_matches(token, id) {
                return Err(Rejection::new(
                    SubjectMismatch,
                    format!("the event is about {p}/{k}/{id}, not an asset of {nats_subject}"),
                ));
            }
            let key_matches = claims.subject.is_some_and(|s| {
                s.strip_prefix(p)
                    .and_then(|r| r.strip_prefix('/'))
                    .and_then(|r| r.strip_prefix(k))
                    .and_then(|r| r.strip_prefix('/'))
                    == Some(id)
            });
            if !key_matches {
                return Err(Rejection::new(
                    SubjectMismatch,
                    format!(
                        "its CloudEvents subject {:?} is not its data's key {p}/{k}/{id}",
                        claims.subject.unwrap_or_default()
                    ),
                ));
            }
            match SourceUri::parse(claims.source) {
                Some(SourceUri::Collector { provider: sp, .. }) if sp == provider => {}
                Some(SourceUri::File { .. } | SourceUri::Api) => {}
                _ => {
                    return Err(Rejection::new(
                        SourceMismatch,
                        format!(
                            "source {:?} may not write {provider} assets (expected /collectors/{provider}/<scope>, /file/<name> or /api)",
                            claims.source
                        ),
                    ))
                }
            }
        }
        (
            ContractSubject::Sweep {
                provider,
                scope_token,
            },
            About::Sweep {
                provider: p,
                scope,
                started_at,
                finished_at,
            },
        ) => {
            if p != provider {
                return Err(Rejection::new(
                    SubjectMismatch,
                    format!("a sweep of provider {p:?} on {nats_subject}"),
                ));
            }
            if scope_token.is_some_and(|t| !token_matches(t, scope)) {
                return Err(Rejection::new(
                    SubjectMismatch,
                    format!("a sweep of scope {scope:?}, not the scope of {nats_subject}"),
                ));
            }
            if claims.subject != Some(scope) {
                return Err(Rejection::new(
                    SubjectMismatch,
                    format!(
                        "its CloudEvents subject {:?} is not its scope {scope:?}",
                        claims.subject.unwrap_or_default()
                    ),
                ));
            }
            let source_ok = match SourceUri::parse(claims.source) {
                Some(SourceUri::Collector {
                    provider: sp,
                    scope: ss,
                }) => sp == provider && ss == scope,
                Some(SourceUri::File { name }) => provider == "file" && name == scope,
                _ => false,
            };
            if !source_ok {
                return Err(Rejection::new(
                    SourceMismatch,
                    format!(
                        "source {:?} is not the source of scope {scope:?} of provider {provider}",
                        claims.source
                    ),
                ));
            }
            if started_at > finished_at {
                return Err(Rejection::new(
                    FutureTime,
                    format!("the sweep started ({started_at}) after it finished ({finished_at})"),
                ));
            }
            if finished_at > recorded_at + MAX_CLOCK_SKEW {
                return Err(Rejection::new(
                    FutureTime,
                    format!(
                        "the sweep claims to have finished at {finished_at}, after JetStream recorded it ({recorded_at})"
                    ),
                ));
            }
        }
    }
    if claims.time > recorded_at + MAX_CLOCK_SKEW {
        return Err(Rejection::new(
            FutureTime,
            format!(
                "it claims to have been observed at {}, after JetStream recorded it ({recorded_at})",
                claims.time
            ),
        ));
    }
    Ok(())
}

/// Decodes a stored message in full and admits it (see [`admit`]).
pub fn decode_stored(
    nats_subject: &str,
    recorded_at: DateTime<Utc>,
    payload: &[u8],
) -> Result<InventoryEvent, Rejection> {
    let ev = crate::decode(payload)
        .map_err(|e| Rejection::new(RejectReason::Undecodable, e.to_string()))?;
    admit(nats_subject, recorded_at, &ev.claims())?;
    Ok(ev)
}

/// Decodes what the read model keeps of a stored message and admits it (see [`admit`]).
pub fn decode_stored_summary(
    nats_subject: &str,
    recorded_at: DateTime<Utc>,
    payload: &[u8],
) -> Result<EventSummary, Rejection> {
    let ev = crate::decode_summary(payload)
        .map_err(|e| Rejection::new(RejectReason::Undecodable, e.to_string()))?;
    admit(nats_subject, recorded_at, &ev.claims())?;
    Ok(ev)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::asset::{Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone};
    use crate::event::tests::sample_asset;
    use crate::event::{encode_asset, encode_sweep, encode_tombstone, ChainLink};
    use crate::key::legacy_sweep_subject;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).unwrap()
    }

    fn asset_event(id: &str, source: &str, time: DateTime<Utc>) -> (String, Vec<u8>) {
        let out = encode_asset(
            EventType::Discovered,
            &sample_asset(id),
            source,
            time,
            &ChainLink::default(),
        )
        .unwrap();
        (out.subject, out.payload)
    }

    fn sweep(provider: &str, scope: &str, finished: DateTime<Utc>) -> SweepCompleted {
        SweepCompleted {
            collector: provider.into(),
            provider: provider.into(),
            scope: scope.into(),
            status: SweepStatus::Ok,
            started_at: finished - TimeDelta::seconds(3),
            finished_at: finished,
            duration_ms: 3000,
            counts: SweepCounts::default(),
            error: None,
            provenance: Provenance::default(),
        }
    }

    fn reason(subject: &str, payload: &[u8], recorded: DateTime<Utc>) -> Option<RejectReason> {
        let full = decode_stored(subject, recorded, payload)
            .err()
            .map(|r| r.reason);
        let summary = decode_stored_summary(subject, recorded, payload)
            .err()
            .map(|r| r.reason);
        assert_eq!(full, summary, "both decoders decide alike on {subject}");
        full
    }

    #[test]
    fn an_asset_event_is_valid_on_its_own_subject_from_its_own_writers() {
        for source in ["/collectors/aws/o-abc", "/file/assets", "/api"] {
            let (subject, payload) = asset_event("123456789012", source, at(0));
            assert_eq!(reason(&subject, &payload, at(1)), None, "{source}");
        }
        // A native id that is not subject-safe: its hashed token.
        let (subject, payload) = asset_event("a.b/c", "/collectors/aws/o-abc", at(0));
        assert!(subject.contains("._h"));
        assert_eq!(reason(&subject, &payload, at(0)), None);
    }

    #[test]
    fn an_asset_event_on_another_subject_is_refused() {
        let (_, payload) = asset_event("052718349960", "/collectors/aws/o-abc", at(0));
        for subject in [
            "inventory.asset.prometheus.endpoint.forged",
            "inventory.asset.aws.account.111111111111",
            "inventory.asset.aws.user.052718349960",
            "inventory.asset.gcp.account.052718349960",
        ] {
            assert_eq!(
                reason(subject, &payload, at(0)),
                Some(RejectReason::SubjectMismatch),
                "{subject}"
            );
        }
        // A token that looks hashed but is not this id's.
        let (_, payload) = asset_event("a.b", "/collectors/aws/o-abc", at(0));
        let other = format!(
            "inventory.asset.aws.account.{}",
            subject_token("a.c").as_str()
        );
        assert_eq!(
            reason(&other, &payload, at(0)),
            Some(RejectReason::SubjectMismatch)
        );
    }

    #[test]
    fn a_tombstone_on_another_subject_is_refused() {
        let t = Tombstone {
            id: "052718349960".into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: "x".into(),
            reason: "forged".into(),
            last_contenthash: String::new(),
            provenance: Provenance::default(),
        };
        let out =
            encode_tombstone(&t, "/collectors/prometheus/p", at(0), &ChainLink::default()).unwrap();
        assert_eq!(
            reason(
                "inventory.asset.prometheus.endpoint.forged",
                &out.payload,
                at(0)
            ),
            Some(RejectReason::SubjectMismatch)
        );
        // On its own subject, but written by another provider's collector.
        assert_eq!(
            reason(&out.subject, &out.payload, at(0)),
            Some(RejectReason::SourceMismatch)
        );
    }

    #[test]
    fn sources_outside_the_contract_are_refused() {
        for source in [
            "/collectors/gcp/o-abc",
            "/collectors/aws",
            "/collectors//x",
            "/elsewhere",
            "/file/",
            "https://evil.example/api",
        ] {
            let (subject, payload) = asset_event("123456789012", source, at(0));
            assert_eq!(
                reason(&subject, &payload, at(0)),
                Some(RejectReason::SourceMismatch),
                "{source}"
            );
        }
    }

    #[test]
    fn wrong_types_and_foreign_subjects_are_refused() {
        let (subject, payload) = asset_event("1", "/collectors/aws/o", at(0));
        assert_eq!(
            reason("inventory.sweep.aws.o", &payload, at(0)),
            Some(RejectReason::WrongType)
        );
        let s = encode_sweep(&sweep("aws", "o", at(0)), "/collectors/aws/o").unwrap();
        assert_eq!(
            reason(&subject, &s.payload, at(0)),
            Some(RejectReason::WrongType)
        );
        for foreign in [
            "inventory.other.x",
            "inventory.asset.aws.account",
            "inventory.asset.aws.account.1.extra",
            "inventory.sweep",
            "inventory.sweep.aws.o.extra",
            "elsewhere",
        ] {
            assert_eq!(
                reason(foreign, &payload, at(0)),
                Some(RejectReason::UnknownSubject),
                "{foreign}"
            );
        }
        assert_eq!(
            reason(&subject, b"not json", at(0)),
            Some(RejectReason::Undecodable)
        );
    }

    #[test]
    fn a_sweep_is_valid_only_for_its_scope_and_its_own_source() {
        let ok = encode_sweep(&sweep("aws", "o-abc", at(0)), "/collectors/aws/o-abc").unwrap();
        assert_eq!(ok.subject, "inventory.sweep.aws.o-abc");
        assert_eq!(reason(&ok.subject, &ok.payload, at(0)), None);
        // History written before scopes were in the subject.
        assert_eq!(
            reason(&legacy_sweep_subject("aws"), &ok.payload, at(0)),
            None
        );
        // Another scope's subject, another provider's subject.
        assert_eq!(
            reason("inventory.sweep.aws.o-other", &ok.payload, at(0)),
            Some(RejectReason::SubjectMismatch)
        );
        assert_eq!(
            reason("inventory.sweep.prometheus.o-abc", &ok.payload, at(0)),
            Some(RejectReason::SubjectMismatch)
        );
        // The right subject, another scope's source.
        let forged = encode_sweep(&sweep("aws", "o-abc", at(0)), "/collectors/aws/o-x").unwrap();
        assert_eq!(
            reason(&forged.subject, &forged.payload, at(0)),
            Some(RejectReason::SourceMismatch)
        );
        let api = encode_sweep(&sweep("aws", "o-abc", at(0)), "/api").unwrap();
        assert_eq!(
            reason(&api.subject, &api.payload, at(0)),
            Some(RejectReason::SourceMismatch)
        );
        // Declared assets' sweeps.
        let file = encode_sweep(&sweep("file", "assets", at(0)), "/file/assets").unwrap();
        assert_eq!(reason(&file.subject, &file.payload, at(0)), None);
    }

    #[test]
    fn times_after_the_recording_are_refused() {
        let future = Utc.with_ymd_and_hms(9999, 1, 1, 0, 0, 0).unwrap();
        let s = encode_sweep(&sweep("aws", "o", future), "/collectors/aws/o").unwrap();
        assert_eq!(
            reason(&s.subject, &s.payload, at(0)),
            Some(RejectReason::FutureTime)
        );
        let (subject, payload) = asset_event("1", "/collectors/aws/o", at(600));
        assert_eq!(
            reason(&subject, &payload, at(0)),
            Some(RejectReason::FutureTime)
        );
        // Within the allowed skew.
        let (subject, payload) = asset_event("1", "/collectors/aws/o", at(60));
        assert_eq!(reason(&subject, &payload, at(0)), None);
        let mut backwards = sweep("aws", "o", at(0));
        backwards.started_at = at(10);
        let s = encode_sweep(&backwards, "/collectors/aws/o").unwrap();
        assert_eq!(
            reason(&s.subject, &s.payload, at(20)),
            Some(RejectReason::FutureTime)
        );
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(r.as_str()), Some(r));
        }
    }
}
