//! Signed checkpoints of the whole `INVENTORY` stream (DESIGN §5, docs/audit.md §4): the IO
//! around the pure `inventory-evidence` crate.
//!
//! - `inventory keygen` ([`keygen`]) makes an Ed25519 key pair in the C2SP signed-note format;
//! - `inventory checkpoint` ([`checkpoint`]) hashes every message into an RFC 6962 tree, checks the
//!   newest checkpoint still matches it, signs a new one and appends it (with the leaf hashes, as
//!   tiles) to the `INVENTORY_EVIDENCE` stream; `inventory up` runs it periodically;
//! - `inventory verify --checkpoints` ([`verify`]) proves the stream holds what each checkpoint
//!   signed, naming the first differing sequence;
//! - `inventory prove` and `inventory verify-proof` ([`prove`]) hand out and check inclusion and
//!   consistency proofs offline.
//!
//! The signing key is read from a file and never written to an event, a log line, an error or a
//! metric.

pub mod checkpoint;
pub mod keygen;
pub mod prove;
pub mod verify;

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use inventory_bus::{Start, StoredMessage};
use inventory_evidence::records::{self, decode_hashes};
use inventory_evidence::{Hash, MessageRef, Signer, Verifier, TILE_WIDTH};
use inventory_schemas::{STREAM_NAME, STREAM_SUBJECTS};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The stream that keeps checkpoints and leaf-hash tiles (deny delete, deny purge).
pub const EVIDENCE_STREAM: &str = "INVENTORY_EVIDENCE";
/// Its subjects (outside `inventory.>`, so no collector permission reaches them).
pub const EVIDENCE_SUBJECTS: &str = "inventory-evidence.>";
/// Where checkpoint records are appended.
pub const CHECKPOINT_SUBJECT: &str = "inventory-evidence.checkpoint";
/// Messages hashed per blocking task, and tasks run ahead of the tree.
const HASH_CHUNK: usize = 512;
const HASH_AHEAD: usize = 3;
/// Tiles fetched concurrently.
const TILE_FETCHES: usize = 32;

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

/// Returns the evidence stream, creating it when missing.
pub async fn ensure_evidence_stream(
    js: &jetstream::Context,
    replicas: usize,
) -> anyhow::Result<stream::Stream> {
    let mut s = js
        .get_or_create_stream(evidence_stream_config(replicas))
        .await
        .with_context(|| format!("stream {EVIDENCE_STREAM}"))?;
    let have = s
        .info()
        .await
        .with_context(|| format!("stream {EVIDENCE_STREAM}"))?
        .config
        .clone();
    if !have.deny_delete || !have.deny_purge || have.subjects != [EVIDENCE_SUBJECTS] {
        warn!(
            stream = EVIDENCE_STREAM,
            subjects = ?have.subjects,
            deny_delete = have.deny_delete,
            deny_purge = have.deny_purge,
            "existing evidence stream differs from the contract (subjects inventory-evidence.>, deny delete and purge)"
        );
    }
    Ok(s)
}

/// The evidence stream, if it exists.
pub async fn open_evidence_stream(
    js: &jetstream::Context,
) -> anyhow::Result<Option<stream::Stream>> {
    use jetstream::context::GetStreamErrorKind;
    match js.get_stream(EVIDENCE_STREAM).await {
        Ok(s) => Ok(Some(s)),
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(e).with_context(|| format!("stream {EVIDENCE_STREAM}")),
        },
    }
}

/// Connects to NATS (the global settings) and opens INVENTORY without creating it.
pub async fn connect_existing(
    global: &crate::cli::Global,
    name: &str,
) -> anyhow::Result<(jetstream::Context, stream::Stream)> {
    let client = inventory_bus::connect(&crate::nats_config(global, name))
        .await
        .context("NATS_URL")?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(STREAM_NAME)
        .await
        .with_context(|| format!("stream {STREAM_NAME} at {}", global.nats_url))?;
    Ok((js, stream))
}

/// Reads the signer key from `path`. Errors name the file and what is wrong, never its content.
pub fn load_signer(path: &Path) -> anyhow::Result<Signer> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("signing key file {}: {}", path.display(), e.kind()))?;
    Signer::parse(text.trim_end()).map_err(|e| {
        anyhow::anyhow!(
            "signing key file {}: {e} (expected one line PRIVATE+KEY+NAME+KEYID+KEY, as written by `inventory keygen`)",
            path.display()
        )
    })
}

