//! The live change feed (`GET /api/v1/changes/stream`): bounded in clients and in bytes per
//! client, fed by one shared fan-out ([`crate::api`]'s `history.rs` serves it).
//!
//! - **Start**: after `Last-Event-ID` on a reconnect, else after `since`, else at the changes
//!   applied from now on ([`start`]).
//! - **Slots**: at most [`FeedSettings::max_clients`] feeds are open at once ([`admit`]); the
//!   next client is refused (503 with `Retry-After`). A slot is given back when the feed ends
//!   or the client goes away.
//! - **One fan-out per read model** ([`fan_out`]): on each commit of the projector it reads the
//!   new changes once, unfiltered, in pages, serializes each once into a shared [`Frame`], and
//!   offers the frames to every live feed. It never waits for a client: a feed whose queue
//!   has no room for the next matching frame leaves the fan-out ("behind").
//! - **Each feed** has a queue bounded in bytes ([`FeedSettings::buffer_bytes`]) and a task
//!   ([`drive`]). A feed that is behind (a new one starting in the past, or one the fan-out
//!   left) takes what it misses from the fan-out's shared window of recent frames when they are
//!   still there, else reads its own filtered pages from the read model; never more than its
//!   queue has room for. It joins the fan-out again once it has reached the fan-out's position,
//!   with neither gap nor duplicate. A feed that has had no room for
//!   [`FeedSettings::slow_after`] ends: its queue is dropped, and its `end` event names the last
//!   change it was sent, from which the client resumes with `Last-Event-ID`.
//!
//! Lock order: the hub's state, then a feed's queue; the stream side takes only its queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use inventory_projector::history::{self, ChangeQuery, Point};
use inventory_projector::StoreError;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{debug, error, info};

pub mod frame;

pub use frame::{FeedItem, Frame};

use super::history::ChangeFilter;
use super::{resolve_point, PointError};
use crate::model::{ChangeDoc, FeedEnd};
use crate::problem::{ErrorCode, ServiceError};
use crate::state::{AppState, FeedSettings};

/// Changes the fan-out reads per page (all feeds share them).
const FAN_OUT_ROWS: u32 = 512;
/// Bytes of frames the fan-out reads per page (beyond the first frame).
const FAN_OUT_BYTES: usize = 4 << 20;
/// Bytes of recent frames the fan-out keeps for feeds that fell behind (shared by all).
const RECENT_BYTES: usize = 8 << 20;
/// Most changes a feed that is behind reads per page (and never more bytes than its queue has
/// room for).
const CATCH_UP_ROWS: u32 = 256;
/// Feeds reading the read model for themselves at once (each holds a page of rows meanwhile).
const CATCH_UP_READS: usize = 4;
/// How often the fan-out checks, while nothing is committed, that its read model is current.
const GENERATION_CHECK: Duration = Duration::from_secs(1);
/// `Retry-After` of the answer to a client past the feed limit.
pub const FEED_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where a feed starts, and in which read model (see [`ReadPool::generation`]).
///
/// [`ReadPool::generation`]: inventory_projector::ReadPool::generation
#[derive(Debug, Clone, Copy)]
pub struct FeedStart {
    pub(crate) after: u64,
    pub(crate) generation: u64,
}

/// A feed slot, held from admission until the feed ends or its client goes away.
#[derive(Debug)]
pub struct FeedSlot {
    _permit: OwnedSemaphorePermit,
}

/// The feeds of one server: their slots, and the fan-out's position.
pub(crate) struct FeedHub {
    settings: FeedSettings,
    slots: Arc<Semaphore>,
    catch_up: Semaphore,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// A fan-out task runs (it stops when no feed is live).
    running: bool,
    /// Every change up to here was offered to the live feeds.
    head: u64,
    /// The read model the fan-out reads.
    generation: u64,
    live: HashMap<u64, Arc<Client>>,
    /// The newest frames offered, oldest first: every change after `recent_base` up to `head`.
    recent: VecDeque<Arc<Frame>>,
    recent_bytes: usize,
    recent_base: u64,
}

impl Inner {
    /// The fan-out goes on from `seq`: what it kept is of another position.
    fn move_to(&mut self, seq: u64) {
        self.head = seq;
        self.recent.clear();
        self.recent_bytes = 0;
        self.recent_base = seq;
    }

