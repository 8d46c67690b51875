//! `inventory checkpoint`: hash every message of INVENTORY into an RFC 6962 tree, check that the
//! newest checkpoint on INVENTORY_EVIDENCE still matches the tree at its size, then sign a
//! checkpoint of the whole stream and append it there, with the leaf hashes: each full tile of
//! 256 once on its own subject, the partial tail inside the checkpoint record.
//!
//! Also run periodically by `inventory up` ([`run_periodic`]).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use inventory_evidence::checkpoint::{parse_unverified, Checkpoint};
use inventory_evidence::note;
use inventory_evidence::records::{encode_hashes, full_tiles, CheckpointRecord};
use inventory_evidence::{CompactTree, Hash, Signer, TILE_WIDTH};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    ensure_evidence_stream, read_leaves, short, tile_subject, write_file_atomically,
    CHECKPOINT_SUBJECT, EVIDENCE_STREAM,
};
use crate::cli::{CheckpointArgs, Global};
use crate::verify::EXIT_BROKEN;

/// Tile publishes in flight at once.
const TILE_PIPELINE: usize = 256;

/// What a checkpoint run did.
#[derive(Debug)]
pub enum Outcome {
    /// A new checkpoint was signed and appended.
    Signed {
        checkpoint: Checkpoint,
        note: String,
        evidence_seq: u64,
        tiles: u64,
    },
    /// The newest checkpoint already covers the whole stream.
    UpToDate {
        checkpoint: Checkpoint,
        note: String,
    },
    /// Not signed: the stream no longer matches what was signed (or is incomplete).
    Refused(String),
}

