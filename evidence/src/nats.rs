//! The evidence on NATS (feature `nats`): what both the CLI (`inventory checkpoint`, `verify
//! --checkpoints`, `prove`) and the API's integrity check read — the evidence stream's names, the
//! newest checkpoint record on it, the leaf hashes of the `INVENTORY` stream's stored messages
//! (read in order with an ordered consumer, hashed a few bounded chunks ahead, never the whole
//! stream in memory), and the verifier keys as they are configured.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use inventory_bus::{BusError, Start, StoredMessage};
use inventory_schemas::{STREAM_NAME, STREAM_SUBJECTS};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::leaf::{LeafError, MessageRef};
use crate::merkle::Hash;
use crate::note::{NoteError, Verifier};
use crate::records::CheckpointRecord;

/// The stream that keeps checkpoints and leaf-hash tiles (deny delete, deny purge).
pub const EVIDENCE_STREAM: &str = "INVENTORY_EVIDENCE";
/// Its subjects (outside `inventory.>`, so no collector permission reaches them).
pub const EVIDENCE_SUBJECTS: &str = "inventory-evidence.>";
/// Where checkpoint records are appended.
pub const CHECKPOINT_SUBJECT: &str = "inventory-evidence.checkpoint";
/// Messages hashed per blocking task, and tasks run ahead of the tree: at most
/// `HASH_CHUNK * (HASH_AHEAD + 1)` messages are held at once.
const HASH_CHUNK: usize = 512;
const HASH_AHEAD: usize = 3;

/// What went wrong reading the evidence.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("stream {stream}: {reason}")]
    Stream {
        stream: &'static str,
        reason: String,
    },
    #[error("message {seq}: {source}")]
    Leaf { seq: u64, source: LeafError },
    #[error("interrupted at seq {0}")]
    Interrupted(u64),
    #[error("the stream consumer ended at seq {0}")]
    Ended(u64),
    #[error("a hashing worker failed: {0}")]
    Worker(String),
}

/// What is wrong with a configured verifier key. Never echoes a file's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{key}: not a verifier key ({text}) nor a readable file ({file})")]
    Unreadable {
        key: String,
        text: NoteError,
        file: String,
    },
    #[error("file {key}: {source}")]
    File { key: String, source: NoteError },
}

/// The subject of level-0 tile `index` (leaf hashes `index*256 .. index*256+256`).
pub fn tile_subject(index: u64) -> String {
    format!("inventory-evidence.tile.0.{index}")
}

/// The default origin and key name: the log is the stream (`asset-inventory/<stream>`).
pub fn default_origin() -> String {
    format!("asset-inventory/{STREAM_NAME}")
}

/// The evidence stream's configuration: file storage, append-only, forever.
pub fn evidence_stream_config(replicas: usize) -> stream::Config {
    stream::Config {
        name: EVIDENCE_STREAM.to_owned(),
        description: Some(
            "asset-inventory: signed checkpoints of INVENTORY and their leaf-hash tiles".to_owned(),
        ),
        subjects: vec![EVIDENCE_SUBJECTS.to_owned()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        max_age: Duration::ZERO,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    }
}

/// The evidence stream, if it exists.
pub async fn open_evidence_stream(
    js: &jetstream::Context,
) -> Result<Option<stream::Stream>, StoreError> {
    use jetstream::context::GetStreamErrorKind;
    match js.get_stream(EVIDENCE_STREAM).await {
        Ok(s) => Ok(Some(s)),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(StoreError::Stream {
                stream: EVIDENCE_STREAM,
                reason: e.to_string(),
            }),
        },
    }
}

/// Verifier keys, each given as its text (`NAME+KEYID+KEY`) or as a file holding it. An empty
/// list is no key (the caller decides whether that is an error).
pub fn load_verifiers(keys: &[String]) -> Result<Vec<Verifier>, KeyError> {
    keys.iter()
        .map(|k| {
            let k = k.trim();
            match Verifier::parse(k) {
                Ok(v) => Ok(v),
                Err(text_err) => {
                    let text = std::fs::read_to_string(k).map_err(|e| KeyError::Unreadable {
                        key: k.to_owned(),
                        text: text_err,
                        file: e.to_string(),
                    })?;
                    Verifier::parse(text.trim()).map_err(|source| KeyError::File {
                        key: k.to_owned(),
                        source,
                    })
                }
            }
        })
        .collect()
}