    /// Keeps `frames` (the changes after `head` up to `upto`) among the recent ones.
    fn keep(&mut self, frames: &[Arc<Frame>], upto: u64) {
        for f in frames {
            self.recent_bytes += f.weight();
            self.recent.push_back(Arc::clone(f));
        }
        self.head = upto;
        while self.recent_bytes > RECENT_BYTES {
            let Some(f) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= f.weight();
            self.recent_base = f.seq;
        }
    }
}

impl FeedHub {
    pub(crate) fn new(settings: FeedSettings) -> Self {
        Self {
            settings,
            slots: Arc::new(Semaphore::new(settings.max_clients)),
            catch_up: Semaphore::new(CATCH_UP_READS),
            next_id: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Ends a feed: out of the fan-out, its queue dropped, its slot given back; the stream
    /// sends `end` next. `resumable`: the end names the last change sent.
    fn end(&self, client: &Client, reason: String, resumable: bool) {
        self.inner().live.remove(&client.id);
        client.end(reason, resumable);
    }
}

/// Ignores poisoning: every critical section leaves its data consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// One feed: its filters and its queue.
struct Client {
    id: u64,
    filters: ChangeQuery,
    /// Bytes its queue may hold.
    limit: usize,
    out: Mutex<Outbox>,
    /// Wakes the stream: a change or the end is queued.
    to_stream: Notify,
    /// Wakes the task: room in the queue, out of the fan-out, the stream gone.
    to_task: Notify,
}

struct Outbox {
    queue: VecDeque<Arc<Frame>>,
    bytes: usize,
    /// Every change up to here was queued or did not match: where the feed goes on.
    last: u64,
    /// In the fan-out.
    live: bool,
    /// Since when the queue has had no room (`None`: it has).
    full_since: Option<Instant>,
    /// The last change the stream yielded (or where it started): what `end` names.
    sent: Option<u64>,
    /// Why the feed ends, once it does, and whether the end names `sent`.
    end: Option<(String, bool)>,
    /// The stream was dropped (the client went away).
    gone: bool,
    slot: Option<FeedSlot>,
}

impl Client {
    fn out(&self) -> MutexGuard<'_, Outbox> {
        lock(&self.out)
    }

    /// Whether at most half the queue is used (`empty`: whether it is empty).
    fn has_room(&self, out: &Outbox, empty: bool) -> bool {
        if empty {
            out.queue.is_empty()
        } else {
            out.bytes <= self.limit / 2
        }
    }

    fn end(&self, reason: String, resumable: bool) {
        {
            let mut out = self.out();
            if out.end.is_some() || out.gone {
                return;
            }
            info!(%reason, last_event_id = ?out.sent.filter(|_| resumable), "change feed ended");
            out.end = Some((reason, resumable));
            out.live = false;
            out.queue = VecDeque::new();
            out.bytes = 0;
            out.slot = None;
        }
        self.to_stream.notify_one();
        self.to_task.notify_one();
    }

    /// Queues `frame` if it matches; `false` if it matches and there is no room.
    fn offer(&self, out: &mut Outbox, frame: &Arc<Frame>) -> bool {
        if frame.seq <= out.last {
            return true;
        }
        if frame.matches(&self.filters) {
            let w = frame.weight();
            if !out.queue.is_empty() && out.bytes + w > self.limit {
                return false;
            }
            out.queue.push_back(Arc::clone(frame));
            out.bytes += w;
        }
        out.last = frame.seq;
        true
    }
}

/// Takes a feed slot, or refuses the client when every slot is taken.
pub fn admit(state: &AppState) -> Result<FeedSlot, ServiceError> {
    let hub = &state.feeds;
    match Arc::clone(&hub.slots).try_acquire_owned() {
        Ok(permit) => Ok(FeedSlot { _permit: permit }),
        Err(_) => {
            debug!(
                max_clients = hub.settings.max_clients,
                "change feed refused: every slot is taken"
            );
            Err(ServiceError::new(
                ErrorCode::Unavailable,
                format!(
                    "this server already serves its maximum of {} change feeds \
                     (INVENTORY_FEED_MAX_CLIENTS); retry after {} s",
                    hub.settings.max_clients,
                    FEED_RETRY_AFTER.as_secs()
                ),
            ))
        }
    }
}

/// Where a feed starts: after `last_event_id` if the client sent one (a reconnect), else after
/// `since`, else at the changes applied from now on.
pub async fn start(
    state: &AppState,
    last_event_id: Option<u64>,
    since: Option<Point>,
) -> Result<FeedStart, ServiceError> {
    // Read first: a read model switched meanwhile ends the feed before it sends anything.
    let generation = state.pool.generation();
    let after = match (last_event_id, since) {
        (Some(after), _) => after,
        (None, None) => state.status.borrow().applied_seq,
        (None, Some(p)) => state
            .pool
            .run_at(move |conn, snap| Ok(resolve_point(conn, snap, "since", p)))
            .await?
            .map_err(PointError::into_service)?,
    };
    Ok(FeedStart { after, generation })
}

/// The live change feed: every matching change applied after `start`, in stream order, as the
/// projector commits them; then an `end` event when the server ends the feed (the client read
/// too slowly, the server shuts down, the read model was rebuilt).
///
/// A feed reads one read model: when the server rebuilds its read model from a recreated stream
/// (whose sequences start again at 1), the feed ends rather than announce the new stream's events
/// under sequences the client may already have seen.
pub fn feed(
    state: AppState,
    filter: ChangeFilter,
    start: FeedStart,
    slot: FeedSlot,
) -> impl futures::Stream<Item = FeedItem> + Send + 'static {
    let hub = Arc::clone(&state.feeds);
    let client = Arc::new(Client {
        id: hub.next_id.fetch_add(1, Ordering::Relaxed),
        filters: filter.query(),
        limit: hub.settings.buffer_bytes.max(1),
        out: Mutex::new(Outbox {
            queue: VecDeque::new(),
            bytes: 0,
            last: start.after,
            live: false,
            full_since: None,
            sent: (start.after > 0).then_some(start.after),
            end: None,
            gone: false,
            slot: Some(slot),
        }),
        to_stream: Notify::new(),
        to_task: Notify::new(),
    });
    tokio::spawn(drive(state, Arc::clone(&client), start.generation));
    let rx = Receiver {
        hub,
        client,
        done: false,
    };
    futures::stream::unfold(rx, |mut rx| async move { rx.next().await.map(|i| (i, rx)) })
}

