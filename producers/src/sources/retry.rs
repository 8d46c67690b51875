//! Retries of provider calls that may pass (throttling, 5xx): exponential backoff with full
//! jitter, a server's `Retry-After` honoured, all bounded by one deadline per sweep.
//!
//! The caller classifies each failure ([`Verdict`]); this module only decides how long to wait
//! and when to give up.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// How a failed attempt should be handled.
#[derive(Debug)]
pub(crate) enum Verdict<E> {
    /// Worth another attempt (429, 5xx, connection trouble); `retry_after` is the server's
    /// `Retry-After`, when it sent one.
    Retry {
        error: E,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (bad credentials, bad request, not found).
    Fail(E),
}

/// Exponential backoff with full jitter, bounded by a deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// Upper bound of the first wait; doubles after each attempt.
    pub initial: Duration,
    /// Upper bound of any single wait (a larger `Retry-After` is still honoured if the deadline
    /// allows).
    pub max: Duration,
    /// No attempt starts after this instant.
    pub deadline: Instant,
}

/// Why [`retry`] gave up.
#[derive(Debug)]
pub(crate) enum GaveUp<E> {
    /// A failure that retrying cannot fix.
    Fatal(E),
    /// Still failing when the deadline came; the last failure and the number of attempts.
    Exhausted { error: E, attempts: u32 },
}

impl Backoff {
    /// Wait before attempt `attempt + 1` (`attempt` ≥ 1): a random duration in
    /// `[0, min(max, initial·2^(attempt-1))]`, or the server's `Retry-After` when it sent one.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after;
        }
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        jitter(ceiling)
    }
}

/// A uniformly random duration in `[0, ceiling]` (no RNG dependency: `RandomState` is seeded
/// randomly per process and per instance).
fn jitter(ceiling: Duration) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(ceiling.as_nanos());
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    match nanos.checked_add(1) {
        Some(span) => Duration::from_nanos(h.finish() % span),
        None => ceiling,
    }
}

/// Runs `op` until it succeeds, fails for good, or the next wait would end after the deadline.
/// `op` gets the attempt number (1-based).
pub(crate) async fn retry<T, E, F, Fut>(backoff: Backoff, mut op: F) -> Result<T, GaveUp<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = Result<T, Verdict<E>>>,
{
    let mut attempt = 1;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(Verdict::Fail(e)) => return Err(GaveUp::Fatal(e)),
            Err(Verdict::Retry { error, retry_after }) => {
                let wait = backoff.delay(attempt, retry_after);
                if Instant::now() + wait >= backoff.deadline {
                    return Err(GaveUp::Exhausted {
                        error,
                        attempts: attempt,
                    });
                }
                tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// Parses a `Retry-After` header value given in seconds (the HTTP-date form is not used by
/// the cloud APIs and is ignored).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn backoff(deadline: Duration) -> Backoff {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
            deadline: Instant::now() + deadline,
        }
    }

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let b = backoff(Duration::from_secs(1));
        for attempt in 1..20 {
            let cap = Duration::from_millis(10 * (1 << (attempt - 1).min(2)));
            assert!(b.delay(attempt, None) <= cap.min(Duration::from_millis(40)));
        }
        assert_eq!(
            b.delay(3, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[tokio::test]
    async fn retries_until_success_or_fatal_or_deadline() {
        let r: Result<u32, GaveUp<&str>> = retry(backoff(Duration::from_secs(5)), |n| async move {
            if n < 3 {
                Err(Verdict::Retry {
                    error: "busy",
                    retry_after: None,
                })
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);

        let r: Result<(), _> = retry(backoff(Duration::from_secs(5)), |_| async {
            Err(Verdict::Fail("denied"))
        })
        .await;
        assert!(matches!(r, Err(GaveUp::Fatal("denied"))));

        let r: Result<(), _> = retry(backoff(Duration::from_millis(100)), |_| async {
            Err(Verdict::Retry {
                error: "down",
                retry_after: None,
            })
        })
        .await;
        assert!(matches!(r, Err(GaveUp::Exhausted { error: "down", attempts } ) if attempts > 1));

        // A Retry-After beyond the deadline gives up at once instead of sleeping past it.
        let r: Result<(), _> = retry(backoff(Duration::from_secs(1)), |_| async {
            Err(Verdict::Retry {
                error: "slow down",
                retry_after: Some(Duration::from_secs(30)),
            })
        })
        .await;
        assert!(matches!(r, Err(GaveUp::Exhausted { attempts: 1, .. })));
    }
}
