//! The one retry machinery of the workspace: exponential backoff with full jitter, bounded by a
//! deadline. Every publish (sweeps, API writes), every bus read a writer depends on, and every
//! provider call (AWS, GCP, Azure pages) waits and gives up through it.
//!
//! The caller classifies each failure ([`Verdict`]); this module only decides how long to wait
//! and when to give up. No single wait, computed or asked for by a server (`Retry-After`),
//! exceeds [`Backoff::max`]; a wait that would end after the deadline is not started: the call
//! gives up as [`GaveUp::Exhausted`]. No arithmetic here can overflow.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// Default upper bound of a single retry wait, and so of the wait a `Retry-After` can impose.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// Default budget of a NATS write or read that meets a leader change, a lost connection or an
/// unreachable stream (`NATS_RETRY_SECS`): well above the ~10 s a JetStream election can take in
/// the worst case, so a writer rides through one instead of failing.
pub const DEFAULT_NATS_RETRY_BUDGET: Duration = Duration::from_secs(30);

/// How a failed attempt should be handled.
#[derive(Debug)]
pub enum Verdict<E> {
    /// Worth another attempt (429, 5xx, connection trouble, a leader election); `retry_after`
    /// is the server's `Retry-After`, when it sent one.
    Retry {
        error: E,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (bad credentials, bad request, not found).
    Fail(E),
}

impl<E> Verdict<E> {
    /// Worth another attempt, after the normal backoff.
    pub fn retry(error: E) -> Self {
        Self::Retry {
            error,
            retry_after: None,
        }
    }
}

/// Exponential backoff with full jitter, bounded by a deadline.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Upper bound of the first wait; doubles after each attempt.
    pub initial: Duration,
    /// Upper bound of any single wait, the server's `Retry-After` included (a larger one is
    /// clamped to it).
    pub max: Duration,
    /// No attempt starts after this instant.
    pub deadline: Instant,
}

/// Why [`retry`] gave up.
#[derive(Debug)]
pub enum GaveUp<E> {
    /// A failure that retrying cannot fix.
    Fatal(E),
    /// Still failing when the deadline came; the last failure and the number of attempts.
    Exhausted { error: E, attempts: u32 },
}

impl<E> GaveUp<E> {
    /// The last failure, whichever way the call gave up.
    pub fn into_error(self) -> E {
        match self {
            Self::Fatal(e) | Self::Exhausted { error: e, .. } => e,
        }
    }
}

impl Backoff {
    /// Wait before attempt `attempt + 1` (`attempt` ≥ 1): a random duration in
    /// `[0, min(max, initial·2^(attempt-1))]`, or the server's `Retry-After` when it sent one,
    /// clamped to `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max);
        }
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        jitter(ceiling)
    }
}

/// How a NATS operation retries: the budget (from the first attempt to the last start) and
/// the waits. [`RetryPolicy::backoff`] turns it into a [`Backoff`] whose deadline starts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// No attempt starts later than this after the first (`NATS_RETRY_SECS`).
    pub budget: Duration,
    /// Upper bound of the first wait; doubles after each attempt.
    pub initial: Duration,
    /// Upper bound of any single wait.
    pub max: Duration,
}

impl RetryPolicy {
    /// A policy with `budget` and the default waits (100 ms doubling up to 2 s: a new leader is
    /// used within about a second of its election).
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            budget,
            ..Self::default()
        }
    }

    /// The backoff of one operation (or one batch) starting now.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.initial,
            max: self.max,
            deadline: deadline_after(self.budget),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            budget: DEFAULT_NATS_RETRY_BUDGET,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        }
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
pub async fn retry<T, E, F, Fut>(backoff: Backoff, mut op: F) -> Result<T, GaveUp<E>>
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
                // An end that cannot be represented is past any deadline.
                match Instant::now().checked_add(wait) {
                    Some(end) if end < backoff.deadline => {}
                    _ => {
                        return Err(GaveUp::Exhausted {
                            error,
                            attempts: attempt,
                        })
                    }
                }
                tracing::debug!(
                    attempt,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "retrying"
                );
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// The instant `budget` from now; a budget too large to represent (`GCP_DEADLINE_SECS` of
/// 2^64-1) is about a century, never an overflow.
pub fn deadline_after(budget: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(budget)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
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
            b.delay(3, Some(Duration::from_millis(20))),
            Duration::from_millis(20)
        );
        // A larger Retry-After is clamped to the single-wait bound.
        assert_eq!(b.delay(3, Some(Duration::from_secs(2))), b.max);
        assert_eq!(b.delay(1, Some(Duration::MAX)), b.max);
    }

    #[test]
    fn the_default_nats_budget_outlasts_an_election() {
        let p = RetryPolicy::default();
        assert!(p.budget >= Duration::from_secs(20), "{p:?}");
        assert!(p.max < p.budget);
        assert_eq!(
            RetryPolicy::with_budget(Duration::from_secs(5)).budget,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn deadlines_never_overflow() {
        let far = deadline_after(Duration::MAX);
        assert!(far > Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let near = deadline_after(Duration::from_secs(1));
        assert!(near <= Instant::now() + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retries_until_success_or_fatal_or_deadline() {
        let r: Result<u32, GaveUp<&str>> = retry(backoff(Duration::from_secs(5)), |n| async move {
            if n < 3 {
                Err(Verdict::retry("busy"))
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
            Err(Verdict::retry("down"))
        })
        .await;
        assert!(matches!(r, Err(GaveUp::Exhausted { error: "down", attempts } ) if attempts > 1));

        // A clamped Retry-After that still ends after the deadline gives up at once instead
        // of sleeping past it.
        let slow = Backoff {
            max: Duration::from_secs(30),
            ..backoff(Duration::from_secs(1))
        };
        let started = Instant::now();
        let r: Result<(), _> = retry(slow, |_| async {
            Err(Verdict::Retry {
                error: "slow down",
                retry_after: Some(Duration::from_secs(30)),
            })
        })
        .await;
        assert!(matches!(r, Err(GaveUp::Exhausted { attempts: 1, .. })));
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn an_enormous_retry_after_waits_the_clamped_maximum_then_gives_up() {
        // 2^64-1 seconds: waited as `max` (40 ms) each time until the deadline, no panic.
        let started = Instant::now();
        let r: Result<(), _> = retry(backoff(Duration::from_millis(300)), |_| async {
            Err(Verdict::Retry {
                error: "throttled",
                retry_after: Some(Duration::from_secs(u64::MAX)),
            })
        })
        .await;
        let Err(GaveUp::Exhausted { attempts, .. }) = r else {
            panic!("{r:?}")
        };
        assert!((2..=10).contains(&attempts), "{attempts}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(5),
            "{took:?}"
        );

        // Even an already unrepresentable deadline is handled.
        let r: Result<(), GaveUp<&str>> = retry(
            Backoff {
                initial: Duration::MAX,
                max: Duration::MAX,
                deadline: deadline_after(Duration::MAX),
            },
            |_| async {
                Err(Verdict::Retry {
                    error: "throttled",
                    retry_after: Some(Duration::MAX),
                })
            },
        )
        .await;
        assert!(matches!(r, Err(GaveUp::Exhausted { attempts: 1, .. })));
    }
}
