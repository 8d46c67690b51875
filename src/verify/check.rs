//! The pure half of `inventory verify`: the order-independent work on each message
//! ([`prepare`], run on worker threads) and the checker that follows every asset's chain in stream
//! order ([`Verifier`]). No IO: `super::run` feeds it and resolves anchors.

use std::collections::HashMap;
use std::fmt;

use inventory_bus::StoredMessage;
use inventory_schemas::hash::{asset_event_id, chain_hash, data_content_hash};
use inventory_schemas::{decode, decode_asset_message, EventData, InventoryEvent};
use tracing::warn;

const ASSET_PREFIX: &str = "inventory.asset.";
const SWEEP_PREFIX: &str = "inventory.sweep.";
/// Warnings kept for the summary (all are logged).
const WARNINGS_KEPT: usize = 10;

/// What the checker knows about the newest message of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// A valid asset event of the subject.
    Event { seq: u64, chainhash: String },
    /// A message that is not a valid asset event of the subject: the chain restarts after it
    /// (the next event's `prevseq` is its sequence, its previous chain hash "").
    Unreadable { seq: u64 },
}

impl Link {
    fn seq(&self) -> u64 {
        match self {
            Self::Event { seq, .. } | Self::Unreadable { seq } => *seq,
        }
    }

    fn chainhash(&self) -> &str {
        match self {
            Self::Event { chainhash, .. } => chainhash,
            Self::Unreadable { .. } => "",
        }
    }
}

/// The state of an asset's chain before the verified window, as resolved from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// The asset has no message before the window: its first event must have `prevseq` 0.
    Genesis,
    /// The newest message of the subject before the window (fetched by sequence).
    Link(Link),
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
}

