//! The pure half of `inventory verify`: the order-independent work on each message
//! ([`prepare`], run on worker threads) and the checker that follows every asset's chain in stream
//! order ([`Verifier`]). No IO: `super::run` feeds it and resolves anchors.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use inventory_bus::StoredMessage;
use inventory_schemas::hash::{asset_event_id, chain_hash, data_content_hash};
use inventory_schemas::trust::ContractSubject;
use inventory_schemas::{EventData, InventoryEvent, LastLink, Rejection};
use tracing::warn;

/// Warnings kept for the summary (all are logged).
const WARNINGS_KEPT: usize = 10;

/// The state of an asset's chain before the verified window, as resolved from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The asset has no message before the window: its first event must have `prevseq` 0.
    Genesis,
    /// The newest message of the subject before the window (fetched by sequence).
    Link(LastLink),
    /// The previous message is older than the stream's first sequence (expired under the
    /// stream's `max_age`): the event's own `prevseq` and `chainhash` are taken as given.
    Expired,
    /// The link cannot be right: why.
    Broken(String),
}

/// The first broken link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub seq: u64,
    pub subject: String,
    /// The asset key, when the message decoded.
    pub key: Option<String>,
    pub problem: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "seq {} (asset {key}, subject {}): {}",
                self.seq, self.subject, self.problem
            ),
            None if self.subject.is_empty() => write!(f, "seq {}: {}", self.seq, self.problem),
            None => write!(
                f,
                "seq {} (subject {}): {}",
                self.seq, self.subject, self.problem
            ),
        }
    }
}

/// A message that is tolerated but reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub seq: u64,
    pub subject: String,
    pub reason: String,
}

/// What one message asked of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Checked; go on.
    Checked,
    /// The asset's chain starts before the window: resolve its [`Anchor`], hand it to
    /// [`Verifier::set_anchor`] and check the same message again.
    NeedAnchor { subject: String, prevseq: u64 },
}

/// Counts of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub messages: u64,
    pub asset_events: u64,
    pub sweeps: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Assets whose chain was anchored on a message before the window.
    pub anchored: u64,
    pub warning_count: u64,
    /// The first warnings (all are logged).
    pub warnings: Vec<Warning>,
    /// The newest asset event checked: (seq, chainhash), an anchor to record elsewhere.
    pub newest: Option<(u64, String)>,
    /// Integrity breaches accepted explicitly (`--accept SEQ`): each one's sequence and why it
    /// was a breach, for the summary.
    pub accepted: Vec<Warning>,
}

/// The pure checker: feed it every message of the window in stream order.
#[derive(Debug)]
pub struct Verifier {
    /// The first sequence of the window.
    from: u64,
    /// Whether subjects first met in the window may have history before it.
    history_before: bool,
    next_seq: u64,
    chains: HashMap<String, LastLink>,
    anchors: HashMap<String, Anchor>,
    /// Sequences whose breach was reviewed and accepted (`--accept`).
    accept: BTreeSet<u64>,
    stats: Stats,
}

impl Verifier {
    /// A checker for the window starting at `from`; `history_before`: whether messages before
    /// `from` exist or existed (then the chain of an asset first met in the window is anchored).
    pub fn new(from: u64, history_before: bool) -> Self {
        Self {
            from,
            history_before,
            next_seq: from,
            chains: HashMap::new(),
            anchors: HashMap::new(),
            accept: BTreeSet::new(),
            stats: Stats {
                first_seq: from,
                last_seq: from.saturating_sub(1),
                ..Stats::default()
            },
        }
    }

    /// Accepts the integrity breaches at these sequences (reviewed incidents): each is reported
    /// in the summary instead of failing the verification.
    pub fn with_accepted(mut self, seqs: impl IntoIterator<Item = u64>) -> Self {
        self.accept.extend(seqs);
        self
    }