/// One checkpoint of `inventory` against `evidence`.
pub async fn checkpoint_once(
    js: &jetstream::Context,
    inventory: &mut stream::Stream,
    evidence: &stream::Stream,
    signer: &Signer,
    origin: &str,
    cancel: &CancellationToken,
) -> anyhow::Result<Outcome> {
    let info = inventory
        .info()
        .await
        .context("reading the INVENTORY stream's state")?;
    let tip = info.state.last_sequence;
    // The newest checkpoint: its size and root must still be those of the stream.
    let newest = match super::newest_checkpoint(evidence).await? {
        None => None,
        Some(Err((seq, reason))) => {
            return Ok(Outcome::Refused(format!(
                "the newest record on {EVIDENCE_STREAM} (seq {seq}) is not a checkpoint record: {reason}"
            )))
        }
        Some(Ok(stored)) => {
            let cp = match parse_unverified(&stored.record.note) {
                Ok(cp) => cp,
                Err(e) => {
                    return Ok(Outcome::Refused(format!(
                        "the newest checkpoint on {EVIDENCE_STREAM} (seq {}) does not parse: {e}",
                        stored.evidence_seq
                    )))
                }
            };
            if cp.origin != origin {
                return Ok(Outcome::Refused(format!(
                    "the newest checkpoint on {EVIDENCE_STREAM} (seq {}) is of origin {:?}, not {origin:?}",
                    stored.evidence_seq, cp.origin
                )));
            }
            if note::open(stored.record.note.as_bytes(), &[signer.verifier()]).is_err() {
                warn!(
                    evidence_seq = stored.evidence_seq,
                    key = %signer.verifier().key_text(),
                    "the newest checkpoint is not signed by this key (a rotated key?): checking its size and root only"
                );
            }
            Some((stored.evidence_seq, cp, stored.record.note))
        }
    };
    let prev_size = newest.as_ref().map_or(0, |(_, cp, _)| cp.size);
    if prev_size > tip {
        return Ok(Outcome::Refused(format!(
            "the newest checkpoint signs {prev_size} messages, but the stream ends at {tip} (messages removed, or the stream replaced)"
        )));
    }
    // Hash the stream; keep the leaves of the tiles this run stores.
    let keep_from = full_tiles(prev_size) * TILE_WIDTH;
    let mut tree = CompactTree::new();
    let mut root_at_prev = (prev_size == 0).then(|| tree.root());
    let mut kept: Vec<Hash> = Vec::new();
    let read = read_leaves(inventory, 1, tip, cancel, |seq, leaf| {
        tree.push(leaf);
        if seq > keep_from {
            kept.push(leaf);
        }
        if seq == prev_size {
            root_at_prev = Some(tree.root());
        }
    })
    .await?;
    if let Err(gap) = read {
        return Ok(Outcome::Refused(format!(
            "message {} is missing from the stream (removed): nothing after it can be signed",
            gap.seq
        )));
    }
    if let Some((evidence_seq, cp, note)) = &newest {
        if root_at_prev != Some(cp.root) {
            return Ok(Outcome::Refused(format!(
                "the stream no longer matches the newest checkpoint ({EVIDENCE_STREAM} seq {evidence_seq}, size {}): \
                 its first {} messages hash to {}, not the signed {}; run `inventory verify --checkpoints` to name the first differing sequence",
                cp.size,
                cp.size,
                short(&root_at_prev.unwrap_or_default()),
                short(&cp.root)
            )));
        }
        if cp.size == tip {
            return Ok(Outcome::UpToDate {
                checkpoint: cp.clone(),
                note: note.clone(),
            });
        }
    }
    // Full tiles not stored yet, each once (the server refuses a second one on the subject).
    let tiles = publish_tiles(js, evidence, &kept, keep_from / TILE_WIDTH, full_tiles(tip)).await?;
    let checkpoint = Checkpoint::new(origin, tip, tree.root())?;
    let note = checkpoint.sign(signer)?;
    let tail_start = usize::try_from(full_tiles(tip) * TILE_WIDTH - keep_from).unwrap_or(0);
    let record = CheckpointRecord::new(note.clone(), &kept[tail_start..]);
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("checkpoint-{tip}-{}", hex::encode(checkpoint.root)).as_str(),
    );
    let expected = newest.as_ref().map_or(0, |(seq, _, _)| *seq);
    headers.insert(
        async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
        expected.to_string().as_str(),
    );
    let msg = jetstream::message::PublishMessage::build()
        .headers(headers)
        .payload(Bytes::from(record.to_json()));
    let ack = js
        .send_publish(CHECKPOINT_SUBJECT, msg)
        .await
        .context("publishing the checkpoint")?
        .await;
    let evidence_seq = match ack {
        Ok(ack) => ack.sequence,
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
            return Ok(Outcome::Refused(format!(
                "another checkpoint was appended to {EVIDENCE_STREAM} meanwhile (after seq {expected}); run again"
            )))
        }
        Err(e) => return Err(e).context("publishing the checkpoint"),
    };
    Ok(Outcome::Signed {
        checkpoint,
        note,
        evidence_seq,
        tiles,
    })
}

/// Publishes tiles `first..end` (leaf hashes from `kept`, which starts at tile `first`); returns
/// how many were new.
async fn publish_tiles(
    js: &jetstream::Context,
    evidence: &stream::Stream,
    kept: &[Hash],
    first: u64,
    end: u64,
) -> anyhow::Result<u64> {
    let mut new = 0;
    let width = usize::try_from(TILE_WIDTH).unwrap_or(256);
    let indices: Vec<u64> = (first..end).collect();
    for batch in indices.chunks(TILE_PIPELINE) {
        let mut acks = Vec::with_capacity(batch.len());
        for &t in batch {
            let start = usize::try_from(t - first).unwrap_or(0) * width;
            let bytes = encode_hashes(&kept[start..start + width]);
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("tile-0-{t}").as_str(),
            );
            headers.insert(async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
            let msg = jetstream::message::PublishMessage::build()
                .headers(headers)
                .payload(Bytes::from(bytes.clone()));
            let ack = js
                .send_publish(tile_subject(t), msg)
                .await
                .with_context(|| format!("publishing tile {t}"))?;
            acks.push((t, bytes, ack));
        }
        for (t, bytes, ack) in acks {
            match ack.await {
                Ok(a) if !a.duplicate => new += 1,
                Ok(_) => {}
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    // Stored by an earlier run: it must hold the same hashes.
                    let stored = inventory_bus::next_on_subject(evidence, &tile_subject(t), 1)
                        .await?
                        .map(|m| m.payload);
                    if stored.as_deref() != Some(bytes.as_slice()) {
                        warn!(
                            tile = t,
                            "the stored tile differs from the stream's leaf hashes; verify will not be able to name a differing sequence in it"
                        );
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("publishing tile {t}")),
            }
        }
    }
    Ok(new)
}

