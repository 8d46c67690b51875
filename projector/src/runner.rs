//! The projector loop: follow the stream from the checkpoint with an ordered consumer (no
//! server-side state), decode on the async side, and apply batches on a dedicated writer thread
//! (DuckDB work never blocks the executor). Nothing is acknowledged: the checkpoint committed with
//! each batch is the only progress marker, so a crash replays from it with no gap and no duplicate.

use std::time::{Duration, Instant};

use async_nats::jetstream::stream::Stream as JsStream;
use futures::StreamExt;
use inventory_schemas::STREAM_SUBJECTS;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::store::{Incoming, Store};
use crate::ProjectorError;

/// Tuning and stop conditions of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most events per transaction.
    pub batch_max: usize,
    /// Longest wait to fill a batch once it has one event.
    pub batch_wait: Duration,
    /// Stop once this sequence is applied (replays).
    pub stop_at: Option<u64>,
    /// Stop once the stream's tip at start is applied (one-shot `project`).
    pub stop_when_caught_up: bool,
    /// How often the stream's tip is refreshed for the lag figure.
    pub tip_refresh: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch_max: 4096,
            batch_wait: Duration::from_millis(20),
            stop_at: None,
            stop_when_caught_up: false,
            tip_refresh: Duration::from_secs(2),
        }
    }
}

/// Progress of the projector, published on a watch channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Last stream sequence committed to the store.
    pub applied_seq: u64,
    /// The stream's last sequence when the projector started.
    pub tip_at_start: u64,
    /// The stream's last sequence as last seen (refreshed periodically).
    pub stream_last_seq: u64,
    /// Whether `applied_seq` has reached `tip_at_start` (readiness).
    pub caught_up: bool,
    /// Events applied and rejected by this run.
    pub applied_total: u64,
    pub rejected_total: u64,
    /// Set when the projector stopped on an error.
    pub failed: Option<String>,
}

impl Status {
    /// Events in the stream not yet applied.
    pub fn lag(&self) -> u64 {
        self.stream_last_seq.saturating_sub(self.applied_seq)
    }
}

/// Runs the projector until cancelled, a stop condition is met, or an error. Returns the store.
pub async fn run(
    stream: JsStream,
    store: Store,
    cancel: CancellationToken,
    status: watch::Sender<Status>,
    opts: RunOptions,
) -> Result<Store, ProjectorError> {
    let mut stream = stream;
    let tip = inventory_bus::last_sequence(&mut stream).await?;
    let start = store.checkpoint();
    status.send_modify(|s| {
        s.applied_seq = start;
        s.tip_at_start = tip;
        s.stream_last_seq = tip.max(start);
        s.caught_up = start >= tip;
    });
    info!(checkpoint = start, stream_tip = tip, "projector starting");
    // Nothing past the tip exists yet, so a stop point beyond it means "the tip".
    let target = opts
        .stop_at
        .map(|s| s.min(tip))
        .or(opts.stop_when_caught_up.then_some(tip));
    if target.is_some_and(|t| start >= t) {
        return Ok(store);
    }

    let (tx, rx) = mpsc::channel::<Vec<Incoming>>(4);
    let (done_tx, done_rx) = oneshot::channel();
    let writer_status = status.clone();
    std::thread::Builder::new()
        .name("projector-writer".into())
        .spawn(move || {
            let _ = done_tx.send(writer(store, rx, writer_status, tip));
        })
        .map_err(|_| ProjectorError::WriterGone)?;

    let fed = feed(&stream, start, tx, &cancel, &status, &opts, target).await;
    let store = done_rx.await.map_err(|_| ProjectorError::WriterGone)??;
    fed?;
    Ok(store)
}

fn writer(
    mut store: Store,
    mut rx: mpsc::Receiver<Vec<Incoming>>,
    status: watch::Sender<Status>,
    tip: u64,
) -> Result<Store, ProjectorError> {
    while let Some(batch) = rx.blocking_recv() {
        let t0 = Instant::now();
        match store.apply(&batch) {
            Ok(out) => {
                debug!(
                    events = batch.len(),
                    last_seq = out.last_seq,
                    ms = t0.elapsed().as_millis() as u64,
                    "batch committed"
                );
                status.send_modify(|s| {
                    s.applied_seq = out.last_seq;
                    s.stream_last_seq = s.stream_last_seq.max(out.last_seq);
                    s.applied_total += out.applied;
                    s.rejected_total += out.rejected;
                    if !s.caught_up && out.last_seq >= tip {
                        info!(seq = out.last_seq, "projector caught up with the stream");
                        s.caught_up = true;
                    }
                });
            }
            Err(e) => {
                error!(error = %e, "projector cannot commit a batch; stopping");
                status.send_modify(|s| s.failed = Some(e.to_string()));
                return Err(e.into());
            }
        }
    }
    Ok(store)
}

async fn feed(
    stream: &JsStream,
    start: u64,
    tx: mpsc::Sender<Vec<Incoming>>,
    cancel: &CancellationToken,
    status: &watch::Sender<Status>,
    opts: &RunOptions,
    target: Option<u64>,
) -> Result<(), ProjectorError> {
    let mut sent = start;
    let mut backoff = Duration::from_millis(100);
    let mut tip_timer = tokio::time::interval(opts.tip_refresh);
    tip_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    'follow: loop {
        let mut messages = match inventory_bus::follow(stream, STREAM_SUBJECTS, sent + 1).await {
            Ok(m) => Box::pin(m),
            Err(e) => {
                warn!(error = %e, from = sent + 1, "cannot follow the stream; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        let mut batch: Vec<Incoming> = Vec::with_capacity(opts.batch_max);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let flush_at =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    if !batch.is_empty() {
                        let _ = tx.send(std::mem::take(&mut batch)).await;
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep_until(flush_at), if deadline.is_some() => {
                    deadline = None;
                    if tx.send(std::mem::take(&mut batch)).await.is_err() {
                        return Err(ProjectorError::WriterGone);
                    }
                }
                next = messages.next() => match next {
                    Some(Ok(msg)) => {
                        backoff = Duration::from_millis(100);
                        if msg.seq <= sent {
                            continue;
                        }
                        sent = msg.seq;
                        batch.push(Incoming::from(msg));
                        if deadline.is_none() {
                            deadline = Some(tokio::time::Instant::now() + opts.batch_wait);
                        }
                        let reached = target.is_some_and(|t| sent >= t);
                        if batch.len() >= opts.batch_max || reached {
                            deadline = None;
                            if tx.send(std::mem::take(&mut batch)).await.is_err() {
                                return Err(ProjectorError::WriterGone);
                            }
                        }
                        if reached {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, after = sent, "stream read failed; resuming from the last event read");
                        if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).await.is_err() {
                            return Err(ProjectorError::WriterGone);
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue 'follow;
                    }
                    None => {
                        warn!(after = sent, "stream consumer ended; resubscribing");
                        continue 'follow;
                    }
                },
                _ = tip_timer.tick() => {
                    let mut s = stream.clone();
                    if let Ok(last) = inventory_bus::last_sequence(&mut s).await {
                        status.send_modify(|st| st.stream_last_seq = st.stream_last_seq.max(last));
                    }
                }
            }
        }
    }
}