    /// Accepted sequences that were not breaches (a typo, or a stream that changed since the
    /// review): the caller refuses them, so an acceptance never outlives its incident unnoticed.
    pub fn unused_accepts(&self) -> impl Iterator<Item = u64> + '_ {
        let used: BTreeSet<u64> = self.stats.accepted.iter().map(|w| w.seq).collect();
        self.accept
            .iter()
            .copied()
            .filter(move |s| *s >= self.from && *s <= self.stats.last_seq && !used.contains(s))
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Assets (asset subjects) met.
    pub fn assets(&self) -> usize {
        self.chains.len()
    }

    /// Records a tolerated problem (logged, counted, the first ones kept).
    pub fn warn(&mut self, seq: u64, subject: &str, reason: String) {
        warn!(seq, subject, reason = %reason, "verify warning");
        self.stats.warning_count += 1;
        if self.stats.warnings.len() < WARNINGS_KEPT {
            self.stats.warnings.push(Warning {
                seq,
                subject: subject.to_owned(),
                reason,
            });
        }
    }

    /// Supplies the anchor a [`Step::NeedAnchor`] asked for.
    pub fn set_anchor(&mut self, subject: &str, anchor: Anchor) {
        self.anchors.insert(subject.to_owned(), anchor);
    }

    /// Checks the next message of the window.
    #[cfg(test)]
    pub fn check(&mut self, msg: &StoredMessage) -> Result<Step, Broken> {
        self.check_prepared(&prepare(msg.clone()))
    }

    /// Checks the next message of the window, prepared by [`prepare`] (possibly on another thread).
    pub fn check_prepared(&mut self, prepared: &Prepared) -> Result<Step, Broken> {
        let msg = &prepared.msg;
        if msg.seq < self.next_seq {
            // Redelivered (a consumer reset): already checked.
            return Ok(Step::Checked);
        }
        if msg.seq > self.next_seq {
            let missing = if msg.seq - self.next_seq == 1 {
                format!("message {} is missing", self.next_seq)
            } else {
                format!("messages {}..={} are missing", self.next_seq, msg.seq - 1)
            };
            return Err(Broken {
                seq: self.next_seq,
                subject: String::new(),
                key: None,
                problem: format!("{missing} from the stream (removed)"),
            });
        }
        let step = match &prepared.prep {
            Prep::Asset { .. } => self.check_asset(prepared)?,
            Prep::Sweep => {
                self.stats.sweeps += 1;
                Step::Checked
            }
            Prep::Rejected(rejection) => {
                self.check_rejected(msg, rejection)?;
                Step::Checked
            }
        };
        if step == Step::Checked {
            self.next_seq = msg.seq + 1;
            self.stats.messages += 1;
            self.stats.last_seq = msg.seq;
        }
        Ok(step)
    }

    /// After the last message: the window must reach `tip` (the stream's last sequence).
    pub fn finish(&self, tip: u64) -> Result<(), Broken> {
        if self.next_seq <= tip {
            return Err(Broken {
                seq: self.next_seq,
                subject: String::new(),
                key: None,
                problem: format!(
                    "messages {}..={tip} are missing from the stream (removed)",
                    self.next_seq
                ),
            });
        }
        Ok(())
    }

    /// A message that is not a valid event of its subject (the trust rule): an integrity breach,
    /// unless it was reviewed and accepted. An accepted one on an asset subject restarts that
    /// subject's chain, as collectors restart it (the next event links to it with "").
    fn check_rejected(&mut self, msg: &StoredMessage, rejection: &Rejection) -> Result<(), Broken> {
        if !self.accept.contains(&msg.seq) {
            return Err(Broken {
                seq: msg.seq,
                subject: msg.subject.clone(),
                key: None,
                problem: format!(
                    "not a valid event of its subject ({}): {}",
                    rejection.reason, rejection.detail
                ),
            });
        }
        let reason = format!("accepted {}: {}", rejection.reason, rejection.detail);
        warn!(seq = msg.seq, subject = %msg.subject, reason = %reason, "accepted integrity breach");
        self.stats.accepted.push(Warning {
            seq: msg.seq,
            subject: msg.subject.clone(),
            reason,
        });
        if matches!(
            ContractSubject::parse(&msg.subject),
            Some(ContractSubject::Asset { .. })
        ) {
            self.chains
                .insert(msg.subject.clone(), LastLink::Unreadable { seq: msg.seq });
        }
        Ok(())
    }

