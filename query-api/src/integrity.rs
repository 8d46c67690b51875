//! The stream's signed checkpoints, checked in the background (docs/audit.md §4, docs/ui.md).
//!
//! [`run`] polls the evidence stream for its newest checkpoint record. When a newer one appears,
//! it checks the signature against the configured verifier keys and recomputes the RFC 6962 root
//! over the `INVENTORY` stream's stored messages `1..=size` *incrementally*: a
//! [`CompactTree`] of what a previous checkpoint already verified is kept, and only the messages
//! after it are read (an ordered consumer, hashed in bounded chunks) and pushed. A checkpoint
//! that signs fewer messages than were verified, that is signed by no configured key, or whose
//! root differs, fails with the first reason. The outcome is published on a `watch` channel that
//! `GET /api/v1/integrity` and the console read ([`Integrity`]).
//!
//! Without a verifier key nothing is claimed verified: the state is `no_key`.

use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream as JsStream};
use chrono::{DateTime, Utc};
use inventory_evidence::checkpoint::{parse_unverified, Checkpoint};
use inventory_evidence::nats::{
    newest_checkpoint, open_evidence_stream, read_leaves, StoreError, EVIDENCE_STREAM,
};
use inventory_evidence::{note, CompactTree, Hash, Verifier};
use poem_openapi::{Enum, Object};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Default interval between two looks at the evidence stream (`INVENTORY_INTEGRITY_EVERY`).
pub const DEFAULT_EVERY: Duration = Duration::from_secs(30);

/// The reason given while no verifier key is configured.
pub const NO_KEY: &str = "no verifier key is configured (INVENTORY_VERIFIER_KEY or --verifier-key): checkpoint signatures and roots are not checked";

/// What the integrity check is given.
#[derive(Debug, Clone)]
pub struct IntegrityConfig {
    /// The checkpoints' verifier keys (`INVENTORY_VERIFIER_KEY`); none: nothing is verified.
    pub keys: Vec<Verifier>,
    /// Interval between two looks at the evidence stream for a newer checkpoint.
    pub every: Duration,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            every: DEFAULT_EVERY,
        }
    }
}

/// The outcome of the newest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum IntegrityState {
    /// No verifier key is configured (`INVENTORY_VERIFIER_KEY`): nothing is verified.
    NoKey,
    /// The first check has not finished yet.
    Pending,
    /// The evidence stream holds no checkpoint yet.
    NoCheckpoint,
    /// The newest checkpoint is validly signed by a configured key and the stream's messages
    /// `1..=size` hash to the root it signed.
    Verified,
    /// The newest checkpoint did not verify; `reason` says why.
    Failed,
}

/// A checkpoint as read from the evidence stream.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct CheckpointDoc {
    /// Its sequence on the `INVENTORY_EVIDENCE` stream.
    pub evidence_seq: u64,
    /// The log it signs (`asset-inventory/INVENTORY`).
    pub origin: String,
    /// How many messages of the stream it signs (sequences `1..=size`).
    pub size: u64,
    /// The Merkle root it signs (hex).
    pub root: String,
    /// The configured keys whose signature on it verified (`NAME+KEYID`, key ID in hex).
    pub signers: Vec<String>,
}

/// The stream's signed checkpoints as this server last checked them.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct Integrity {
    pub state: IntegrityState,
    /// Why the newest checkpoint did not verify (`failed`), or what is missing.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// The configured verifier keys (`NAME+KEYID`).
    pub keys: Vec<String>,
    /// The newest checkpoint on the evidence stream (whatever its outcome).
    #[oai(skip_serializing_if_is_none)]
    pub checkpoint: Option<CheckpointDoc>,
    /// The newest checkpoint that verified: stream sequences up to its `size` are covered.
    #[oai(skip_serializing_if_is_none)]
    pub verified: Option<CheckpointDoc>,
    /// When `verified` was verified.
    #[oai(skip_serializing_if_is_none)]
    pub verified_at: Option<DateTime<Utc>>,
    /// When the evidence stream was last looked at.
    #[oai(skip_serializing_if_is_none)]
    pub checked_at: Option<DateTime<Utc>>,
    /// The last error reading the streams (the check is retried at the next interval).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

impl Integrity {
    /// The state before any check, over `keys`.
    pub fn initial(keys: &[Verifier]) -> Self {
        Self {
            state: if keys.is_empty() {
                IntegrityState::NoKey
            } else {
                IntegrityState::Pending
            },
            reason: keys.is_empty().then(|| NO_KEY.to_owned()),
            keys: keys.iter().map(key_name).collect(),
            checkpoint: None,
            verified: None,
            verified_at: None,
            checked_at: None,
            error: None,
        }
    }