/// The stream side of a feed; dropping it (the client went away) frees the feed.
struct Receiver {
    hub: Arc<FeedHub>,
    client: Arc<Client>,
    done: bool,
}

impl Receiver {
    async fn next(&mut self) -> Option<FeedItem> {
        if self.done {
            return None;
        }
        loop {
            // Created before looking: a change queued meanwhile leaves a permit.
            let notified = self.client.to_stream.notified();
            {
                let mut out = self.client.out();
                if let Some(frame) = out.queue.pop_front() {
                    out.bytes -= frame.weight();
                    out.sent = Some(frame.seq);
                    if out.full_since.is_some()
                        && (self.client.has_room(&out, false) || out.queue.is_empty())
                    {
                        self.client.to_task.notify_one();
                    }
                    return Some(FeedItem::Change(frame));
                }
                if let Some((reason, resumable)) = out.end.take() {
                    self.done = true;
                    let last_event_id = if resumable { out.sent } else { None };
                    return Some(FeedItem::End(FeedEnd {
                        reason,
                        last_event_id,
                    }));
                }
            }
            notified.await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        {
            let mut out = self.client.out();
            if !self.done && out.end.is_none() {
                debug!("change feed client went away");
            }
            out.gone = true;
            out.live = false;
            out.queue = VecDeque::new();
            out.bytes = 0;
            out.slot = None;
        }
        self.hub.inner().live.remove(&self.client.id);
        self.client.to_task.notify_one();
    }
}

/// What a feed that is behind finds at the fan-out.
enum Join {
    /// It is live: the fan-out queues its changes from now on.
    Joined,
    /// Its queue was filled from the recent frames; it joins once it has room again.
    Filled,
    /// The fan-out is further on than its recent frames go back: read up to here from the read
    /// model first.
    Behind(u64),
    /// The feed's read model was replaced.
    Rebuilt,
    /// The feed ended or its client went away.
    Over,
}

fn join(state: &AppState, client: &Arc<Client>, generation: u64) -> Join {
    let hub = &state.feeds;
    let mut inner = hub.inner();
    if state.pool.generation() != generation {
        return Join::Rebuilt;
    }
    let mut out = client.out();
    if out.gone || out.end.is_some() {
        return Join::Over;
    }
    if inner.live.is_empty() {
        // Nobody to hold back: the fan-out goes on from this feed's position (a fan-out still
        // reading from elsewhere drops that page), or from the newest checkpoint if the feed
        // starts beyond it (it skips what it asked not to see).
        let at = out.last.min(state.pool.snapshot().seq());
        if at != inner.head || inner.generation != generation {
            inner.move_to(at);
        }
        inner.generation = generation;
    } else if inner.generation != generation {
        return Join::Rebuilt;
    } else if out.last < inner.head {
        if out.last < inner.recent_base {
            return Join::Behind(inner.recent_base);
        }
        // What it misses is among the recent frames.
        let from = inner.recent.partition_point(|f| f.seq <= out.last);
        let before = out.queue.len();
        let mut room = true;
        for f in inner.recent.range(from..) {
            if !client.offer(&mut out, f) {
                room = false;
                break;
            }
        }
        if out.queue.len() > before {
            client.to_stream.notify_one();
        }
        if !room {
            return Join::Filled;
        }
        out.last = out.last.max(inner.head);
    }
    // From here on, the fan-out offers every change after `inner.head` (≤ `out.last`), and the
    // feed skips those up to `out.last`.
    out.live = true;
    inner.live.insert(client.id, Arc::clone(client));
    if !inner.running {
        inner.running = true;
        tokio::spawn(fan_out(state.clone()));
    }
    Join::Joined
}

const REBUILT: &str = "the read model was rebuilt from a recreated stream, whose sequences start \
                       again at 1: reconnect without Last-Event-ID";
const SHUTTING_DOWN: &str = "the server is shutting down; reconnect with Last-Event-ID to resume";
const READ_FAILED: &str = "the server cannot read its read model";

/// A feed's task: catches up from the read model while behind, is live in the fan-out
/// otherwise, and ends the feed when it has had no room for `slow_after` or the server stops.
async fn drive(state: AppState, client: Arc<Client>, generation: u64) {
    let hub = Arc::clone(&state.feeds);
    let slow_after = hub.settings.slow_after;
    // Bytes of a frame, as last read.
    let mut frame_size = 1024;
    // Wait for an empty queue rather than half of one (a frame too big for the room left).
    let mut empty = false;
    loop {
        // Wait for room (at most half the queue used), for at most `slow_after` in all.
        let room = loop {
            let notified = client.to_task.notified();
            let since = {
                let mut out = client.out();
                if out.gone || out.end.is_some() {
                    return;
                }
                if client.has_room(&out, empty) {
                    out.full_since = None;
                    empty = false;
                    break client.limit.saturating_sub(out.bytes);
                }
                *out.full_since.get_or_insert_with(Instant::now)
            };
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(since + slow_after) => {
                    let reason = format!(
                        "the client read too slowly (no room in its buffer for {} s); \
                         reconnect with Last-Event-ID to resume",
                        slow_after.as_secs_f64()
                    );
                    hub.end(&client, reason, true);
                    return;
                }
                () = state.shutdown.cancelled() => {
                    hub.end(&client, SHUTTING_DOWN.to_owned(), true);
                    return;
                }
            }
        };
        if state.shutdown.is_cancelled() {
            hub.end(&client, SHUTTING_DOWN.to_owned(), true);
            return;
        }
        match join(&state, &client, generation) {
            Join::Over => return,
            Join::Filled => empty = true,
            Join::Rebuilt => {
                hub.end(&client, REBUILT.to_owned(), false);
                return;
            }
            Join::Joined => loop {
                // Live until the fan-out leaves it behind or the feed ends.
                let notified = client.to_task.notified();
                {
                    let out = client.out();
                    if out.gone || out.end.is_some() {
                        return;
                    }
                    if !out.live {
                        break;
                    }
                }
                tokio::select! {
                    () = notified => {}
                    () = state.shutdown.cancelled() => {
                        hub.end(&client, SHUTTING_DOWN.to_owned(), true);
                        return;
                    }
                }
            },
            Join::Behind(until) => {
                let after = client.out().last;
                // About as many as there is room for (the rows beyond are read for nothing).
                let rows = (room / frame_size.max(1)).clamp(16, CATCH_UP_ROWS as usize);
                let q = ChangeQuery {
                    after,
                    until: Some(until),
                    limit: u32::try_from(rows).unwrap_or(CATCH_UP_ROWS),
                    ..client.filters.clone()
                };
                let read = async {
                    let _permit = hub.catch_up.acquire().await.ok();
                    read_frames(&state, q, room).await
                };
                let read = tokio::select! {
                    r = read => r,
                    () = state.shutdown.cancelled() => {
                        hub.end(&client, SHUTTING_DOWN.to_owned(), true);
                        return;
                    }
                };
                let (frames, upto) = match read {
                    Ok(read) => read,
                    Err(e) => {
                        error!(error = %e, "change feed cannot read the read model");
                        hub.end(&client, READ_FAILED.to_owned(), true);
                        return;
                    }
                };
                // Unchanged across the read: the rows are of the feed's read model.
                if state.pool.generation() != generation {
                    hub.end(&client, REBUILT.to_owned(), false);
                    return;
                }
                if !frames.is_empty() {
                    frame_size = frames.iter().map(|f| f.weight()).sum::<usize>() / frames.len();
                }
                {
                    let mut out = client.out();
                    if out.gone || out.end.is_some() {
                        return;
                    }
                    for f in frames {
                        out.bytes += f.weight();
                        out.queue.push_back(f);
                    }
                    out.last = out.last.max(upto);
                }
                client.to_stream.notify_one();
            }
        }
    }
}

