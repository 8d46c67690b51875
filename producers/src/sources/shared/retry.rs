//! Retries of provider calls that may pass (throttling, 5xx): the workspace's one retry
//! machinery ([`inventory_bus::retry`]: exponential backoff with full jitter, bounded by one
//! deadline per sweep), plus the one place a server's `Retry-After` is read ([`retry_after`]).
//!
//! The caller classifies each failure ([`Verdict`]); the machinery decides how long to wait and
//! when to give up. No single wait, computed or asked for by the server, exceeds
//! [`Backoff::max`] (default [`inventory_bus::retry::DEFAULT_MAX_WAIT`]).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use http::header::{HeaderMap, RETRY_AFTER};

pub(crate) use inventory_bus::retry::{deadline_after, retry, Backoff, GaveUp, Verdict};

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
}
