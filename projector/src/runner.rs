//! The projector loop: follow the stream from the checkpoint with an ordered consumer (no
//! server-side state), decode on the async side, and apply batches on a dedicated writer thread
//! (DuckDB work never blocks the executor). Nothing is acknowledged: the checkpoint committed with
//! each batch is the only progress marker, so a crash replays from it with no gap and no duplicate.
//!
//! A batch (one transaction) travels to the writer in chunks, which it appends as they come and
//! commits with the last one: while catching up, batches are large (whole DuckDB row groups,
//! written once, straight to the file) without being held in memory; once caught up, a batch
//! waits at most `batch_wait` for company.
//!
//! The read model belongs to one stream ([`crate::identity`]): the stream is checked before the
//! run starts, before the first message of every (re)created consumer is used, and each time the
//! tip is refreshed. A stream deleted and created again stops the run with
//! [`ProjectorError::StreamChanged`] before any of its messages is applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::Stream as JsStream;
use futures::StreamExt;
use inventory_schemas::STREAM_SUBJECTS;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::identity;
use crate::store::{Incoming, Store};
use crate::ProjectorError;

/// Most messages per chunk sent to the writer (a batch is one or more chunks).
const CHUNK: usize = 1024;
/// Most message bytes per chunk: a chunk of large events (up to NATS's payload limit, 1 MB by
/// default) is cut early.
const CHUNK_BYTES: usize = 4 << 20;
/// Chunks in flight to the writer (also bounded in bytes by [`IN_FLIGHT_BYTES`]).
const CHUNKS_IN_FLIGHT: usize = 64;
/// Most message bytes (payloads and subjects) read from the stream and not yet appended by the
/// writer: while catching up, enough (about 50k events of 1.3 KB) for the feed to keep reading
/// while the writer flushes a row group or commits, whatever the size of the events. Messages the
/// writer has appended are freed by the feed at its next send, so at most about twice this is
/// held at once.
pub const IN_FLIGHT_BYTES: usize = 64 << 20;
/// Default of [`RunOptions::batch_max_bytes`], in MiB.
pub const DEFAULT_BATCH_MAX_MIB: u64 = 512;
/// Default of [`RunOptions::batch_max_bytes`].
pub const DEFAULT_BATCH_MAX_BYTES: usize = (DEFAULT_BATCH_MAX_MIB as usize) << 20;

/// Tuning and stop conditions of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most events per transaction. DuckDB writes the rows of a transaction that fills whole
    /// row groups (122,880 rows) directly to the database file, which is what makes replays fast;
    /// a multiple of the row group size avoids partial row groups that later checkpoints rewrite.
    /// While catching up DuckDB holds up to this many rows in memory (about 1.3 KB each).
    pub batch_max: usize,
    /// Most message bytes per transaction: the writer holds the newest document of every asset
    /// the open transaction changed, so large events end a batch before `batch_max` does.
    pub batch_max_bytes: usize,
    /// Longest wait to fill a batch once it has one event, once caught up with the stream.
    pub batch_wait: Duration,
    /// The same while catching up with the stream's tip at start (throughput over latency:
    /// nothing is ready before the projector has caught up).
    pub catchup_batch_wait: Duration,
    /// Stop once this sequence is applied (replays).
    pub stop_at: Option<u64>,
    /// Stop once the stream's tip at start is applied (one-shot `project`).
    pub stop_when_caught_up: bool,
    /// How often the stream's tip is refreshed for the lag figure.
    pub tip_refresh: Duration,
}

/// A consumer that delivers nothing for this long while the stream holds newer events is
/// replaced by a new one from the last event read. After its server dies, async-nats' ordered
/// consumer can stay silent without an error (measured on nats-server 2.9.10 with a 3-node
/// cluster, stream leader SIGKILLed while following live: minutes), so the projector does not
/// wait for it.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(10);

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            batch_max: 2 * 122_880,
            batch_max_bytes: DEFAULT_BATCH_MAX_BYTES,
            batch_wait: Duration::from_millis(20),
            catchup_batch_wait: Duration::from_secs(10),
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
    /// Set when the projector stopped because the stream is not the one the read model was built
    /// from (deleted and created again, or another stream): why. The read model is frozen; the
    /// API rebuilds it.
    pub stream_changed: Option<String>,
    /// When the projector last committed a batch, or found nothing left to apply in the stream
    /// (readiness: a projector behind the stream with no progress since long is stalled).
    pub progressed_at: Option<Instant>,
    /// When the projector last reached the stream (read its state, or committed messages it
    /// had just read from it).
    pub stream_seen_at: Option<Instant>,
}