    fn check_asset(&mut self, prepared: &Prepared) -> Result<Step, Broken> {
        let msg = &prepared.msg;
        let Prep::Asset { ev, key, data_hash } = &prepared.prep else {
            return Ok(Step::Checked);
        };
        let broken = |problem: String| Broken {
            seq: msg.seq,
            subject: msg.subject.clone(),
            key: Some(key.clone()),
            problem,
        };
        // `decode` requires these three on asset events.
        let (Some(prevseq), Some(contenthash), Some(chainhash)) = (
            ev.prevseq,
            ev.contenthash.as_deref(),
            ev.chainhash.as_deref(),
        ) else {
            return Err(broken("asset event without its chain extensions".into()));
        };

        // The previous link: known from the window, or an anchor before it.
        let prev: Option<LastLink> = match self.chains.get(&msg.subject) {
            Some(l) => Some(l.clone()),
            None if !self.history_before && prevseq == 0 => None,
            None if prevseq >= self.from => {
                return Err(broken(format!(
                    "prevseq is {prevseq}, but the asset has no event at {prevseq} (this is its first event from {})",
                    self.from
                )))
            }
            None if !self.history_before => {
                return Err(broken(format!(
                    "prevseq is {prevseq}, but the asset has no earlier event (expected 0)"
                )))
            }
            None => match self.anchors.remove(&msg.subject) {
                None => {
                    return Ok(Step::NeedAnchor {
                        subject: msg.subject.clone(),
                        prevseq,
                    })
                }
                Some(Anchor::Genesis) => None,
                Some(Anchor::Link(l)) => {
                    self.stats.anchored += 1;
                    Some(l)
                }
                Some(Anchor::Expired) => {
                    // Trusted: the link is this event's own claim.
                    self.stats.anchored += 1;
                    self.warn(
                        msg.seq,
                        &msg.subject,
                        format!("previous event {prevseq} expired from the stream; chain taken as given from here"),
                    );
                    self.check_content(msg, key, ev, data_hash, prevseq, contenthash)?;
                    self.chain_ok(msg, ev, chainhash);
                    return Ok(Step::Checked);
                }
                Some(Anchor::Broken(problem)) => return Err(broken(problem)),
            },
        };

        let expected_prevseq = prev.as_ref().map_or(0, LastLink::seq);
        if prevseq != expected_prevseq {
            let what = if expected_prevseq == 0 {
                "the asset has no earlier event".to_owned()
            } else {
                format!("the asset's previous event is at {expected_prevseq}")
            };
            return Err(broken(format!(
                "prevseq is {prevseq}, expected {expected_prevseq} ({what})"
            )));
        }
        self.check_content(msg, key, ev, data_hash, prevseq, contenthash)?;
        let previous_chain = prev.as_ref().map_or("", LastLink::chainhash);
        let expected_chain = chain_hash(previous_chain, contenthash, ev.ty);
        if chainhash != expected_chain {
            return Err(broken(format!(
                "chainhash is {chainhash}, expected {expected_chain} (from the previous chain hash {:?}, the contenthash and type {})",
                previous_chain,
                ev.ty.short()
            )));
        }
        self.chain_ok(msg, ev, chainhash);
        Ok(Step::Checked)
    }

    /// Checks what an event says about itself: content hash of its data, deterministic id.
    fn check_content(
        &mut self,
        msg: &StoredMessage,
        key: &str,
        ev: &InventoryEvent,
        data_hash: &str,
        prevseq: u64,
        contenthash: &str,
    ) -> Result<(), Broken> {
        let broken = |problem: String| Broken {
            seq: msg.seq,
            subject: msg.subject.clone(),
            key: Some(key.to_owned()),
            problem,
        };
        if data_hash != contenthash {
            return Err(broken(format!(
                "contenthash is {contenthash}, but the data hashes to {data_hash} (data altered)"
            )));
        }
        let id = asset_event_id(key, prevseq, contenthash);
        if ev.id != id {
            return Err(broken(format!(
                "id is {}, expected {id} (hash of key, prevseq and contenthash)",
                ev.id
            )));
        }
        Ok(())
    }

