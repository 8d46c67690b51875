//! Publishing a sweep's writes: pipelined conditional publishes with a bounded number awaiting
//! acknowledgement; what fails is then retried one by one through the bus's one retry machinery
//! ([`bus::publish_settled`]: full-jitter backoff within the `NATS_RETRY_SECS` budget, the same
//! `Nats-Msg-Id`, an unknown outcome read back before it is published again), so a sweep rides
//! through a stream leader change. Conflicts are handed back to the caller to re-diff.

use async_nats::jetstream::{self, stream::Stream};
use futures::stream::{FuturesUnordered, StreamExt};
use inventory_bus::{self as bus, BusError, ErrorKind, RetryPolicy};
use inventory_schemas::OutgoingEvent;
use tracing::{info, warn};

pub(crate) use inventory_bus::Settled as Outcome;

/// How one pipelined first attempt ended, when it did not settle the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsettled {
    /// Not stored (no responders, no stream during an election): publish again.
    NotStored,
    /// Perhaps stored (timed out, connection closed): read back first.
    Unknown,
}

/// Publishes `events` pipelined, at most `max_in_flight` awaiting acknowledgement. What did
/// not settle is retried one by one afterwards, all within one `retry` budget starting then;
/// the first event that still fails ends the batch with that error (events already stored stay
/// stored; the rest are not attempted again).
pub(crate) async fn publish_batch(
    js: &jetstream::Context,
    stream: &Stream,
    events: &[OutgoingEvent],
    max_in_flight: usize,
    retry: RetryPolicy,
) -> Result<Vec<Outcome>, (Vec<Option<Outcome>>, BusError)> {
    let mut results: Vec<Option<Outcome>> = (0..events.len()).map(|_| None).collect();
    let mut failed: Vec<(usize, Unsettled)> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    for (i, event) in events.iter().enumerate() {
        if in_flight.len() >= max_in_flight.max(1) {
            if let Some((j, r)) = in_flight.next().await {
                settle(&mut results, &mut failed, j, r);
            }
        }
        match bus::publish_start(js, event).await {
            Ok(ack) => in_flight.push(async move { (i, bus::finish(ack, event).await) }),
            Err(e) => settle(&mut results, &mut failed, i, Err(e)),
        }
    }
    while let Some((j, r)) = in_flight.next().await {
        settle(&mut results, &mut failed, j, r);
    }
    if failed.is_empty() {
        return Ok(collect(results));
    }
    failed.sort_unstable_by_key(|(i, _)| *i);
    info!(
        failed = failed.len(),
        budget_s = retry.budget.as_secs(),
        "retrying the publishes that did not settle"
    );
    let backoff = retry.backoff();
    for (i, how) in failed {
        match bus::publish_settled(js, stream, &events[i], backoff, how == Unsettled::Unknown).await
        {
            Ok(outcome) => results[i] = Some(outcome),
            Err(e) => return Err((results, e)),
        }
    }
    Ok(collect(results))
}

/// Every index was settled; were one not, treating it as a conflict makes the caller re-read
/// and re-diff it, which is always safe.
fn collect(results: Vec<Option<Outcome>>) -> Vec<Outcome> {
    results
        .into_iter()
        .map(|r| r.unwrap_or(Outcome::Conflict))
        .collect()
}

fn settle(
    results: &mut [Option<Outcome>],
    failed: &mut Vec<(usize, Unsettled)>,
    i: usize,
    r: Result<u64, BusError>,
) {
    match r {
        Ok(seq) => results[i] = Some(Outcome::Stored(seq)),
        Err(e) => match e.kind() {
            ErrorKind::Conflict => results[i] = Some(Outcome::Conflict),
            ErrorKind::Unknown => {
                warn!(error = %e, "publish unconfirmed; will read back and retry");
                failed.push((i, Unsettled::Unknown));
            }
            ErrorKind::Transient | ErrorKind::Config => {
                warn!(error = %e, "publish failed; will retry");
                failed.push((i, Unsettled::NotStored));
            }
        },
    }
}

/// Publishes one event within the `retry` budget. A conflict is an outcome, not an error.
pub(crate) async fn publish_with_retry(
    js: &jetstream::Context,
    stream: &Stream,
    event: &OutgoingEvent,
    retry: RetryPolicy,
) -> Result<Outcome, BusError> {
    bus::publish_settled(js, stream, event, retry.backoff(), false).await
}

/// Runs a bus read within the `retry` budget.
pub(crate) async fn read_with_retry<T, F, Fut>(
    what: &str,
    retry: RetryPolicy,
    read: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    bus::read_retrying(what, retry.backoff(), read).await
}
