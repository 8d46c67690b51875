//! `inventory prove` and `inventory verify-proof`: proofs an auditor checks offline.
//!
//! `prove SEQ` prints an inclusion proof of message SEQ against the newest checkpoint (or
//! `--checkpoint-file`): the message as JetStream stored it, its leaf index, the tree size, the
//! audit path and the signed note. `prove --consistency-from OLD` prints a consistency proof
//! that the checkpoint extends the older signed checkpoint OLD. The leaf hashes come from the
//! stored tiles (the partial tail from the stream) and must hash to the checkpoint's root.
//!
//! `verify-proof --key PUB FILE` needs no NATS: it checks the signature(s), recomputes the leaf
//! from the included message, and checks the proof against the signed root.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use inventory_evidence::checkpoint::{parse_unverified, Checkpoint};
use inventory_evidence::records::{authenticated_leaves, full_tiles};
use inventory_evidence::{
    merkle, ConsistencyProof, Hash, InclusionProof, ProofFile, ProvedMessage, TILE_WIDTH,
};

use super::{read_tiles, EVIDENCE_STREAM};
use crate::cli::{Global, ProveArgs, VerifyProofArgs};
use crate::verify::EXIT_BROKEN;

fn broken(line: &str) -> ExitCode {
    let line = format!("prove FAILED: {line}");
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    let _ = writeln!(std::io::stderr().lock(), "error: {line}");
    ExitCode::from(EXIT_BROKEN)
}

