//! `inventory watch`: prints asset changes as they happen, from a NATS ordered consumer (no
//! server-side state) on `inventory.asset.<provider|*>.<kind|*>.*`.
//!
//! Output (see docs/subscribing.md): one line per event,
//! `<seq> <recorded at> <type> <asset key> <name> <status>`, or with `--json` one object per line:
//! `{"seq": <stream seq>, "subject": <NATS subject>, "recorded_at": <RFC 3339>, "event": <the
//! CloudEvent as received>}` (plus `"error"` when the message does not decode).
//!
//! It survives broker restarts: when the consumer fails it is re-created from the sequence after
//! the last one printed, so nothing is skipped or printed twice.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use inventory_bus::{Start, StoredMessage};
use inventory_schemas::{asset_filter, decode, EventData};
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
    DateTime::<Utc>::from_timestamp_nanos(i64::try_from(msg.recorded_at_nanos).unwrap_or(i64::MAX))
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `<seq> <recorded at> <type> <asset key> <name> <status>`.
pub fn human_line(msg: &StoredMessage) -> String {
    let at = recorded_at(msg);
    match decode(&msg.payload) {
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
            "{:>8}  {at}  {:<10}  {}  (does not decode: {e})",
            msg.seq, "rejected", msg.subject
        ),
    }
}

/// `{"seq", "subject", "recorded_at", "event"}` (+ `"error"` when it does not decode).
pub fn json_line(msg: &StoredMessage) -> String {
    let event: serde_json::Value =
        serde_json::from_slice(&msg.payload).unwrap_or(serde_json::Value::Null);
    let mut line = serde_json::json!({
        "seq": msg.seq,
        "subject": msg.subject,
        "recorded_at": recorded_at(msg),
        "event": event,
    });
    if let Err(e) = decode(&msg.payload) {
        line["error"] = serde_json::Value::String(e.to_string());
    }
    line.to_string()
}