/// The pure checker: feed it every message of the window in stream order.
#[derive(Debug)]
pub struct Verifier {
    /// The first sequence of the window.
    from: u64,
    /// Whether subjects first met in the window may have history before it.
    history_before: bool,
    next_seq: u64,
    chains: HashMap<String, Link>,
    anchors: HashMap<String, Anchor>,
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
            stats: Stats {
                first_seq: from,
                last_seq: from.saturating_sub(1),
                ..Stats::default()
            },
        }
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
            Prep::Asset { .. } | Prep::Unreadable(_) => self.check_asset(prepared)?,
            other => {
                self.check_other(msg, other);
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

    fn check_other(&mut self, msg: &StoredMessage, prep: &Prep) {
        let reason = match prep {
            Prep::Sweep => {
                self.stats.sweeps += 1;
                return;
            }
            Prep::Foreign => "message outside the contract's subjects".to_owned(),
            Prep::NotSweep(ty) => format!("{ty} event on a sweep subject"),
            Prep::Undecodable(e) => format!("does not decode: {e}"),
            Prep::Asset { .. } | Prep::Unreadable(_) => return,
        };
        self.warn(msg.seq, &msg.subject, reason);
    }

    fn check_asset(&mut self, prepared: &Prepared) -> Result<Step, Broken> {
        let msg = &prepared.msg;
        let unreadable = |v: &mut Self, reason: String| -> Result<Step, Broken> {
            v.warn(
                msg.seq,
                &msg.subject,
                format!("{reason}; the subject's chain restarts after it"),
            );
            v.chains
                .insert(msg.subject.clone(), Link::Unreadable { seq: msg.seq });
            Ok(Step::Checked)
        };
        let (ev, key, data_hash) = match &prepared.prep {
            Prep::Asset { ev, key, data_hash } => (ev, key, data_hash),
            Prep::Unreadable(reason) => return unreadable(self, reason.clone()),
            _ => return Ok(Step::Checked),
        };
        let broken = |problem: String| Broken {
            seq: msg.seq,
            subject: msg.subject.clone(),
            key: Some(key.clone()),
            problem,
        };
        // classify() guarantees these three.
        let (Some(prevseq), Some(contenthash), Some(chainhash)) = (
            ev.prevseq,
            ev.contenthash.as_deref(),
            ev.chainhash.as_deref(),
        ) else {
            return unreadable(self, "asset event without its chain extensions".into());
        };

        // The previous link: known from the window, or an anchor before it.
        let prev: Option<Link> = match self.chains.get(&msg.subject) {
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
                    self.accept(msg, chainhash);
                    return Ok(Step::Checked);
                }
                Some(Anchor::Broken(problem)) => return Err(broken(problem)),
            },
        };

        let expected_prevseq = prev.as_ref().map_or(0, Link::seq);
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
        let previous_chain = prev.as_ref().map_or("", Link::chainhash);
        let expected_chain = chain_hash(previous_chain, contenthash, ev.ty);
        if chainhash != expected_chain {
            return Err(broken(format!(
                "chainhash is {chainhash}, expected {expected_chain} (from the previous chain hash {:?}, the contenthash and type {})",
                previous_chain,
                ev.ty.short()
            )));
        }
        self.accept(msg, chainhash);
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

    fn accept(&mut self, msg: &StoredMessage, chainhash: &str) {
        self.stats.asset_events += 1;
        self.stats.newest = Some((msg.seq, chainhash.to_owned()));
        self.chains.insert(
            msg.subject.clone(),
            Link::Event {
                seq: msg.seq,
                chainhash: chainhash.to_owned(),
            },
        );
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
    /// On an asset subject, but not an asset event of it: why.
    Unreadable(String),
    /// A sweep event on a sweep subject.
    Sweep,
    /// Another event type on a sweep subject.
    NotSweep(&'static str),
    /// Undecodable on a sweep subject.
    Undecodable(String),
    /// A subject outside the contract.
    Foreign,
}

/// Does the order-independent work of checking `msg`.
pub fn prepare(msg: StoredMessage) -> Prepared {
    let prep = if msg.subject.starts_with(ASSET_PREFIX) {
        match classify(&msg) {
            // The content hash of `data` exactly as received (not of the typed, decoded data).
            Ok((ev, key)) => Prep::Asset {
                data_hash: data_content_hash(&ev.data_json()),
                ev: Box::new(ev),
                key,
            },
            Err(reason) => Prep::Unreadable(reason),
        }
    } else if msg.subject.starts_with(SWEEP_PREFIX) {
        match decode(&msg.payload) {
            Ok(ev) if matches!(ev.data, EventData::Sweep(_)) => Prep::Sweep,
            Ok(ev) => Prep::NotSweep(ev.ty.short()),
            Err(e) => Prep::Undecodable(e.to_string()),
        }
    } else {
        Prep::Foreign
    };
    Prepared { msg, prep }
}

/// A message of an asset subject as the collectors classify it ([`decode_asset_message`]): an
/// asset event of that very subject (and its key), or why it is not.
pub(super) fn classify(msg: &StoredMessage) -> Result<(InventoryEvent, String), String> {
    decode_asset_message(&msg.subject, &msg.payload)
        .map(|(ev, key)| (ev, key.to_string()))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::Utc;
    use inventory_schemas::{
        encode_asset, encode_sweep, Asset, AssetStatus, ChainLink, EventType, OutgoingEvent,
        Provenance, SweepCompleted, SweepCounts, SweepStatus,
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
                recorded_at_nanos: 0,
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
            let now = Utc::now();
            let s = SweepCompleted {
                collector: "file".into(),
                provider: "aws".into(),
                scope: "t".into(),
                status: SweepStatus::Ok,
                started_at: now,
                finished_at: now,
                duration_ms: 1,
                counts: SweepCounts::default(),
                error: None,
                provenance: Provenance::default(),
            };
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
    fn an_undecodable_message_restarts_the_chain_with_a_warning() {
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
        let v = log.verify(1).unwrap();
        assert_eq!(v.stats().warning_count, 1);
        assert_eq!(v.stats().warnings[0].seq, bad);
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
        let chainhash = decode(&log.msgs[3].payload).unwrap().chainhash.unwrap();
        v.set_anchor(&subject, Anchor::Link(Link::Event { seq: 4, chainhash }));
        assert_eq!(v.check(&log.msgs[4]).unwrap(), Step::Checked);
        assert_eq!(v.check(&log.msgs[5]).unwrap(), Step::Checked);
        v.finish(6).unwrap();
        assert_eq!(v.stats().anchored, 1);
        // A wrong anchor is caught.
        let mut v = Verifier::new(5, true);
        v.set_anchor(
            &subject,
            Anchor::Link(Link::Event {
                seq: 4,
                chainhash: "other".into(),
            }),
        );
        assert!(v.check(&log.msgs[4]).is_err());
    }
}
