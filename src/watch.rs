//! `inventory watch`: prints asset changes as they happen, from a NATS ordered consumer (no
//! server-side state) on `inventory.asset.<provider|*>.<kind|*>.*`.
//!
//! Output (see docs/subscribing.md): one line per event,
//! `<seq> <recorded at> <type> <asset key> <name> <status>`, or with `--json` one object per line:
//! `{"seq": <stream seq>, "subject": <NATS subject>, "recorded_at": <RFC 3339>, "event": <the
//! CloudEvent as received>}`.
//!
//! Every message is judged by the trust rule ([`StoredMessage::decode`]): one that is not a valid
//! event of the subject it was stored on (forged, from another collector's scope, undecodable)
//! is never shown as a change: it prints as `rejected` with the reason (with `--json`, `"event"`
//! is kept as received and `"rejected": {"reason", "detail"}` is added), exactly as the
//! projector refuses to apply it.
//!
//! It survives broker restarts: when the consumer fails it is re-created from the sequence after
//! the last one printed, so nothing is skipped or printed twice.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use chrono::SecondsFormat;
use futures::StreamExt;
use inventory_bus::{Start, StoredMessage};
use inventory_schemas::{asset_filter, EventData};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::{Global, Point, WatchArgs};

/// `inventory watch`.
pub async fn run(
    global: &Global,
    args: WatchArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let stream = crate::open_stream(global, "inventory-watch").await?;
    let filter = asset_filter(args.provider.as_deref(), args.kind.as_deref());
    // "New" is pinned to a sequence now, so a reconnect before the first event loses nothing.
    let first = match args.since {
        None => {
            let mut s = stream.clone();
            Start::Sequence(inventory_bus::last_sequence(&mut s).await? + 1)
        }
        Some(Point::Seq(n)) => Start::Sequence(n),
        Some(Point::Time(t)) => Start::Time(SystemTime::from(t)),
    };
    info!(filter = %filter, start = ?first, "watching");
    let mut last_printed: Option<u64> = None;
    let mut backoff = Duration::from_millis(100);
    'follow: loop {
        let start = last_printed.map_or(first, |s| Start::Sequence(s + 1));
        let mut messages = match inventory_bus::follow_from(&stream, &filter, start).await {
            Ok((_, m)) => Box::pin(m),
            Err(e) => {
                warn!(error = %e, ?start, "cannot follow the stream; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(ExitCode::SUCCESS),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(ExitCode::SUCCESS),
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        backoff = Duration::from_millis(100);
                        if last_printed.is_some_and(|l| msg.seq <= l) {
                            continue;
                        }
                        let line = if args.json { json_line(&msg) } else { human_line(&msg) };
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                            // The reader went away (e.g. `| head`): done.
                            return Ok(ExitCode::SUCCESS);
                        }
                        last_printed = Some(msg.seq);
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, after = ?last_printed, "stream read failed; resuming after the last event printed");
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(ExitCode::SUCCESS),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue 'follow;
                    }
                    None => {
                        warn!(after = ?last_printed, "stream consumer ended; resubscribing");
                        continue 'follow;
                    }
                },
            }
        }
    }
}

fn recorded_at(msg: &StoredMessage) -> String {
    msg.recorded_at()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `<seq> <recorded at> <type> <asset key> <name> <status>`.
pub fn human_line(msg: &StoredMessage) -> String {
    let at = recorded_at(msg);
    match msg.decode() {
        Ok(ev) => {
            let key = ev.subject.as_deref().unwrap_or("-");
            let (name, status) = match &ev.data {
                EventData::Asset(a) => (a.name.as_str(), a.status.as_str()),
                EventData::Tombstone(t) => (t.name.as_str(), "deleted"),
                EventData::Sweep(s) => (s.scope.as_str(), s.status.as_str()),
            };
            format!(
                "{:>8}  {at}  {:<10}  {key}  {name:?}  {status}",
                msg.seq,
                ev.ty.short()
            )
        }
        Err(e) => format!(
            "{:>8}  {at}  {:<10}  {}  (not a valid event of its subject: {e})",
            msg.seq, "rejected", msg.subject
        ),
    }
}

/// `{"seq", "subject", "recorded_at", "event"}` (+ `"rejected"` when it is not a valid event of
/// its subject).
pub fn json_line(msg: &StoredMessage) -> String {
    let event: serde_json::Value =
        serde_json::from_slice(&msg.payload).unwrap_or(serde_json::Value::Null);
    let mut line = serde_json::json!({
        "seq": msg.seq,
        "subject": msg.subject,
        "recorded_at": recorded_at(msg),
        "event": event,
    });
    if let Err(e) = msg.decode() {
        line["rejected"] = serde_json::json!({
            "reason": e.reason.as_str(),
            "detail": e.detail,
        });
    }
    line.to_string()
}