impl Status {
    /// Whether the read model may be served as current: caught up with the stream's tip at
    /// start, not stopped on an error, and not being rebuilt for another stream. `/readyz` and
    /// the `inventory_projector_ready` metric both answer this.
    pub fn is_ready(&self) -> bool {
        self.caught_up && self.failed.is_none() && self.stream_changed.is_none()
    }

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
    let mut store = store;
    let state = inventory_bus::stream_state(&mut stream).await?;
    let start = store.checkpoint();
    let recorded = store.stream_identity().cloned();
    identity::check_start(&stream, recorded.as_ref(), start, &state)
        .await
        .map_err(|e| stopped_on(&status, e))?;
    let bound = match recorded {
        Some(id) => Bound {
            created: id.created,
            described: id.to_string(),
        },
        None => {
            store.bind_stream(state.created);
            Bound {
                created: state.created,
                described: identity::describe_created(state.created),
            }
        }
    };
    let tip = state.last_seq;
    status.send_modify(|s| {
        // The stream is the read model's (checked above).
        s.stream_changed = None;
        s.applied_seq = start;
        s.tip_at_start = tip;
        s.stream_last_seq = tip.max(start);
        s.caught_up = start >= tip;
        let now = Some(Instant::now());
        s.progressed_at = now;
        s.stream_seen_at = now;
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

    let (tx, rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_BYTES));
    // Chunks the writer is done with go back to the feed, which frees them: the messages were
    // allocated there, and freeing on the allocating thread is much cheaper.
    let (recycle_tx, recycle_rx) = mpsc::unbounded_channel::<Vec<Incoming>>();
    let (done_tx, done_rx) = oneshot::channel();
    let writer_status = status.clone();
    std::thread::Builder::new()
        .name("projector-writer".into())
        .spawn(move || {
            let _ = done_tx.send(writer(store, rx, recycle_tx, writer_status, tip));
        })
        .map_err(|_| ProjectorError::WriterGone)?;

    let mut pending = Pending {
        tx,
        recycled: recycle_rx,
        chunk: Vec::with_capacity(CHUNK),
        chunk_bytes: 0,
        budget,
        in_batch: 0,
        batch_bytes: 0,
        deadline: None,
    };
    let fed = feed(
        &stream,
        &bound,
        start,
        tip,
        &mut pending,
        &cancel,
        &status,
        &opts,
        target,
    )
    .await;
    drop(pending);
    let store = done_rx.await.map_err(|_| ProjectorError::WriterGone)??;
    fed.map_err(|e| stopped_on(&status, e))?;
    Ok(store)
}

/// The stream a run is bound to: the one the read model records, or for an empty read model
/// the stream found at the start.
struct Bound {
    created: chrono::DateTime<chrono::Utc>,
    /// How it is named in a [`ProjectorError::StreamChanged`].
    described: String,
}

impl Bound {
    /// Checks the stream's state right now against the bound stream (`read`: the last sequence
    /// read from it).
    async fn check(&self, stream: &JsStream, read: u64) -> Result<(), ProjectorError> {
        let mut stream = stream.clone();
        let state = inventory_bus::stream_state(&mut stream).await?;
        identity::check_state(self.created, &self.described, read, &state)
    }
}

/// Reports a stop on another stream in the status (the writer reports its own errors).
fn stopped_on(status: &watch::Sender<Status>, e: ProjectorError) -> ProjectorError {
    if e.kind() == crate::ErrorKind::StreamChanged {
        // The caller reports it (refusal, or a rebuild): debug only, not a second error line.
        debug!(error = %e, "the stream is not the one the read model was built from; stopping");
        status.send_modify(|s| s.stream_changed = Some(e.to_string()));
    }
    e
}

/// What a message holds in memory while in flight (its payload and subject).
fn message_bytes(msg: &Incoming) -> usize {
    msg.payload.len() + msg.subject.len()
}

/// Consecutive messages of a batch; `commit` ends the batch.
struct Chunk {
    messages: Vec<Incoming>,
    commit: bool,
    /// The chunk's share of [`IN_FLIGHT_BYTES`], given back once the writer has appended it.
    bytes: Option<OwnedSemaphorePermit>,
}

fn writer(
    mut store: Store,
    mut rx: mpsc::Receiver<Chunk>,
    recycle: mpsc::UnboundedSender<Vec<Incoming>>,
    status: watch::Sender<Status>,
    tip: u64,
) -> Result<Store, ProjectorError> {
    let fail = |e: crate::StoreError, what: &str| {
        error!(error = %e, "projector cannot {what} a batch; stopping");
        status.send_modify(|s| s.failed = Some(e.to_string()));
        ProjectorError::from(e)
    };
    // Catching up, DuckDB runs single-threaded: the writer is its only client, and its worker
    // threads would only contend with decoding for the CPU.
    let mut bulk = tip > store.checkpoint();
    store.set_bulk(bulk).map_err(|e| fail(e, "write"))?;
    let mut started: Option<Instant> = None;
    let mut open = true;
    while open {
        let chunk = rx.blocking_recv();
        let commit = match chunk {
            Some(chunk) => {
                started.get_or_insert_with(Instant::now);
                store
                    .append(&chunk.messages)
                    .map_err(|e| fail(e, "write"))?;
                drop(chunk.bytes);
                let _ = recycle.send(chunk.messages);
                chunk.commit
            }
            // The feed stopped: what it sent was read in order and may be committed.
            None => {
                open = false;
                true
            }
        };
        if !commit || store.pending() == 0 {
            continue;
        }
        let events = store.pending();
        let out = store.commit().map_err(|e| fail(e, "commit"))?;
        debug!(
            events,
            last_seq = out.last_seq,
            ms = started.take().map_or(0, |t| t.elapsed().as_millis() as u64),
            "batch committed"
        );
        if bulk && out.last_seq >= tip {
            bulk = false;
            store.set_bulk(false).map_err(|e| fail(e, "write"))?;
            // The catch-up's buffers are freed: give them back now, not a purge delay later, and
            // before saying so, so that a server is ready at its steady size (issue 10: ≤ 1 GiB
            // resident at 1,000,000 events).
            inventory_allocator::release_free_memory();
        }
        status.send_modify(|s| {
            s.applied_seq = out.last_seq;
            s.stream_last_seq = s.stream_last_seq.max(out.last_seq);
            s.applied_total += out.applied;
            s.rejected_total += out.rejected;
            let now = Some(Instant::now());
            s.progressed_at = now;
            s.stream_seen_at = now;
            if !s.caught_up && out.last_seq >= tip {
                info!(seq = out.last_seq, "projector caught up with the stream");
                s.caught_up = true;
            }
        });
    }
    if bulk {
        store.set_bulk(false)?;
    }
    Ok(store)
}

/// The feed's side of the writer channel and the batch being assembled.
struct Pending {
    tx: mpsc::Sender<Chunk>,
    recycled: mpsc::UnboundedReceiver<Vec<Incoming>>,
    chunk: Vec<Incoming>,
    /// Message bytes of `chunk`.
    chunk_bytes: usize,
    /// Message bytes that may be in flight to the writer ([`IN_FLIGHT_BYTES`]).
    budget: Arc<Semaphore>,
    /// Messages of the batch, sent or not.
    in_batch: usize,
    /// Message bytes of the batch, sent or not.
    batch_bytes: usize,
    /// When the batch must be committed at the latest.
    deadline: Option<tokio::time::Instant>,
}

impl Pending {
    fn push(&mut self, msg: Incoming, wait: Duration) {
        let bytes = message_bytes(&msg);
        self.chunk.push(msg);
        self.chunk_bytes += bytes;
        self.batch_bytes += bytes;
        self.in_batch += 1;
        if self.deadline.is_none() {
            self.deadline = Some(tokio::time::Instant::now() + wait);
        }
    }