    /// Whether stream sequence `seq` is covered by the newest verified checkpoint.
    pub fn covers(&self, seq: u64) -> bool {
        self.verified.as_ref().is_some_and(|v| seq <= v.size)
    }
}

fn key_name(k: &Verifier) -> String {
    format!("{}+{:08x}", k.name(), k.key_id())
}

fn doc(evidence_seq: u64, cp: &Checkpoint, signers: Vec<String>) -> CheckpointDoc {
    CheckpointDoc {
        evidence_seq,
        origin: cp.origin.clone(),
        size: cp.size,
        root: hex::encode(cp.root),
        signers,
    }
}

/// The incremental checker: `tree` holds the leaves of messages `1..=tree.size()`, which the
/// checkpoint `verified` signed.
pub struct Checker {
    js: jetstream::Context,
    inventory: JsStream,
    keys: Vec<Verifier>,
    tree: CompactTree,
    /// The evidence sequence of the newest checkpoint record looked at.
    seen: Option<u64>,
    /// When the INVENTORY stream was created: another value means it was replaced (the tree is
    /// dropped and rebuilt from its first message).
    created: Option<i128>,
    status: watch::Sender<Integrity>,
}

impl Checker {
    /// A checker of `inventory` against the checkpoints on `js`'s evidence stream.
    pub fn new(
        js: jetstream::Context,
        inventory: JsStream,
        keys: Vec<Verifier>,
        status: watch::Sender<Integrity>,
    ) -> Self {
        status.send_replace(Integrity::initial(&keys));
        Self {
            js,
            inventory,
            keys,
            tree: CompactTree::new(),
            seen: None,
            created: None,
            status,
        }
    }

    /// How many messages are verified (the size of the newest verified checkpoint).
    pub fn verified_size(&self) -> u64 {
        self.tree.size()
    }

    fn set(&self, f: impl FnOnce(&mut Integrity)) {
        self.status.send_modify(|s| {
            s.checked_at = Some(Utc::now());
            s.error = None;
            f(s);
        });
    }

    fn fail(&self, checkpoint: Option<CheckpointDoc>, reason: String) {
        warn!(reason = %reason, "checkpoint not verified");
        self.set(|s| {
            s.state = IntegrityState::Failed;
            s.reason = Some(reason);
            s.checkpoint = checkpoint;
        });
    }

