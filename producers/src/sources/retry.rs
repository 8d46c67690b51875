//! Retries of provider calls that may pass (throttling, 5xx): exponential backoff with full
//! jitter, a server's `Retry-After` honoured, all bounded by one deadline per sweep.
//!
//! The caller classifies each failure ([`Verdict`]); this module only decides how long to wait
//! and when to give up. No single wait, computed or asked for by the server, exceeds
//! [`Backoff::max`] (default [`DEFAULT_MAX_WAIT`]); a wait that would end after the deadline is
//! not started: the call gives up as [`GaveUp::Exhausted`]. `Retry-After` is read in one place,
//! [`retry_after`]. No arithmetic here can overflow, whatever the server sends.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::header::{HeaderMap, RETRY_AFTER};
use tokio::time::Instant;

/// Default upper bound of a single retry wait, and so of the wait a `Retry-After` can impose.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

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
    /// Upper bound of any single wait, the server's `Retry-After` included (a larger one is
    /// clamped to it).
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
    /// `[0, min(max, initial·2^(attempt-1))]`, or the server's `Retry-After` when it sent one,
    /// clamped to `max`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
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
pub(crate) fn deadline_after(budget: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(budget)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// The server's `Retry-After` (RFC 9110 §10.2.3), the one place it is read: delay-seconds
/// (`120`; a number too large for a `u64` counts as [`Duration::MAX`], clamped later by
/// [`Backoff::max`]) or an HTTP-date (IMF-fixdate, RFC 850 or asctime; a date in the past means
/// now). Anything else (negative, fractional, garbage, several values) is ignored: `None`, the
/// normal backoff applies.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let mut values = headers.get_all(RETRY_AFTER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_retry_after(value.to_str().ok()?, Utc::now())
}

/// Parses one `Retry-After` value, an HTTP-date being measured from `now`.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: a valid delay, however large.
        return Some(value.parse().map_or(Duration::MAX, Duration::from_secs));
    }
    let date = DateTime::parse_from_rfc2822(value)
        .ok()
        .filter(|_| value.ends_with(" GMT"))
        .map(|d| d.with_timezone(&Utc))
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
                .map(|d| d.and_utc())
        })?;
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
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
    fn retry_after_is_seconds_or_an_http_date_and_nothing_else() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = |v: &str| parse_retry_after(v, now);
        assert_eq!(p(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(
            p("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(p("99999999999999999999999999"), Some(Duration::MAX));
        // The three HTTP-date forms, measured from now; the past means now.
        let minute = Some(Duration::from_secs(60));
        assert_eq!(p("Wed, 21 Oct 2015 07:28:00 GMT"), minute);
        assert_eq!(p("Wednesday, 21-Oct-15 07:28:00 GMT"), minute);
        assert_eq!(p("Wed Oct 21 07:28:00 2015"), minute);
        assert_eq!(p("Tue, 20 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        for garbage in [
            "",
            "-1",
            "1.5",
            "+3",
            "soon",
            "3 s",
            "Wed, 21 Oct 2015 07:28:00 +0200",
        ] {
            assert_eq!(p(garbage), None, "{garbage:?}");
        }

        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.append(RETRY_AFTER, "8".parse().unwrap());
        assert_eq!(retry_after(&h), None, "two values: no decision to take");
        let mut h = HeaderMap::new();
        h.insert(
            RETRY_AFTER,
            http::HeaderValue::from_bytes(b"\xff1").unwrap(),
        );
        assert_eq!(retry_after(&h), None);
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