    /// Sends the chunk (ending the batch if `commit`); an error when the writer is gone.
    async fn send(&mut self, commit: bool) -> Result<(), ProjectorError> {
        if self.chunk.is_empty() && !(commit && self.in_batch > 0) {
            return Ok(());
        }
        if commit {
            self.in_batch = 0;
            self.batch_bytes = 0;
            self.deadline = None;
        }
        // Reuse a chunk the writer is done with (freeing its messages here).
        let mut next = Vec::new();
        while let Ok(mut old) = self.recycled.try_recv() {
            old.clear();
            next = old;
        }
        if next.capacity() == 0 {
            next.reserve(CHUNK);
        }
        // Wait for the writer to have appended enough of what is in flight (a chunk larger than
        // the whole budget waits for all of it).
        let want = u32::try_from(self.chunk_bytes.min(IN_FLIGHT_BYTES)).unwrap_or(u32::MAX);
        let bytes = if want == 0 {
            None
        } else {
            Some(
                Arc::clone(&self.budget)
                    .acquire_many_owned(want)
                    .await
                    .map_err(|_| ProjectorError::WriterGone)?,
            )
        };
        self.chunk_bytes = 0;
        let messages = std::mem::replace(&mut self.chunk, next);
        self.tx
            .send(Chunk {
                messages,
                commit,
                bytes,
            })
            .await
            .map_err(|_| ProjectorError::WriterGone)
    }
}

#[allow(clippy::too_many_arguments)]
async fn feed(
    stream: &JsStream,
    bound: &Bound,
    start: u64,
    tip: u64,
    pending: &mut Pending,
    cancel: &CancellationToken,
    status: &watch::Sender<Status>,
    opts: &RunOptions,
    target: Option<u64>,
) -> Result<(), ProjectorError> {
    let mut sent = start;
    let mut backoff = Duration::from_millis(100);
    let mut tip_timer = tokio::time::interval(opts.tip_refresh);
    tip_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let batch_max = opts.batch_max.max(1);
    'follow: loop {
        let mut received_at = tokio::time::Instant::now();
        let mut messages =
            match inventory_bus::follow_marked(stream, STREAM_SUBJECTS, sent + 1).await {
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
        loop {
            let flush_at = pending
                .deadline
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    // Whatever was read is committed; the writer ends when the channel closes.
                    let _ = pending.send(true).await;
                    return Ok(());
                }
                _ = tokio::time::sleep_until(flush_at), if pending.deadline.is_some() => {
                    pending.send(true).await?;
                }
                next = messages.next() => match next {
                    Some(Ok(followed)) => {
                        if followed.new_consumer {
                            // A consumer created at the start, after lost heartbeats, or because
                            // the stream was deleted (and maybe created again): nothing it delivers
                            // is used before the stream is known to be the read model's.
                            match bound.check(stream, sent).await {
                                Ok(()) => {}
                                Err(e) if e.kind() == crate::ErrorKind::StreamChanged => {
                                    // What was read before is the old stream's: keep it.
                                    let _ = pending.send(true).await;
                                    return Err(e);
                                }
                                Err(e) => {
                                    warn!(error = %e, after = sent, "cannot check the stream for a new consumer; resubscribing");
                                    pending.send(true).await?;
                                    tokio::select! {
                                        _ = cancel.cancelled() => return Ok(()),
                                        _ = tokio::time::sleep(backoff) => {}
                                    }
                                    backoff = (backoff * 2).min(Duration::from_secs(10));
                                    continue 'follow;
                                }
                            }
                        }
                        let msg = followed.message;
                        received_at = tokio::time::Instant::now();
                        backoff = Duration::from_millis(100);
                        if msg.seq <= sent {
                            continue;
                        }
                        sent = msg.seq;
                        let wait = if sent < tip { opts.catchup_batch_wait } else { opts.batch_wait };
                        pending.push(Incoming::from(msg), wait);
                        let reached = target.is_some_and(|t| sent >= t);
                        // Reaching the tip at start ends the batch: the projector is then ready.
                        let commit = pending.in_batch >= batch_max
                            || pending.batch_bytes >= opts.batch_max_bytes
                            || reached
                            || sent == tip;
                        if commit || pending.chunk.len() >= CHUNK || pending.chunk_bytes >= CHUNK_BYTES {
                            pending.send(commit).await?;
                        }
                        if reached {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, after = sent, "stream read failed; resuming from the last event read");
                        pending.send(true).await?;
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
                    match inventory_bus::stream_state(&mut s).await {
                        Ok(state) => {
                            if let Err(e) = identity::check_state(bound.created, &bound.described, sent, &state) {
                                let _ = pending.send(true).await;
                                return Err(e);
                            }
                            if state.last_seq > sent && received_at.elapsed() >= RESUBSCRIBE_AFTER {
                                warn!(after = sent, stream_last_seq = state.last_seq, silent_s = received_at.elapsed().as_secs(), "the stream's consumer delivers nothing though the stream holds newer events; resubscribing from the last event read");
                                pending.send(true).await?;
                                continue 'follow;
                            }
                            status.send_modify(|st| {
                                st.stream_last_seq = st.stream_last_seq.max(state.last_seq);
                                let now = Some(Instant::now());
                                st.stream_seen_at = now;
                                if st.stream_last_seq <= st.applied_seq {
                                    st.progressed_at = now;
                                }
                            });
                        }
                        Err(e) => debug!(error = %e, "cannot read the stream's state"),
                    }
                }
            }
        }
    }
}
