//! `inventory verify`: re-reads the stream and proves that no event was altered or removed.
//!
//! Checks, in stream order (see docs/audit.md):
//! - sequence continuity: every sequence from the start of the window to the stream's tip at
//!   start is present (a hole is a removed message; an expired head needs an explicit `--from`);
//! - every message is a valid event of the NATS subject it was stored on (the trust rule,
//!   [`inventory_schemas::trust`]: subject, key, source, scope and time agree);
//! - for every asset event: its `contenthash` is the hash of its `data`, its `prevseq` is the
//!   sequence of the previous message on the asset's subject, its `chainhash` is
//!   `sha256(previous chainhash ‖ contenthash ‖ type)` and its `id` is the deterministic
//!   `asset_event_id(key, prevseq, contenthash)`.
//!
//! Any breach fails the verification. A reviewed breach can be accepted explicitly
//! (`--accept SEQ`, listed in the summary); an accepted message on an asset subject restarts that
//! subject's chain (the next event links to it by `prevseq`, with "" as the previous chain hash),
//! exactly as collectors restart it ([`inventory_schemas::LastLink::Unreadable`]).
//!
//! The pure checker ([`check::Verifier`], in `check.rs`) does no IO; [`run`], here, feeds it from
//! NATS and resolves the anchors of assets whose chain starts before the window (`--from`).

mod check;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt;
use inventory_bus::Start;
use inventory_schemas::STREAM_SUBJECTS;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::cli::{Global, VerifyArgs};
use check::{prepare, Anchor, Broken, Step, Verifier};
use inventory_schemas::LastLink;

/// Exit code when the stream fails verification (a broken link or a removed message).
pub const EXIT_BROKEN: u8 = 3;
/// Messages decoded and hashed per blocking task, and tasks run ahead of the checker.
const PREPARE_CHUNK: usize = 512;
const PREPARE_AHEAD: usize = 3;

/// Resolves the anchor of `subject`, whose first event in the window (starting at `from`) says
/// `prevseq`. `stream_first`: the stream's first sequence.
async fn resolve_anchor(
    stream: &async_nats::jetstream::stream::Stream,
    subject: &str,
    prevseq: u64,
    from: u64,
    stream_first: u64,
) -> anyhow::Result<Anchor> {
    if prevseq == 0 {
        // Its first event in the window claims to be its first ever: nothing may precede it.
        let earlier = inventory_bus::next_on_subject(stream, subject, stream_first).await?;
        return Ok(match earlier {
            Some(m) if m.seq < from => Anchor::Broken(format!(
                "prevseq is 0, but the asset has an earlier event at {}",
                m.seq
            )),
            _ => Anchor::Genesis,
        });
    }
    let Some(prev) = inventory_bus::message_at(stream, prevseq).await? else {
        return Ok(if prevseq < stream_first {
            Anchor::Expired
        } else {
            Anchor::Broken(format!(
                "prevseq is {prevseq}, but there is no message {prevseq} (removed)"
            ))
        });
    };
    if prev.subject != subject {
        return Ok(Anchor::Broken(format!(
            "prevseq is {prevseq}, a message of another subject ({})",
            prev.subject
        )));
    }
    // The anchor must be the subject's newest message before the window.
    if let Some(next) = inventory_bus::next_on_subject(stream, subject, prevseq + 1).await? {
        if next.seq < from {
            return Ok(Anchor::Broken(format!(
                "prevseq is {prevseq}, expected {} (the asset's previous event)",
                last_before(stream, subject, next.seq, from).await?
            )));
        }
    }
    // Classify it as the checker would have (an unreadable message restarts the chain).
    let link = LastLink::of(prev.seq, prev.decode().as_ref());
    Ok(Anchor::Link(link))
}

/// The newest sequence of `subject` before `from`, knowing one at `seq`.
async fn last_before(
    stream: &async_nats::jetstream::stream::Stream,
    subject: &str,
    mut seq: u64,
    from: u64,
) -> anyhow::Result<u64> {
    while let Some(next) = inventory_bus::next_on_subject(stream, subject, seq + 1).await? {
        if next.seq >= from {
            break;
        }
        seq = next.seq;
    }
    Ok(seq)
}

