//! Publishing a sweep's writes: pipelined conditional publishes with a bounded number awaiting
//! acknowledgement, retries with backoff for transient failures (safe: event ids are
//! deterministic, so JetStream drops a duplicate of a publish that did land), and conflicts
//! handed back to the caller to re-diff.

use std::time::Duration;

use async_nats::jetstream;
use futures::stream::{FuturesUnordered, StreamExt};
use inventory_bus::{self as bus, BusError, ErrorKind};
use inventory_schemas::OutgoingEvent;
use tracing::warn;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubles after each.
    pub backoff: Duration,
}

impl Retry {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(6);
        self.backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(10))
    }
}

/// The fate of each event of a batch, by index.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Stored at this stream sequence.
    Stored(u64),
    /// Refused: the subject moved past the expected sequence.
    Conflict,
}

/// Publishes `events` pipelined, at most `max_in_flight` awaiting acknowledgement. Transient
/// failures are retried one by one afterwards; the first event that still fails ends the batch
/// with that error (events already stored stay stored; the rest are not attempted again).
pub(crate) async fn publish_batch(
    js: &jetstream::Context,
    events: &[OutgoingEvent],
    max_in_flight: usize,
    retry: Retry,
) -> Result<Vec<Outcome>, (Vec<Option<Outcome>>, BusError)> {
    let mut results: Vec<Option<Outcome>> = (0..events.len()).map(|_| None).collect();
    let mut failed: Vec<usize> = Vec::new();
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
    failed.sort_unstable();
    for i in failed {
        match publish_with_retry(js, &events[i], retry).await {
            Ok(outcome) => results[i] = Some(outcome),
            Err(e) => return Err((results, e)),
        }
    }
    // Every index was settled above; were one not, treating it as a conflict makes the caller
    // re-read and re-diff it, which is always safe.
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Outcome::Conflict))
        .collect())
}

fn settle(
    results: &mut [Option<Outcome>],
    failed: &mut Vec<usize>,
    i: usize,
    r: Result<u64, BusError>,
) {
    match r {
        Ok(seq) => results[i] = Some(Outcome::Stored(seq)),
        Err(e) if e.kind() == ErrorKind::Conflict => results[i] = Some(Outcome::Conflict),
        Err(e) => {
            warn!(error = %e, "publish failed; will retry");
            failed.push(i);
        }
    }
}

/// Publishes one event, retrying transient failures with exponential backoff. A conflict is an
/// outcome, not an error.
pub(crate) async fn publish_with_retry(
    js: &jetstream::Context,
    event: &OutgoingEvent,
    retry: Retry,
) -> Result<Outcome, BusError> {
    let mut attempt = 1;
    loop {
        match bus::publish(js, event).await {
            Ok(seq) => return Ok(Outcome::Stored(seq)),
            Err(e) if e.kind() == ErrorKind::Conflict => return Ok(Outcome::Conflict),
            Err(e) if attempt >= retry.attempts.max(1) => return Err(e),
            Err(e) => {
                let wait = retry.delay(attempt);
                warn!(subject = %event.subject, attempt, error = %e, wait_ms = wait.as_millis() as u64, "publish failed; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Runs a bus read, retrying transient failures with the same backoff.
pub(crate) async fn read_with_retry<T, F, Fut>(
    what: &str,
    retry: Retry,
    mut read: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= retry.attempts.max(1) || e.kind() != ErrorKind::Transient => {
                return Err(e)
            }
            Err(e) => {
                let wait = retry.delay(attempt);
                warn!(what, attempt, error = %e, wait_ms = wait.as_millis() as u64, "read failed; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let r = Retry {
            attempts: 5,
            backoff: Duration::from_millis(200),
        };
        let waits: Vec<u128> = (1..=4).map(|a| r.delay(a).as_millis()).collect();
        assert_eq!(waits, vec![200, 400, 800, 1600]);
        assert_eq!(r.delay(30), Duration::from_secs(10));
    }
}