/// Reads the changes of `q` (up to `q.limit`, and beyond the first no more than `max_bytes`
/// of frames), serialized; and how far the read went: every change matching `q` up to it is
/// in the frames.
async fn read_frames(
    state: &AppState,
    q: ChangeQuery,
    max_bytes: usize,
) -> Result<(Vec<Arc<Frame>>, u64), StoreError> {
    state
        .pool
        .run_at_queued(move |_, snap| {
            let rows = history::changes(snap, &q)?;
            let complete = rows.len() < q.limit as usize;
            let mut frames: Vec<Arc<Frame>> = Vec::with_capacity(rows.len());
            let mut bytes = 0;
            let mut truncated = false;
            for row in rows {
                if !frames.is_empty() && bytes >= max_bytes {
                    truncated = true;
                    break;
                }
                let frame = Frame::new(&ChangeDoc::from(row))
                    .map_err(|e| StoreError::Task(format!("writing a change as JSON: {e}")))?;
                bytes += frame.weight();
                frames.push(Arc::new(frame));
            }
            let upto = match frames.last() {
                Some(f) if truncated || !complete => f.seq,
                _ if complete => q.until.unwrap_or(u64::MAX).min(snap.seq()).max(q.after),
                _ => q.after,
            };
            Ok((frames, upto))
        })
        .await
}