/// Checks an anchor recorded earlier: the asset event at `seq` has chain hash `expected`.
async fn check_anchor(
    stream: &async_nats::jetstream::stream::Stream,
    seq: u64,
    expected: &str,
    tip: u64,
) -> anyhow::Result<Option<Broken>> {
    let broken = |subject: String, key: Option<String>, problem: String| {
        Some(Broken {
            seq,
            subject,
            key,
            problem: format!("recorded anchor {seq}:{expected}: {problem}"),
        })
    };
    if seq > tip {
        return Ok(broken(
            String::new(),
            None,
            format!("the stream ends at {tip} (was it replaced?)"),
        ));
    }
    let Some(msg) = inventory_bus::message_at(stream, seq).await? else {
        return Ok(broken(
            String::new(),
            None,
            "no such message (removed)".into(),
        ));
    };
    Ok(match msg.decode() {
        Ok(ev) if ev.chainhash.as_deref() == Some(expected) => None,
        Ok(ev) => broken(
            msg.subject.clone(),
            ev.asset_key().map(str::to_owned),
            format!(
                "the event there has chainhash {} (history rewritten)",
                ev.chainhash.unwrap_or_default()
            ),
        ),
        Err(reason) => broken(
            msg.subject.clone(),
            None,
            format!("the message there is not an asset event ({reason})"),
        ),
    })
}