/// Verifier keys, each given as its text (`NAME+KEYID+KEY`) or as a file holding it.
pub fn load_verifiers(keys: &[String]) -> anyhow::Result<Vec<Verifier>> {
    if keys.is_empty() {
        anyhow::bail!("--key: give the checkpoints' verifier key (NAME+KEYID+KEY, or a file holding it, as written by `inventory keygen`)");
    }
    keys.iter()
        .map(|k| {
            let k = k.trim();
            match Verifier::parse(k) {
                Ok(v) => Ok(v),
                Err(text_err) => {
                    let text = std::fs::read_to_string(k).map_err(|e| {
                        anyhow::anyhow!(
                            "--key {k}: not a verifier key ({text_err}) nor a readable file ({e})"
                        )
                    })?;
                    Verifier::parse(text.trim()).map_err(|e| anyhow::anyhow!("--key file {k}: {e}"))
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
pub fn leaf_of(m: &StoredMessage) -> anyhow::Result<Hash> {
    MessageRef {
        seq: m.seq,
        subject: &m.subject,
        recorded_at_nanos: m.recorded_at_nanos,
        payload: &m.payload,
    }
    .leaf_hash()
    .with_context(|| format!("message {}", m.seq))
}

/// Reads INVENTORY from sequence 1 to `upto` in order and hands each message's leaf hash to `f`
/// (hashing runs on blocking threads, a few chunks ahead). A missing sequence stops the read:
/// `Ok(Err(gap))`.
pub async fn read_leaves(
    stream: &stream::Stream,
    upto: u64,
    cancel: &CancellationToken,
    mut f: impl FnMut(u64, Hash),
) -> anyhow::Result<Result<(), Gap>> {
    if upto == 0 {
        return Ok(Ok(()));
    }
    let (pending, messages) =
        inventory_bus::follow_from(stream, STREAM_SUBJECTS, Start::Sequence(1)).await?;
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
                        .collect::<Vec<anyhow::Result<(u64, Hash)>>>()
                })
            })
            .buffered(HASH_AHEAD),
    );
    let (mut expected, mut read) = (1u64, 0u64);
    let mut last_log = std::time::Instant::now();
    while expected <= upto {
        if read >= pending {
            return Ok(Err(Gap { seq: expected }));
        }
        let chunk = tokio::select! {
            _ = cancel.cancelled() => anyhow::bail!("interrupted at seq {}", expected - 1),
            c = hashed.next() => match c {
                Some(c) => c.context("a hashing worker failed")?,
                None => anyhow::bail!("the stream consumer ended at seq {}", expected - 1),
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

/// Fetches level-0 tiles `0..count` from the evidence stream (the first message on each tile's
/// subject). `Ok(Err(reason))` when one is missing or malformed.
pub async fn read_tiles(
    evidence: &stream::Stream,
    count: u64,
) -> anyhow::Result<Result<Vec<Vec<Hash>>, String>> {
    let mut fetched = futures::stream::iter(0..count)
        .map(|t| async move {
            let m = inventory_bus::next_on_subject(evidence, &tile_subject(t), 1).await?;
            Ok::<_, anyhow::Error>((t, m))
        })
        .buffered(TILE_FETCHES);
    let mut tiles = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while let Some(r) = fetched.next().await {
        let (t, m) = r?;
        let Some(m) = m else {
            return Ok(Err(format!("tile {t} is missing from {EVIDENCE_STREAM}")));
        };
        match decode_hashes("tile", &m.payload) {
            Ok(h) if h.len() as u64 == TILE_WIDTH => tiles.push(h),
            _ => {
                return Ok(Err(format!(
                    "tile {t} on {EVIDENCE_STREAM} is not 256 leaf hashes"
                )))
            }
        }
    }
    Ok(Ok(tiles))
}

/// The leaf hashes of messages `from..=to` read back one by one (direct gets); `None` for a
/// missing message.
pub async fn leaves_by_sequence(
    stream: &stream::Stream,
    from: u64,
    to: u64,
) -> anyhow::Result<Vec<(u64, Option<(Hash, String)>)>> {
    let mut out = Vec::new();
    for seq in from..=to {
        let m = inventory_bus::message_at(stream, seq).await?;
        out.push((
            seq,
            match m {
                Some(m) => Some((leaf_of(&m)?, m.subject)),
                None => None,
            },
        ));
    }
    Ok(out)
}

/// One checkpoint record read from the evidence stream.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// Its sequence in the evidence stream.
    pub evidence_seq: u64,
    pub record: records::CheckpointRecord,
}

/// The newest checkpoint record on the evidence stream, if any.
pub async fn newest_checkpoint(
    evidence: &stream::Stream,
) -> anyhow::Result<Option<Result<StoredCheckpoint, (u64, String)>>> {
    use jetstream::stream::DirectGetErrorKind;
    match evidence
        .direct_get_last_for_subject(CHECKPOINT_SUBJECT)
        .await
    {
        Ok(m) => Ok(Some(
            records::CheckpointRecord::from_json(&m.payload)
                .map(|record| StoredCheckpoint {
                    evidence_seq: m.sequence,
                    record,
                })
                .map_err(|e| (m.sequence, e.to_string())),
        )),
        Err(e) if matches!(e.kind(), DirectGetErrorKind::NotFound) => Ok(None),
        Err(e) => Err(e).context("reading the newest checkpoint"),
    }
}

/// Every checkpoint record on the evidence stream, in order (`Err((seq, reason))` for one that
/// does not parse).
pub async fn all_checkpoints(
    evidence: &stream::Stream,
) -> anyhow::Result<Vec<Result<StoredCheckpoint, (u64, String)>>> {
    let mut out = Vec::new();
    if newest_checkpoint(evidence).await?.is_none() {
        return Ok(out);
    }
    let (pending, messages) =
        inventory_bus::follow_from(evidence, CHECKPOINT_SUBJECT, Start::Sequence(1)).await?;
    let mut messages = Box::pin(messages);
    let mut read = 0;
    while read < pending {
        let Some(m) = messages.next().await else {
            break;
        };
        let m = m?;
        read += 1;
        out.push(
            records::CheckpointRecord::from_json(&m.payload)
                .map(|record| StoredCheckpoint {
                    evidence_seq: m.seq,
                    record,
                })
                .map_err(|e| (m.seq, e.to_string())),
        );
    }
    Ok(out)
}

/// Writes `text` to `path` through a temporary file and a rename (never a half-written file).
pub fn write_file_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

/// A short hex prefix of a hash, for messages.
pub fn short(h: &Hash) -> String {
    hex::encode(&h[..8])
}
