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

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use inventory_bus::Start;
use inventory_evidence::records::{self, decode_hashes};
use inventory_evidence::{Hash, Signer, Verifier, TILE_WIDTH};
use inventory_schemas::STREAM_NAME;
use tracing::warn;

// The readers the API shares (one implementation, in the evidence crate's `nats` module).
pub use inventory_evidence::nats::{
    default_origin, evidence_stream_config, leaf_of, newest_checkpoint, open_evidence_stream,
    read_leaves, tile_subject, StoredCheckpoint, CHECKPOINT_SUBJECT, EVIDENCE_STREAM,
    EVIDENCE_SUBJECTS,
};

/// Tiles fetched concurrently.
const TILE_FETCHES: usize = 32;

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

/// Verifier keys given to `--key`, each as its text (`NAME+KEYID+KEY`) or as a file holding it
/// (at least one).
pub fn load_verifiers(keys: &[String]) -> anyhow::Result<Vec<Verifier>> {
    if keys.is_empty() {
        anyhow::bail!("--key: give the checkpoints' verifier key (NAME+KEYID+KEY, or a file holding it, as written by `inventory keygen`)");
    }
    inventory_evidence::nats::load_verifiers(keys).map_err(|e| anyhow::anyhow!("--key {e}"))
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