/// `inventory verify`.
pub async fn run(
    global: &Global,
    args: VerifyArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    if args.checkpoints {
        // The signed checkpoints (src/evidence/verify.rs), not the chains.
        return crate::evidence::verify::run(global, &args, cancel).await;
    }
    let mut stream = crate::open_stream(global, "inventory-verify").await?;
    let info = stream
        .info()
        .await
        .context("reading the INVENTORY stream's state")?;
    let config = &info.config;
    let state = &info.state;
    let (stream_first, tip) = (state.first_sequence, state.last_sequence);
    info!(
        first_seq = stream_first,
        last_seq = tip,
        messages = state.messages,
        deny_delete = config.deny_delete,
        deny_purge = config.deny_purge,
        "verifying the stream"
    );
    if !config.deny_delete || !config.deny_purge {
        return Ok(fail(&Broken {
            seq: 0,
            subject: String::new(),
            key: None,
            problem: format!(
                "the stream allows removing messages (deny_delete {}, deny_purge {}): its history cannot be proven complete",
                config.deny_delete, config.deny_purge
            ),
        }));
    }
    let mut from = args.from.unwrap_or(1).max(1);
    let mut early_warnings = Vec::new();
    if stream_first > from && tip > 0 {
        if config.max_age.is_zero() || args.from.is_none() {
            // Without an age limit they were removed; with one they expired, and nothing here
            // proves what they held: the auditor must choose the window explicitly.
            let why = if config.max_age.is_zero() {
                "removed; the stream has no age limit".to_owned()
            } else {
                format!(
                    "expired under the stream's max_age of {}s; verify the remaining window explicitly with --from {stream_first}",
                    config.max_age.as_secs()
                )
            };
            return Ok(fail(&Broken {
                seq: from,
                subject: String::new(),
                key: None,
                problem: format!(
                    "messages {from}..={} are missing from the stream ({why})",
                    stream_first - 1
                ),
            }));
        }
        early_warnings.push(format!(
            "messages {from}..={} expired (stream max_age {}s); verifying from {stream_first}",
            stream_first - 1,
            config.max_age.as_secs()
        ));
        from = stream_first;
    }
    let mut v = Verifier::new(from, from > 1).with_accepted(args.accept.iter().copied());
    for w in early_warnings {
        v.warn(from, "", w);
    }
    let started = Instant::now();
    if from <= tip {
        let (pending, messages) =
            inventory_bus::follow_from(&stream, STREAM_SUBJECTS, Start::Sequence(from)).await?;
        // Decoding and hashing run on blocking threads, a few chunks ahead, in order; the
        // chains are checked here, in stream order.
        let mut prepared = Box::pin(
            messages
                .ready_chunks(PREPARE_CHUNK)
                .map(|chunk| {
                    tokio::task::spawn_blocking(move || {
                        chunk
                            .into_iter()
                            .map(|m| m.map(prepare))
                            .collect::<Vec<_>>()
                    })
                })
                .buffered(PREPARE_AHEAD),
        );
        let mut read = 0u64;
        let mut last_log = Instant::now();
        'read: while read < pending {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => anyhow::bail!("verify interrupted at seq {}", v.stats().last_seq),
                c = prepared.next() => match c {
                    Some(c) => c.context("a verify worker failed")?,
                    None => anyhow::bail!("the stream consumer ended at seq {}", v.stats().last_seq),
                },
            };
            for item in chunk {
                let p = item?;
                read += 1;
                let step = match v.check_prepared(&p) {
                    Ok(step) => step,
                    Err(broken) => return Ok(fail(&broken)),
                };
                if let Step::NeedAnchor { subject, prevseq } = step {
                    let anchor =
                        resolve_anchor(&stream, &subject, prevseq, from, stream_first).await?;
                    v.set_anchor(&subject, anchor);
                    match v.check_prepared(&p) {
                        Ok(Step::Checked) => {}
                        Ok(Step::NeedAnchor { .. }) => {
                            anyhow::bail!("anchor of {subject} not taken (bug)")
                        }
                        Err(broken) => return Ok(fail(&broken)),
                    }
                }
                if read >= pending {
                    break 'read;
                }
            }
            if last_log.elapsed().as_secs() >= 5 {
                last_log = Instant::now();
                info!(seq = v.stats().last_seq, read, pending, "verifying");
            }
        }
        if let Err(broken) = v.finish(tip) {
            return Ok(fail(&broken));
        }
    }
    // An acceptance names a reviewed breach; one that matches none is a mistake (or the stream
    // changed since the review), never silently ignored.
    if let Some(seq) = args
        .accept
        .iter()
        .copied()
        .find(|s| *s < from || *s > v.stats().last_seq)
        .or_else(|| v.unused_accepts().next())
    {
        return Ok(fail(&Broken {
            seq,
            subject: String::new(),
            key: None,
            problem: format!(
                "--accept {seq} names no integrity breach in the verified window {from}..={}",
                v.stats().last_seq
            ),
        }));
    }
    // Anchors recorded elsewhere: the event at each sequence still carries that chain hash.
    for (seq, expected) in &args.anchor {
        if let Some(broken) = check_anchor(&stream, *seq, expected, tip).await? {
            return Ok(fail(&broken));
        }
    }
    let elapsed = started.elapsed();
    let stats = v.stats();
    let rate = stats.messages as f64 / elapsed.as_secs_f64().max(1e-9);
    debug!(
        messages = stats.messages,
        seconds = elapsed.as_secs_f64(),
        events_per_sec = rate as u64,
        "verify throughput"
    );
    let mut line = format!(
        "verified: {} events (seqs {}..={}; {} asset events, {} sweeps) on {} assets, last seq {}: chains, links and sequence continuity intact",
        stats.messages,
        stats.first_seq,
        stats.last_seq,
        stats.asset_events,
        stats.sweeps,
        v.assets(),
        stats.last_seq
    );
    if let Some((seq, chainhash)) = &stats.newest {
        line.push_str(&format!(
            "; newest asset event (record it as --anchor): {seq}:{chainhash}"
        ));
    }
    if !args.anchor.is_empty() {
        line.push_str(&format!("; {} recorded anchors match", args.anchor.len()));
    }
    if stats.anchored > 0 {
        line.push_str(&format!(
            "; {} chains anchored before seq {}",
            stats.anchored, stats.first_seq
        ));
    }
    if !stats.accepted.is_empty() {
        let listed: Vec<String> = stats
            .accepted
            .iter()
            .map(|w| format!("seq {} ({}) {}", w.seq, w.subject, w.reason))
            .collect();
        line.push_str(&format!(
            "; {} breaches ACCEPTED by --accept: {}",
            stats.accepted.len(),
            listed.join("; ")
        ));
    }
    if stats.warning_count > 0 {
        let first: Vec<String> = stats
            .warnings
            .iter()
            .map(|w| format!("seq {} {}", w.seq, w.reason))
            .collect();
        line.push_str(&format!(
            "; {} warnings: {}",
            stats.warning_count,
            first.join("; ")
        ));
    } else {
        line.push_str("; 0 warnings");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Reports the first broken link on stdout and stderr; the exit code of a failed verification.
fn fail(broken: &Broken) -> ExitCode {
    let line = format!("verify FAILED: {broken}");
    let _ = writeln!(std::io::stdout().lock(), "{line}");
    let _ = writeln!(std::io::stderr().lock(), "error: {line}");
    ExitCode::from(EXIT_BROKEN)
}