/// A sequence missing from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub seq: u64,
}

/// The leaf hash of a stored message.
pub fn leaf_of(m: &StoredMessage) -> Result<Hash, StoreError> {
    MessageRef {
        seq: m.seq,
        subject: &m.subject,
        recorded_at_nanos: m.recorded_at_nanos,
        payload: &m.payload,
    }
    .leaf_hash()
    .map_err(|source| StoreError::Leaf { seq: m.seq, source })
}

/// Reads INVENTORY from sequence `from` to `upto` in order and hands each message's leaf hash
/// to `f` (hashing runs on blocking threads, a few bounded chunks ahead). A missing sequence
/// stops the read: `Ok(Err(gap))`.
pub async fn read_leaves(
    stream: &stream::Stream,
    from: u64,
    upto: u64,
    cancel: &CancellationToken,
    mut f: impl FnMut(u64, Hash),
) -> Result<Result<(), Gap>, StoreError> {
    let from = from.max(1);
    if upto < from {
        return Ok(Ok(()));
    }
    let (pending, messages) =
        inventory_bus::follow_from(stream, STREAM_SUBJECTS, Start::Sequence(from)).await?;
    let mut hashed = Box::pin(
        messages
            .ready_chunks(HASH_CHUNK)
            .map(|chunk| {
                tokio::task::spawn_blocking(move || {
                    chunk
                        .into_iter()
                        .map(|m| {
                            let m = m?;
                            let leaf = leaf_of(&m)?;
                            Ok((m.seq, leaf))
                        })
                        .collect::<Vec<Result<(u64, Hash), StoreError>>>()
                })
            })
            .buffered(HASH_AHEAD),
    );
    let (mut expected, mut read) = (from, 0u64);
    let mut last_log = std::time::Instant::now();
    while expected <= upto {
        if read >= pending {
            return Ok(Err(Gap { seq: expected }));
        }
        let chunk = tokio::select! {
            _ = cancel.cancelled() => return Err(StoreError::Interrupted(expected - 1)),
            c = hashed.next() => match c {
                Some(c) => c.map_err(|e| StoreError::Worker(e.to_string()))?,
                None => return Err(StoreError::Ended(expected - 1)),
            },
        };
        for item in chunk {
            let (seq, leaf) = item?;
            read += 1;
            if seq != expected {
                return Ok(Err(Gap { seq: expected }));
            }
            f(seq, leaf);
            expected += 1;
            if expected > upto {
                break;
            }
        }
        if last_log.elapsed().as_secs() >= 5 {
            last_log = std::time::Instant::now();
            info!(seq = expected - 1, upto, "hashing the stream");
        }
    }
    Ok(Ok(()))
}

/// One checkpoint record read from the evidence stream.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// Its sequence in the evidence stream.
    pub evidence_seq: u64,
    pub record: CheckpointRecord,
}

/// The newest checkpoint record on the evidence stream, if any (`Err((seq, reason))` for a
/// record that does not parse).
pub async fn newest_checkpoint(
    evidence: &stream::Stream,
) -> Result<Option<Result<StoredCheckpoint, (u64, String)>>, StoreError> {
    use jetstream::stream::DirectGetErrorKind;
    match evidence
        .direct_get_last_for_subject(CHECKPOINT_SUBJECT)
        .await
    {
        Ok(m) => Ok(Some(
            CheckpointRecord::from_json(&m.payload)
                .map(|record| StoredCheckpoint {
                    evidence_seq: m.sequence,
                    record,
                })
                .map_err(|e| (m.sequence, e.to_string())),
        )),
        Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => Ok(None),
        Err(e) => Err(StoreError::Stream {
            stream: EVIDENCE_STREAM,
            reason: format!("reading the newest checkpoint: {e}"),
        }),
    }
}