    /// One look at the evidence stream; checks its newest checkpoint if it is new. Returns how
    /// many messages of the stream were read.
    pub async fn check(&mut self, cancel: &CancellationToken) -> Result<u64, StoreError> {
        let info = self
            .inventory
            .info()
            .await
            .map_err(|e| StoreError::Stream {
                stream: inventory_schemas::STREAM_NAME,
                reason: e.to_string(),
            })?
            .clone();
        let created = info.created.unix_timestamp_nanos();
        if self.created.is_some_and(|c| c != created) {
            info!("the INVENTORY stream was replaced; verifying it from its first message");
            self.tree = CompactTree::new();
            self.seen = None;
            self.status.send_modify(|s| {
                s.verified = None;
                s.verified_at = None;
            });
        }
        self.created = Some(created);
        let tip = info.state.last_sequence;

        let newest = match open_evidence_stream(&self.js).await? {
            Some(evidence) => newest_checkpoint(&evidence).await?,
            None => None,
        };
        let stored = match newest {
            None => {
                let no_key = self.keys.is_empty();
                self.set(|s| {
                    if no_key {
                        s.state = IntegrityState::NoKey;
                        s.reason = Some(NO_KEY.to_owned());
                    } else {
                        s.state = IntegrityState::NoCheckpoint;
                        s.reason = Some(format!(
                            "{EVIDENCE_STREAM} holds no checkpoint yet (`inventory checkpoint`; `inventory up` signs one periodically)"
                        ));
                    }
                    s.checkpoint = None;
                });
                return Ok(0);
            }
            Some(Err((seq, reason))) => {
                if self.seen != Some(seq) {
                    self.seen = Some(seq);
                    self.fail(
                        None,
                        format!("the newest record on {EVIDENCE_STREAM} (seq {seq}) is not a checkpoint record: {reason}"),
                    );
                }
                return Ok(0);
            }
            Some(Ok(stored)) => stored,
        };
        if self.seen == Some(stored.evidence_seq) {
            self.set(|_| {});
            return Ok(0);
        }
        self.seen = Some(stored.evidence_seq);
        let at = stored.evidence_seq;
        let note_text = &stored.record.note;

        if self.keys.is_empty() {
            let seen = parse_unverified(note_text)
                .ok()
                .map(|cp| doc(at, &cp, vec![]));
            self.set(|s| {
                s.state = IntegrityState::NoKey;
                s.reason = Some(NO_KEY.to_owned());
                s.checkpoint = seen;
            });
            return Ok(0);
        }
        let unverified = parse_unverified(note_text)
            .ok()
            .map(|cp| doc(at, &cp, vec![]));
        let opened = match note::open(note_text.as_bytes(), &self.keys) {
            Ok(n) => n,
            Err(e) => {
                self.fail(
                    unverified,
                    format!("the checkpoint at {EVIDENCE_STREAM} seq {at} is not validly signed by a configured key ({}): {e}", self.status.borrow().keys.join(", ")),
                );
                return Ok(0);
            }
        };
        let cp = match Checkpoint::parse(&opened.text) {
            Ok(cp) => cp,
            Err(e) => {
                self.fail(
                    unverified,
                    format!("the record at {EVIDENCE_STREAM} seq {at} is not a checkpoint: {e}"),
                );
                return Ok(0);
            }
        };
        let signers: Vec<String> = opened
            .verified
            .iter()
            .map(|l| format!("{}+{:08x}", l.name, l.key_id))
            .collect();
        let this = doc(at, &cp, signers);
        let verified_origin = self
            .status
            .borrow()
            .verified
            .as_ref()
            .map(|v| v.origin.clone());
        if let Some(origin) = verified_origin.filter(|o| *o != cp.origin) {
            self.fail(
                Some(this),
                format!("the checkpoint at {EVIDENCE_STREAM} seq {at} is of log {:?}, the verified one of {origin:?}", cp.origin),
            );
            return Ok(0);
        }
        let done = self.tree.size();
        if cp.size < done {
            self.fail(
                Some(this),
                format!(
                    "the checkpoint at {EVIDENCE_STREAM} seq {at} signs {} messages, fewer than the {done} already verified: a log never shrinks",
                    cp.size
                ),
            );
            return Ok(0);
        }
        if cp.size > tip {
            self.fail(
                Some(this),
                format!(
                    "seq {}: the checkpoint at {EVIDENCE_STREAM} seq {at} signs {} messages, the stream ends at {tip} (messages removed, or the stream replaced)",
                    tip + 1,
                    cp.size
                ),
            );
            return Ok(0);
        }
        // Only the messages after the verified ones are read.
        let mut next = self.tree.clone();
        let read = match read_leaves(&self.inventory, done + 1, cp.size, cancel, |_, leaf| {
            next.push(leaf)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => {
                // Looked at again at the next interval.
                self.seen = None;
                return Err(e);
            }
        };
        let count = cp.size - done;
        if let Err(gap) = read {
            // Not verified: the next checkpoint is checked again from `done`.
            self.fail(
                Some(this),
                format!(
                    "seq {}: message {} is missing from the stream (signed by the checkpoint at {EVIDENCE_STREAM} seq {at}, size {})",
                    gap.seq, gap.seq, cp.size
                ),
            );
            return Ok(count);
        }
        let root: Hash = next.root();
        if root != cp.root {
            let range = if done > 0 {
                format!(
                    "; messages 1..={done} still match the checkpoint verified before, so the first differing message lies in seq {}..={}",
                    done + 1,
                    cp.size
                )
            } else {
                String::new()
            };
            self.fail(
                Some(this),
                format!(
                    "root mismatch: the stream differs from what the checkpoint at {EVIDENCE_STREAM} seq {at} signed: messages 1..={} hash to root {}, the checkpoint signed {}{range}",
                    cp.size,
                    short(&root),
                    short(&cp.root)
                ),
            );
            return Ok(count);
        }
        self.tree = next;
        info!(
            evidence_seq = at,
            size = cp.size,
            read = count,
            "checkpoint verified"
        );
        self.set(|s| {
            s.state = IntegrityState::Verified;
            s.reason = None;
            s.checkpoint = Some(this.clone());
            s.verified = Some(this);
            s.verified_at = Some(Utc::now());
        });
        Ok(count)
    }
}

fn short(h: &Hash) -> String {
    hex::encode(&h[..8])
}

/// Checks the newest checkpoint every `every` until `cancel`; a read error is reported on the
/// status (`error`) and retried at the next interval.
pub async fn run(mut checker: Checker, every: Duration, cancel: CancellationToken) {
    loop {
        match checker.check(&cancel).await {
            Ok(read) => debug!(read, "integrity check done"),
            Err(_) if cancel.is_cancelled() => break,
            Err(e) => {
                warn!(error = %e, "integrity check could not read the streams; retrying");
                checker.status.send_modify(|s| {
                    s.checked_at = Some(Utc::now());
                    s.error = Some(e.to_string());
                });
            }
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    debug!("integrity check stopped");
}