/// `inventory prove`.
pub async fn run(global: &Global, args: ProveArgs) -> anyhow::Result<ExitCode> {
    let (js, inventory) = super::connect_existing(global, "inventory-prove").await?;
    let evidence = super::open_evidence_stream(&js).await?.with_context(|| {
        format!("stream {EVIDENCE_STREAM} does not exist: run `inventory checkpoint` first")
    })?;
    // The checkpoint to prove against.
    let note = match &args.checkpoint_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--checkpoint-file {}", path.display()))?,
        None => match super::newest_checkpoint(&evidence).await? {
            Some(Ok(stored)) => stored.record.note,
            Some(Err((seq, reason))) => {
                return Ok(broken(&format!(
                    "{EVIDENCE_STREAM} seq {seq} is not a checkpoint record: {reason}"
                )))
            }
            None => anyhow::bail!(
                "{EVIDENCE_STREAM} holds no checkpoint yet: run `inventory checkpoint`"
            ),
        },
    };
    let cp = parse_unverified(&note).context("the checkpoint")?;
    // Its leaves: full tiles from the evidence stream, the tail re-hashed from the stream.
    let tiles = match read_tiles(&evidence, full_tiles(cp.size)).await? {
        Ok(t) => t,
        Err(reason) => return Ok(broken(&reason)),
    };
    let tail_from = full_tiles(cp.size) * TILE_WIDTH + 1;
    let mut tail: Vec<Hash> = Vec::new();
    if tail_from <= cp.size {
        for (seq, stored) in super::leaves_by_sequence(&inventory, tail_from, cp.size).await? {
            match stored {
                Some((leaf, _)) => tail.push(leaf),
                None => {
                    return Ok(broken(&format!(
                        "seq {seq}: message {seq} is missing from the stream"
                    )))
                }
            }
        }
    }
    let leaves = match authenticated_leaves(&cp, &tiles, &tail) {
        Ok(l) => l,
        Err(e) => {
            return Ok(broken(&format!(
                "{e}: the stream or its stored leaf hashes differ from the checkpoint; run `inventory verify --checkpoints`"
            )))
        }
    };
    let json = if let Some(old_path) = &args.consistency_from {
        let old_note = std::fs::read_to_string(old_path)
            .with_context(|| format!("--consistency-from {}", old_path.display()))?;
        let old = parse_unverified(&old_note).context("the older checkpoint")?;
        if old.size > cp.size {
            anyhow::bail!(
                "the older checkpoint signs {} messages, more than the {} of the checkpoint to prove against",
                old.size,
                cp.size
            );
        }
        let proof = merkle::consistency_proof(&leaves, old.size)?;
        serde_json::to_string_pretty(&ConsistencyProof::new(old_note, note, &proof))?
    } else {
        let Some(seq) = args.seq else {
            anyhow::bail!("give SEQ (or --consistency-from OLD_FILE)");
        };
        match inclusion(&inventory, &cp, &leaves, seq, note).await? {
            Ok(json) => json,
            Err(line) => return Ok(broken(&line)),
        }
    };
    match &args.out {
        Some(path) => super::write_file_atomically(path, &format!("{json}\n"))?,
        None => writeln!(std::io::stdout().lock(), "{json}").context("writing to stdout")?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn inclusion(
    inventory: &async_nats::jetstream::stream::Stream,
    cp: &Checkpoint,
    leaves: &[Hash],
    seq: u64,
    note: String,
) -> anyhow::Result<Result<String, String>> {
    if seq > cp.size {
        anyhow::bail!(
            "message {seq} is not covered by the checkpoint (size {}): run `inventory checkpoint` first",
            cp.size
        );
    }
    let Some(m) = inventory_bus::message_at(inventory, seq).await? else {
        return Ok(Err(format!(
            "seq {seq}: message {seq} is missing from the stream"
        )));
    };
    let leaf = super::leaf_of(&m)?;
    if leaf != leaves[usize::try_from(seq - 1).unwrap_or(0)] {
        return Ok(Err(format!(
            "seq {seq}: the message differs from the leaf the checkpoint signed; run `inventory verify --checkpoints`"
        )));
    }
    let proof = merkle::inclusion_proof(leaves, seq - 1)?;
    let message = ProvedMessage {
        seq,
        subject: m.subject.clone(),
        recorded_at_nanos: i64::try_from(m.recorded_at_nanos).context("the message's timestamp")?,
        payload_base64: B64.encode(&m.payload),
    };
    Ok(Ok(serde_json::to_string_pretty(&InclusionProof::new(
        message, cp.size, &proof, note,
    ))?))
}

/// `inventory verify-proof`: offline.
pub fn verify_proof(args: VerifyProofArgs) -> anyhow::Result<ExitCode> {
    let keys = super::load_verifiers(&args.key)?;
    let bytes = std::fs::read(&args.proof_file)
        .with_context(|| format!("proof file {}", args.proof_file.display()))?;
    let fail = |e: &dyn std::fmt::Display| {
        let line = format!("proof FAILED: {}: {e}", args.proof_file.display());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
        let _ = writeln!(std::io::stderr().lock(), "error: {line}");
        ExitCode::from(EXIT_BROKEN)
    };
    let file = match ProofFile::parse(&bytes) {
        Ok(f) => f,
        Err(e) => return Ok(fail(&e)),
    };
    let line = match file {
        ProofFile::Inclusion(p) => match p.verify(&keys) {
            Ok(cp) => {
                let at = chrono::DateTime::from_timestamp_nanos(p.message.recorded_at_nanos);
                format!(
                    "proof verified: message {} (subject {}, recorded {}) is leaf {} of the tree of {} messages (origin {}, root {}) signed by {}",
                    p.message.seq,
                    p.message.subject,
                    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                    p.leaf_index,
                    cp.size,
                    cp.origin,
                    hex::encode(cp.root),
                    signer_names(&p.checkpoint, &keys)
                )
            }
            Err(e) => return Ok(fail(&e)),
        },
        ProofFile::Consistency(p) => match p.verify(&keys) {
            Ok((old, new)) => format!(
                "proof verified: the tree of {} messages (root {}) extends the tree of {} messages (root {}), both signed (origin {}) by {}",
                new.size,
                hex::encode(new.root),
                old.size,
                hex::encode(old.root),
                new.origin,
                signer_names(&p.checkpoint, &keys)
            ),
            Err(e) => return Ok(fail(&e)),
        },
    };
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn signer_names(note: &str, keys: &[inventory_evidence::Verifier]) -> String {
    inventory_evidence::note::open(note.as_bytes(), keys)
        .map(|n| {
            n.verified
                .iter()
                .map(|s| format!("{}+{:08x}", s.name, s.key_id))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