/// The fan-out: reads each committed batch once and offers it to every live feed, until no
/// feed is live.
async fn fan_out(state: AppState) {
    let hub = Arc::clone(&state.feeds);
    let mut status = state.status.clone();
    let mut tick = tokio::time::interval(GENERATION_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    debug!("change feed fan-out started");
    loop {
        let applied = status.borrow_and_update().applied_seq;
        let (head, generation) = {
            let mut inner = hub.inner();
            if inner.live.is_empty() {
                inner.running = false;
                debug!("change feed fan-out stopped: no live feed");
                return;
            }
            if state.pool.generation() != inner.generation {
                end_all(&mut inner, REBUILT, false);
                inner.move_to(0);
                inner.running = false;
                return;
            }
            (inner.head, inner.generation)
        };
        let mut progressed = false;
        if applied > head {
            let q = ChangeQuery {
                after: head,
                until: Some(applied),
                limit: FAN_OUT_ROWS,
                ..ChangeQuery::default()
            };
            match read_frames(&state, q, FAN_OUT_BYTES).await {
                Ok((frames, upto)) => {
                    let mut inner = hub.inner();
                    // Unchanged across the read: the frames are what the live feeds wait for.
                    if inner.head == head
                        && inner.generation == generation
                        && state.pool.generation() == generation
                        && upto > head
                    {
                        offer_all(&mut inner, &frames, upto);
                        inner.keep(&frames, upto);
                    }
                    progressed = true;
                }
                Err(e) => {
                    error!(error = %e, "change feed fan-out cannot read the read model");
                    let mut inner = hub.inner();
                    end_all(&mut inner, READ_FAILED, true);
                    inner.running = false;
                    return;
                }
            }
        }
        // More may be committed already, or a feed moved the head meanwhile; a read that made
        // no progress (the newest snapshot behind the status, while the read model is being
        // switched) waits below.
        if progressed && hub.inner().head != head {
            continue;
        }
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    let mut inner = hub.inner();
                    end_all(
                        &mut inner,
                        "the projector stopped; reconnect with Last-Event-ID to resume",
                        true,
                    );
                    inner.running = false;
                    return;
                }
            }
            _ = tick.tick() => {}
            () = state.shutdown.cancelled() => {
                let mut inner = hub.inner();
                end_all(&mut inner, SHUTTING_DOWN, true);
                inner.running = false;
                return;
            }
        }
    }
}

