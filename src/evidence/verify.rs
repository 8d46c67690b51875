//! `inventory verify --checkpoints --key PUB [--checkpoint-file FILE ...]`: proves the stream
//! holds exactly what every signed checkpoint signed.
//!
//! 1. Every checkpoint on INVENTORY_EVIDENCE, in order, and every `--checkpoint-file` must carry a
//!    valid signature by a given key, name one origin, and (on the stream) never shrink.
//! 2. The stream is read once from sequence 1 (a missing sequence is a failure), its leaves
//!    hashed into the tree, and its root at each checkpoint's size compared with the signed root.
//! 3. On a mismatch, the first differing sequence is named: the checkpoint's leaf hashes are
//!    assembled from the stored tiles and its tail, authenticated by recomputing its signed root
//!    from them, and compared tile by tile with the stream's, then leaf by leaf in the first
//!    differing tile. If the stored leaf hashes are not authentic, the failure is bounded by the
//!    checkpoints that still match.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use async_nats::jetstream::stream;
use inventory_evidence::checkpoint::{open, Checkpoint};
use inventory_evidence::merkle;
use inventory_evidence::records::{authenticated_leaves, full_tiles};
use inventory_evidence::{CompactTree, Hash, Verifier, TILE_WIDTH};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{read_leaves, read_tiles, short, EVIDENCE_STREAM};
use crate::cli::{Global, VerifyArgs};
use crate::verify::EXIT_BROKEN;