    fn chain_ok(&mut self, msg: &StoredMessage, ev: &InventoryEvent, chainhash: &str) {
        self.stats.asset_events += 1;
        self.stats.newest = Some((msg.seq, chainhash.to_owned()));
        self.chains
            .insert(msg.subject.clone(), LastLink::of(msg.seq, Ok(ev)));
    }
}

/// A message with the order-independent work done (decoding, classification, hashing the data),
/// so that it can be done on other threads while the chains are checked in stream order.
#[derive(Debug)]
pub struct Prepared {
    pub msg: StoredMessage,
    prep: Prep,
}

#[derive(Debug)]
enum Prep {
    /// An asset event of its own subject, its key, and the content hash of its `data` as received.
    Asset {
        ev: Box<InventoryEvent>,
        key: String,
        data_hash: String,
    },
    /// A sweep event of its own subject.
    Sweep,
    /// Not a valid event of its subject (the trust rule): why.
    Rejected(Rejection),
}

/// Does the order-independent work of checking `msg`: the trust rule (as every reader applies
/// it), and the content hash of the data as received.
pub fn prepare(msg: StoredMessage) -> Prepared {
    let prep = match msg.decode() {
        Ok(ev) => match &ev.data {
            EventData::Sweep(_) => Prep::Sweep,
            EventData::Asset(_) | EventData::Tombstone(_) => Prep::Asset {
                // The content hash of `data` exactly as received (not of the typed data).
                data_hash: data_content_hash(&ev.data_json()),
                key: ev.subject.clone().unwrap_or_default(),
                ev: Box::new(ev),
            },
        },
        Err(rejection) => Prep::Rejected(rejection),
    };
    Prepared { msg, prep }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::Utc;
    use inventory_schemas::{
        decode, encode_asset, encode_sweep, Asset, AssetStatus, ChainLink, EventType,
        OutgoingEvent, Provenance, SweepCompleted, SweepCounts, SweepStatus,
    };

    fn asset(id: &str, name: &str) -> Asset {
        Asset {
            id: id.into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: name.into(),
            status: AssetStatus::Active,
            org_path: vec![],
            region_residency: vec![],
            url: None,
            auth_mode: None,
            labels: Default::default(),
            raw: serde_json::json!({}),
            provenance: Provenance::default(),
        }
    }

    /// A stream under construction: events linked as collectors link them.
    #[derive(Default)]
    struct Log {
        msgs: Vec<StoredMessage>,
        last: HashMap<String, ChainLink>,
    }

    impl Log {
        fn push_raw(&mut self, subject: &str, payload: Vec<u8>) -> u64 {
            let seq = self.msgs.len() as u64 + 1;
            self.msgs.push(StoredMessage {
                seq,
                subject: subject.into(),
                // Recorded now: events observed "now" are not from the future.
                recorded_at_nanos: Utc::now().timestamp_nanos_opt().unwrap().into(),
                payload: payload.into(),
            });
            seq
        }

        fn push(&mut self, ev: OutgoingEvent) -> u64 {
            let seq = self.push_raw(&ev.subject.clone(), ev.payload.clone());
            self.last.insert(
                ev.subject,
                ChainLink {
                    prevseq: seq,
                    chainhash: ev.chainhash.unwrap_or_default(),
                },
            );
            seq
        }

        fn upsert(&mut self, id: &str, name: &str) -> u64 {
            let a = asset(id, name);
            let subject = a.key().unwrap().subject();
            let (ty, link) = match self.last.get(&subject) {
                Some(l) => (EventType::Changed, l.clone()),
                None => (EventType::Discovered, ChainLink::default()),
            };
            self.push(encode_asset(ty, &a, "/file/t", Utc::now(), &link).unwrap())
        }

        fn sweep(&mut self) -> u64 {
            let s = sweep_of("t");
            let ev = encode_sweep(&s, "/file/t").unwrap();
            self.push_raw(&ev.subject.clone(), ev.payload)
        }

        fn verify(&self, from: u64) -> Result<Verifier, Broken> {
            let mut v = Verifier::new(from, from > 1);
            for m in self.msgs.iter().filter(|m| m.seq >= from) {
                assert_eq!(v.check(m)?, Step::Checked, "seq {}", m.seq);
            }
            v.finish(self.msgs.len() as u64)?;
            Ok(v)
        }
    }

    fn clean() -> Log {
        let mut log = Log::default();
        log.upsert("1", "a");
        log.upsert("2", "b");
        log.sweep();
        log.upsert("1", "a2");
        log.upsert("1", "a3");
        log.sweep();
        log
    }

    #[test]
    fn a_clean_stream_verifies() {
        let v = clean().verify(1).unwrap();
        let s = v.stats();
        assert_eq!((s.messages, s.asset_events, s.sweeps), (6, 4, 2));
        assert_eq!(v.assets(), 2);
        assert_eq!(s.warning_count, 0);
    }

    #[test]
    fn a_message_invalid_for_its_subject_is_a_breach_unless_accepted() {
        let mut log = clean();
        // A valid event of asset 1, stored on asset 2's subject.
        let forged = encode_asset(
            EventType::Changed,
            &asset("1", "owned"),
            "/file/t",
            Utc::now(),
            &log.last[&asset("1", "x").key().unwrap().subject()].clone(),
        )
        .unwrap();
        let subject2 = asset("2", "b").key().unwrap().subject();
        let bad = log.push_raw(&subject2, forged.payload);
        let err = log.verify(1).unwrap_err();
        assert_eq!(err.seq, bad);
        assert!(err.problem.contains("subject_mismatch"), "{err}");
        // A sweep of another provider on the file sweep subject, and garbage on a sweep subject.
        for payload in [
            encode_sweep(
                &SweepCompleted {
                    provider: "aws".into(),
                    ..sweep_of("t")
                },
                "/collectors/aws/t",
            )
            .unwrap()
            .payload,
            b"{}".to_vec(),
        ] {
            let mut log = clean();
            let seq = log.push_raw("inventory.sweep.file.t", payload);
            let err = log.verify(1).unwrap_err();
            assert_eq!(err.seq, seq, "{err}");
        }
        // Accepted after review: listed, and the subject's chain restarts after it.
        let a = asset("2", "b");
        log.last.insert(
            subject2.clone(),
            ChainLink {
                prevseq: bad,
                chainhash: String::new(),
            },
        );
        let link = log.last[&subject2].clone();
        log.push(encode_asset(EventType::Changed, &a, "/file/t", Utc::now(), &link).unwrap());
        let mut v = Verifier::new(1, false).with_accepted([bad, 99]);
        for m in &log.msgs {
            assert_eq!(v.check(m).unwrap(), Step::Checked);
        }
        assert_eq!(v.stats().accepted.len(), 1);
        assert_eq!(v.stats().accepted[0].seq, bad);
        assert_eq!(v.unused_accepts().collect::<Vec<_>>(), Vec::<u64>::new());
        let mut v = Verifier::new(1, false).with_accepted([bad, 3]);
        for m in &log.msgs {
            v.check(m).unwrap();
        }
        assert_eq!(v.unused_accepts().collect::<Vec<_>>(), vec![3]);
    }

    fn sweep_of(scope: &str) -> SweepCompleted {
        let now = Utc::now();
        SweepCompleted {
            collector: "file".into(),
            provider: "file".into(),
            scope: scope.into(),
            status: SweepStatus::Ok,
            started_at: now,
            finished_at: now,
            duration_ms: 1,
            counts: SweepCounts::default(),
            error: None,
            provenance: Provenance::default(),
        }
    }

    #[test]
    fn an_accepted_undecodable_message_restarts_the_chain() {
        let mut log = clean();
        let subject = asset("2", "b").key().unwrap().subject();
        let bad = log.push_raw(&subject, b"not a cloudevent".to_vec());
        // The collector links its next event to the unreadable message with "" as the chain.
        log.last.insert(
            subject,
            ChainLink {
                prevseq: bad,
                chainhash: String::new(),
            },
        );
        let a = asset("2", "b");
        let link = log.last[&a.key().unwrap().subject()].clone();
        log.push(encode_asset(EventType::Discovered, &a, "/file/t", Utc::now(), &link).unwrap());
        let err = log.verify(1).unwrap_err();
        assert_eq!(err.seq, bad);
        assert!(err.problem.contains("undecodable"), "{err}");
        let mut v = Verifier::new(1, false).with_accepted([bad]);
        for m in &log.msgs {
            assert_eq!(v.check(m).unwrap(), Step::Checked);
        }
        v.finish(log.msgs.len() as u64).unwrap();
        assert_eq!(v.stats().accepted[0].seq, bad);
        assert_eq!(v.stats().asset_events, 5);
    }

    #[test]
    fn a_forged_chainhash_is_named() {
        let mut log = clean();
        let a = asset("2", "b-changed");
        let mut link = log.last[&a.key().unwrap().subject()].clone();
        link.chainhash = "forged".into();
        let seq =
            log.push(encode_asset(EventType::Changed, &a, "/file/t", Utc::now(), &link).unwrap());
        let err = log.verify(1).unwrap_err();
        assert_eq!(err.seq, seq);
        assert_eq!(err.key.as_deref(), Some("aws/account/2"));
        assert!(err.problem.contains("chainhash"), "{err}");
    }

    #[test]
    fn a_prevseq_that_skips_is_named() {
        let mut log = clean();
        // Asset 1's events are at 1, 4, 5: link the next to 4, not 5.
        let a = asset("1", "a4");
        let old_chain = decode(&log.msgs[3].payload).unwrap().chainhash.unwrap();
        let link = ChainLink {
            prevseq: 4,
            chainhash: old_chain,
        };
        let seq =
            log.push(encode_asset(EventType::Changed, &a, "/file/t", Utc::now(), &link).unwrap());
        let err = log.verify(1).unwrap_err();
        assert_eq!(err.seq, seq);
        assert!(err.problem.contains("prevseq is 4, expected 5"), "{err}");
        assert!(err.to_string().contains("aws/account/1"), "{err}");
    }

    #[test]
    fn altered_data_is_named() {
        let mut log = clean();
        let mut ev: serde_json::Value = serde_json::from_slice(&log.msgs[3].payload).unwrap();
        ev["data"]["name"] = "tampered".into();
        log.msgs[3].payload = serde_json::to_vec(&ev).unwrap().into();
        let err = log.verify(1).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(err.problem.contains("contenthash"), "{err}");
    }

    #[test]
    fn a_removed_message_is_named() {
        let mut log = clean();
        log.msgs.remove(2);
        let err = log.verify(1).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.problem.contains("missing"), "{err}");
        let mut log = clean();
        log.msgs.pop();
        let mut v = Verifier::new(1, false);
        for m in &log.msgs {
            v.check(m).unwrap();
        }
        assert_eq!(v.finish(6).unwrap_err().seq, 6);
    }

    #[test]
    fn a_window_anchors_chains_that_start_before_it() {
        let log = clean();
        let mut v = Verifier::new(5, true);
        // seq 5: asset 1 links to 4, before the window.
        let step = v.check(&log.msgs[4]).unwrap();
        let subject = log.msgs[4].subject.clone();
        assert_eq!(
            step,
            Step::NeedAnchor {
                subject: subject.clone(),
                prevseq: 4
            }
        );
        let anchor = LastLink::of(4, Ok(&decode(&log.msgs[3].payload).unwrap()));
        v.set_anchor(&subject, Anchor::Link(anchor.clone()));
        assert_eq!(v.check(&log.msgs[4]).unwrap(), Step::Checked);
        assert_eq!(v.check(&log.msgs[5]).unwrap(), Step::Checked);
        v.finish(6).unwrap();
        assert_eq!(v.stats().anchored, 1);
        // A wrong anchor is caught.
        let mut v = Verifier::new(5, true);
        let LastLink::Event(mut other) = anchor else {
            panic!("{anchor:?}")
        };
        other.chainhash = "other".into();
        v.set_anchor(&subject, Anchor::Link(LastLink::Event(other)));
        assert!(v.check(&log.msgs[4]).is_err());
    }
}