/// Offers `frames` (every change after the fan-out's head up to `upto`) to every live feed; a
/// feed without room for one of them leaves the fan-out.
fn offer_all(inner: &mut Inner, frames: &[Arc<Frame>], upto: u64) {
    let now = Instant::now();
    inner.live.retain(|_, c| {
        let mut out = c.out();
        if out.gone || out.end.is_some() {
            return false;
        }
        let before = out.queue.len();
        let mut live = true;
        for f in frames {
            if !c.offer(&mut out, f) {
                live = false;
                break;
            }
        }
        if live {
            out.last = out.last.max(upto);
        } else {
            // Reads on from the read model once it has room.
            out.live = false;
            out.full_since.get_or_insert(now);
        }
        let queued = out.queue.len() > before;
        drop(out);
        if queued {
            c.to_stream.notify_one();
        }
        if !live {
            c.to_task.notify_one();
        }
        live
    });
}

fn end_all(inner: &mut Inner, reason: &str, resumable: bool) {
    for (_, c) in inner.live.drain() {
        c.end(reason.to_owned(), resumable);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, key: &str, ty: &str, len: usize) -> Arc<Frame> {
        Arc::new(Frame {
            seq,
            ty: ty.into(),
            key: key.into(),
            json: "x".repeat(len).into_boxed_str(),
        })
    }

    #[test]
    fn frames_pass_the_filters_of_the_read_model() {
        let f = frame(1, "aws/account/a/b", "changed", 10);
        let q = |provider: Option<&str>, kinds: &[&str], types: &[&str]| ChangeQuery {
            provider: provider.map(str::to_owned),
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            ..ChangeQuery::default()
        };
        assert!(f.matches(&q(None, &[], &[])));
        assert!(f.matches(&q(Some("aws"), &["endpoint", "account"], &["changed"])));
        assert!(!f.matches(&q(Some("gcp"), &[], &[])));
        assert!(!f.matches(&q(None, &["a"], &[])));
        assert!(!f.matches(&q(None, &[], &["deleted", "discovered"])));
    }

    #[test]
    fn the_recent_frames_are_bounded_in_bytes_and_say_from_where_they_cover() {
        let mut inner = Inner::default();
        inner.move_to(10);
        let size = RECENT_BYTES / 4;
        let frames: Vec<_> = (11..=18)
            .map(|s| frame(s, "aws/account/1", "changed", size))
            .collect();
        inner.keep(&frames[..2], 12);
        assert_eq!(
            (inner.recent_base, inner.head, inner.recent.len()),
            (10, 12, 2)
        );
        inner.keep(&frames[2..], 20);
        assert!(inner.recent_bytes <= RECENT_BYTES);
        assert_eq!(inner.head, 20);
        // Every change after the base is kept.
        assert_eq!(
            inner.recent.front().map(|f| f.seq),
            Some(inner.recent_base + 1)
        );
        assert_eq!(inner.recent.back().map(|f| f.seq), Some(18));
        inner.move_to(3);
        assert!(inner.recent.is_empty());
        assert_eq!((inner.recent_base, inner.head), (3, 3));
    }

    #[test]
    fn a_queue_takes_frames_while_they_fit_and_skips_what_it_has() {
        let client = Client {
            id: 0,
            filters: ChangeQuery {
                kinds: vec!["account".into()],
                ..ChangeQuery::default()
            },
            limit: 1000,
            out: Mutex::new(Outbox {
                queue: VecDeque::new(),
                bytes: 0,
                last: 1,
                live: true,
                full_since: None,
                sent: None,
                end: None,
                gone: false,
                slot: None,
            }),
            to_stream: Notify::new(),
            to_task: Notify::new(),
        };
        let mut out = client.out();
        // Already past it.
        assert!(client.offer(&mut out, &frame(1, "aws/account/1", "changed", 10)));
        assert!(out.queue.is_empty());
        // Filtered out: skipped, the position moves on.
        assert!(client.offer(&mut out, &frame(2, "aws/endpoint/1", "changed", 2000)));
        assert_eq!((out.queue.len(), out.last), (0, 2));
        // The first frame always fits; the next only within the limit.
        assert!(client.offer(&mut out, &frame(3, "aws/account/1", "changed", 2000)));
        assert!(!client.offer(&mut out, &frame(4, "aws/account/1", "changed", 10)));
        assert_eq!((out.queue.len(), out.last), (1, 3));
    }
}