/// Where a checkpoint came from.
#[derive(Debug, Clone)]
enum Source {
    Stream { evidence_seq: u64, tail: Vec<Hash> },
    File(PathBuf),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stream { evidence_seq, .. } => write!(f, "{EVIDENCE_STREAM} seq {evidence_seq}"),
            Self::File(p) => write!(f, "file {}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
struct Signed {
    source: Source,
    checkpoint: Checkpoint,
}

fn fail(line: &str) -> ExitCode {
    let line = format!("verify FAILED: {line}");
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    let _ = writeln!(std::io::stderr().lock(), "error: {line}");
    ExitCode::from(EXIT_BROKEN)
}

/// Checks the signatures and the order of the checkpoints; `Err(line)` names the first bad one.
async fn collect(
    evidence: Option<&stream::Stream>,
    files: &[PathBuf],
    keys: &[Verifier],
) -> anyhow::Result<Result<Vec<Signed>, String>> {
    let mut out: Vec<Signed> = Vec::new();
    if let Some(evidence) = evidence {
        let mut previous: Option<(u64, u64)> = None;
        for stored in super::all_checkpoints(evidence).await? {
            let stored = match stored {
                Ok(s) => s,
                Err((seq, reason)) => {
                    return Ok(Err(format!(
                        "{EVIDENCE_STREAM} seq {seq} is not a checkpoint record: {reason}"
                    )))
                }
            };
            let cp = match open(&stored.record.note, keys) {
                Ok(cp) => cp,
                Err(e) => {
                    return Ok(Err(format!(
                        "the checkpoint at {EVIDENCE_STREAM} seq {} is not validly signed by the given key: {e}",
                        stored.evidence_seq
                    )))
                }
            };
            if let Some((seq, size)) = previous {
                if cp.size < size {
                    return Ok(Err(format!(
                        "the checkpoint at {EVIDENCE_STREAM} seq {} signs {} messages, fewer than the {size} of the previous one (seq {seq}): a log never shrinks",
                        stored.evidence_seq, cp.size
                    )));
                }
            }
            previous = Some((stored.evidence_seq, cp.size));
            let tail = match stored.record.tail() {
                Ok(t) => t,
                Err(e) => {
                    return Ok(Err(format!(
                        "the checkpoint record at {EVIDENCE_STREAM} seq {}: {e}",
                        stored.evidence_seq
                    )))
                }
            };
            out.push(Signed {
                source: Source::Stream {
                    evidence_seq: stored.evidence_seq,
                    tail,
                },
                checkpoint: cp,
            });
        }
    }
    for path in files {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--checkpoint-file {}", path.display()))?;
        match open(&text, keys) {
            Ok(cp) => out.push(Signed {
                source: Source::File(path.clone()),
                checkpoint: cp,
            }),
            Err(e) => {
                return Ok(Err(format!(
                    "the checkpoint file {} is not validly signed by the given key: {e}",
                    path.display()
                )))
            }
        }
    }
    if let Some(first) = out.first() {
        if let Some(other) = out
            .iter()
            .find(|s| s.checkpoint.origin != first.checkpoint.origin)
        {
            return Ok(Err(format!(
                "the checkpoints are of two logs: {:?} ({}) and {:?} ({})",
                first.checkpoint.origin, first.source, other.checkpoint.origin, other.source
            )));
        }
    }
    Ok(Ok(out))
}

/// `inventory verify --checkpoints`.
pub async fn run(
    global: &Global,
    args: &VerifyArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let keys = super::load_verifiers(&args.key)?;
    let (js, mut inventory) = super::connect_existing(global, "inventory-verify").await?;
    let tip = inventory
        .info()
        .await
        .context("reading the INVENTORY stream's state")?
        .state
        .last_sequence;
    let evidence = super::open_evidence_stream(&js).await?;
    let signed = match collect(evidence.as_ref(), &args.checkpoint_file, &keys).await? {
        Ok(s) => s,
        Err(line) => return Ok(fail(&line)),
    };
    if signed.is_empty() {
        anyhow::bail!(
            "no checkpoints to verify: {EVIDENCE_STREAM} holds none and no --checkpoint-file was given (run `inventory checkpoint`)"
        );
    }
    let max_size = signed.iter().map(|s| s.checkpoint.size).max().unwrap_or(0);
    let started = std::time::Instant::now();
    // One pass: the root at every signed size and the root of every full tile.
    let mut wanted: BTreeMap<u64, Option<Hash>> =
        signed.iter().map(|s| (s.checkpoint.size, None)).collect();
    if let Some(r) = wanted.get_mut(&0) {
        *r = Some(merkle::empty_root());
    }
    let upto = max_size.min(tip);
    let mut tree = CompactTree::new();
    let mut tile = Vec::with_capacity(usize::try_from(TILE_WIDTH).unwrap_or(256));
    let mut tile_roots: Vec<Hash> = Vec::new();
    let read = read_leaves(&inventory, 1, upto, &cancel, |seq, leaf| {
        tree.push(leaf);
        tile.push(leaf);
        if tile.len() as u64 == TILE_WIDTH {
            tile_roots.push(merkle::root(&tile));
            tile.clear();
        }
        if let Some(r) = wanted.get_mut(&seq) {
            *r = Some(tree.root());
        }
    })
    .await?;
    let elapsed = started.elapsed();
    if let Err(gap) = read {
        let by = signed
            .iter()
            .find(|s| s.checkpoint.size >= gap.seq)
            .map(|s| {
                format!(
                    " (signed by the checkpoint of size {}, {})",
                    s.checkpoint.size, s.source
                )
            })
            .unwrap_or_default();
        return Ok(fail(&format!(
            "seq {}: message {} is missing from the stream{by}",
            gap.seq, gap.seq
        )));
    }
    // Compare, in order; the first mismatch is located.
    for s in &signed {
        let cp = &s.checkpoint;
        let recomputed = wanted.get(&cp.size).copied().flatten();
        if recomputed == Some(cp.root) {
            continue;
        }
        let located = locate(
            &inventory,
            evidence.as_ref(),
            s,
            &signed,
            &wanted,
            &tile_roots,
            tip,
        )
        .await?;
        return Ok(fail(&located));
    }
    let newest = signed
        .iter()
        .filter(|s| matches!(s.source, Source::Stream { .. }))
        .count();
    let rate = upto as f64 / elapsed.as_secs_f64().max(1e-9);
    tracing::debug!(
        messages = upto,
        seconds = elapsed.as_secs_f64(),
        messages_per_sec = rate as u64,
        "checkpoint verify throughput"
    );
    info!(
        checkpoints = signed.len(),
        size = max_size,
        "checkpoints verified"
    );
    let key_names: Vec<String> = keys
        .iter()
        .map(|k| format!("{}+{:08x}", k.name(), k.key_id()))
        .collect();
    writeln!(
        std::io::stdout().lock(),
        "verified checkpoints: {} signed by {} ({} on {EVIDENCE_STREAM}, {} from --checkpoint-file; origin {}), sizes up to {max_size}, each extending the previous: \
         the stream holds exactly what each signed (seqs 1..={max_size}); {} messages after the newest checkpoint are not covered yet",
        signed.len(),
        key_names.join(", "),
        newest,
        signed.len() - newest,
        signed[0].checkpoint.origin,
        tip.saturating_sub(max_size)
    )
    .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Names the first sequence at which the stream differs from what `bad` signed.
async fn locate(
    inventory: &stream::Stream,
    evidence: Option<&stream::Stream>,
    bad: &Signed,
    all: &[Signed],
    roots: &BTreeMap<u64, Option<Hash>>,
    tile_roots: &[Hash],
    tip: u64,
) -> anyhow::Result<String> {
    let cp = &bad.checkpoint;
    let what = format!(
        "the stream differs from what the checkpoint of size {} ({}, root {}) signed",
        cp.size,
        bad.source,
        short(&cp.root)
    );
    // The leaf hashes it signed: tiles + its tail (a file's tail is that of the record on the
    // stream with the same size and root), authenticated by its root.
    let tail = match &bad.source {
        Source::Stream { tail, .. } => Some(tail.clone()),
        Source::File(_) => all.iter().find_map(|s| match &s.source {
            Source::Stream { tail, .. }
                if s.checkpoint.size == cp.size && s.checkpoint.root == cp.root =>
            {
                Some(tail.clone())
            }
            _ => None,
        }),
    };
    let signed_leaves = match (evidence, tail) {
        (Some(ev), Some(tail)) => match read_tiles(ev, full_tiles(cp.size)).await? {
            Ok(tiles) => authenticated_leaves(cp, &tiles, &tail).map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        },
        _ => Err(format!("its leaf hashes are not on {EVIDENCE_STREAM}")),
    };
    let signed_leaves = match signed_leaves {
        Ok(l) => l,
        Err(reason) => return Ok(bounded(&what, &reason, bad, all, roots, tip)),
    };
    // First differing full tile, else the partial tail.
    let full = full_tiles(cp.size.min(tip));
    let width = usize::try_from(TILE_WIDTH).unwrap_or(256);
    let first_tile = (0..full)
        .find(|&t| {
            let start = usize::try_from(t).unwrap_or(0) * width;
            tile_roots.get(usize::try_from(t).unwrap_or(usize::MAX))
                != Some(&merkle::root(&signed_leaves[start..start + width]))
        })
        .unwrap_or(full);
    let from = first_tile * TILE_WIDTH + 1;
    let to = ((first_tile + 1) * TILE_WIDTH).min(cp.size);
    if from > tip {
        return Ok(format!(
            "seq {from}: {what}: it signs {} messages, the stream ends at {tip} (messages removed, or the stream replaced)",
            cp.size
        ));
    }
    for (seq, stored) in super::leaves_by_sequence(inventory, from, to.min(tip)).await? {
        let signed_leaf = signed_leaves[usize::try_from(seq - 1).unwrap_or(0)];
        match stored {
            None => {
                return Ok(format!(
                    "seq {seq}: {what}: message {seq} is missing"
                ))
            }
            Some((leaf, subject)) if leaf != signed_leaf => {
                return Ok(format!(
                    "seq {seq} (subject {subject}): {what}: the message stored there hashes to leaf {}, the checkpoint signed {} (its sequence, subject, time or payload changed)",
                    short(&leaf),
                    short(&signed_leaf)
                ))
            }
            Some(_) => {}
        }
    }
    if to < cp.size && tip < cp.size {
        return Ok(format!(
            "seq {}: {what}: it signs {} messages, the stream ends at {tip}",
            tip + 1,
            cp.size
        ));
    }
    // The stream and the signed leaves agree message by message here, yet the roots differ:
    // only possible if the stream changed between the two reads.
    Ok(format!(
        "{what}, but no single differing message was found (the stream changed while it was read?)"
    ))
}

/// Bounds the first difference by the checkpoints that still match, when the signed leaf
/// hashes are not available.
fn bounded(
    what: &str,
    reason: &str,
    bad: &Signed,
    all: &[Signed],
    roots: &BTreeMap<u64, Option<Hash>>,
    tip: u64,
) -> String {
    let cp = &bad.checkpoint;
    let matches =
        |s: &Signed| roots.get(&s.checkpoint.size).copied().flatten() == Some(s.checkpoint.root);
    let good = all
        .iter()
        .filter(|s| s.checkpoint.size < cp.size && matches(s))
        .map(|s| s.checkpoint.size)
        .max()
        .unwrap_or(0);
    let first_bad = all
        .iter()
        .filter(|s| !matches(s))
        .map(|s| s.checkpoint.size)
        .min()
        .unwrap_or(cp.size)
        .min(cp.size);
    let end = if first_bad > tip {
        format!("{tip} (the stream ends there; the checkpoint signs {first_bad})")
    } else {
        first_bad.to_string()
    };
    format!(
        "seq {}..={end}: {what}; the first differing message lies in this range ({reason}, so it cannot be named more precisely)",
        good + 1
    )
}