/// `inventory checkpoint`.
pub async fn run(
    global: &Global,
    args: CheckpointArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let signer = super::load_signer(&args.signing_key_file)?;
    let (js, mut inventory) = super::connect_existing(global, "inventory-checkpoint").await?;
    let evidence = ensure_evidence_stream(&js, usize::from(global.stream_replicas)).await?;
    let outcome = checkpoint_once(
        &js,
        &mut inventory,
        &evidence,
        &signer,
        &args.origin,
        &cancel,
    )
    .await?;
    let mut out = std::io::stdout().lock();
    match outcome {
        Outcome::Signed {
            checkpoint,
            note,
            evidence_seq,
            tiles,
        } => {
            if let Some(path) = &args.out {
                write_file_atomically(path, &note)?;
            }
            writeln!(
                out,
                "checkpoint signed: size {} root {} (origin {}, key {}+{:08x}), appended to {EVIDENCE_STREAM} seq {evidence_seq} with {tiles} new tiles{}",
                checkpoint.size,
                hex::encode(checkpoint.root),
                checkpoint.origin,
                signer.name(),
                signer.key_id(),
                out_note(&args.out)
            )
            .context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Outcome::UpToDate { checkpoint, note } => {
            if let Some(path) = &args.out {
                write_file_atomically(path, &note)?;
            }
            writeln!(
                out,
                "checkpoint up to date: the newest one already signs the whole stream (size {}, root {}){}",
                checkpoint.size,
                hex::encode(checkpoint.root),
                out_note(&args.out)
            )
            .context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Refused(reason) => {
            let line = format!("checkpoint REFUSED: {reason}");
            let _ = writeln!(out, "{line}");
            let _ = writeln!(std::io::stderr().lock(), "error: {line}");
            Ok(ExitCode::from(EXIT_BROKEN))
        }
    }
}

fn out_note(out: &Option<PathBuf>) -> String {
    out.as_ref()
        .map(|p| format!("; signed note written to {}", p.display()))
        .unwrap_or_default()
}

/// Signs a checkpoint every `every` until cancelled (`inventory up`). Failures are logged and
/// retried at the next tick.
pub async fn run_periodic(
    nats: inventory_bus::NatsConfig,
    replicas: usize,
    signing_key_file: PathBuf,
    origin: String,
    every: Duration,
    cancel: CancellationToken,
) {
    let signer = match super::load_signer(&signing_key_file) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "checkpoints disabled");
            return;
        }
    };
    info!(
        key = %signer.verifier().key_text(),
        every = %humantime::format_duration(every),
        "signing checkpoints of the stream periodically"
    );
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = async {
            let client = inventory_bus::connect(&nats).await?;
            let js = jetstream::new(client);
            let mut inventory = js
                .get_stream(inventory_schemas::STREAM_NAME)
                .await
                .context("stream INVENTORY")?;
            let evidence = ensure_evidence_stream(&js, replicas).await?;
            checkpoint_once(&js, &mut inventory, &evidence, &signer, &origin, &cancel).await
        }
        .await;
        match result {
            Ok(Outcome::Signed {
                checkpoint,
                evidence_seq,
                tiles,
                ..
            }) => info!(
                size = checkpoint.size,
                root = %hex::encode(checkpoint.root),
                evidence_seq,
                tiles,
                "checkpoint signed"
            ),
            Ok(Outcome::UpToDate { checkpoint, .. }) => {
                tracing::debug!(size = checkpoint.size, "checkpoint up to date")
            }
            Ok(Outcome::Refused(reason)) => error!(%reason, "checkpoint refused"),
            Err(e) if cancel.is_cancelled() => {
                tracing::debug!(error = %e, "checkpoint interrupted by shutdown")
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "checkpoint failed; retrying at the next interval")
            }
        }
    }
}
