//! A point in the stream's history, written the same way everywhere a user names one: the API's
//! `as_of`, `since`, `until`, `from` and `to`, and the CLI's `replay --until` and `watch --since`.
//!
//! Syntax: `seq:N` (stream sequence N; 1 is the first event) or an RFC 3339 time with any
//! offset (`2026-03-01T00:00:00Z`), meaning the newest event JetStream *recorded* at or before it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

/// A point of the stream: a sequence, or a time (resolved to the newest event JetStream
/// recorded at or before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Seq(u64),
    Time(DateTime<Utc>),
}

/// The `seq:N` form of a [`Point`] as a regular expression (the OpenAPI document's `pattern`;
/// the other form is the `date-time` format). Nineteen digits stay below `u64::MAX`.
pub const SEQ_POINT_PATTERN: &str = "^seq:[0-9]{1,19}$";

/// Why a text is not a [`Point`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    #[error("seq:N needs an unsigned integer N (got {0:?})")]
    BadSeq(String),
    #[error(
        "a bare number is not a point: write seq:{0} for stream sequence {0}, or an RFC 3339 time"
    )]
    BareNumber(String),
    #[error("{0:?} is neither seq:N (a stream sequence) nor an RFC 3339 time (e.g. 2026-03-01T00:00:00Z)")]
    Neither(String),
}

/// At most this much of a rejected text is repeated in an error.
const SHOWN: usize = 64;

fn shown(s: &str) -> String {
    s.chars().take(SHOWN).collect()
}

impl FromStr for Point {
    type Err = PointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(n) = s.strip_prefix("seq:") {
            // Digits only: `u64::from_str` would also take a sign.
            return match n.parse::<u64>() {
                Ok(n_) if n.bytes().all(|b| b.is_ascii_digit()) => Ok(Self::Seq(n_)),
                _ => Err(PointError::BadSeq(shown(s))),
            };
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PointError::BareNumber(shown(s)));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Self::Time(t.with_timezone(&Utc)))
            .map_err(|_| PointError::Neither(shown(s)))
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Seq(n) => write!(f, "seq:{n}"),
            Self::Time(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sequences_and_times_parse_and_print_back() {
        assert_eq!("seq:42".parse(), Ok(Point::Seq(42)));
        assert_eq!(" seq:0 ".parse(), Ok(Point::Seq(0)));
        let t: Point = "2026-03-01T01:00:00+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-03-01T00:00:00Z");
        assert_eq!(Point::Seq(7).to_string(), "seq:7");
        for p in [Point::Seq(u64::MAX), t] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_syntax_in_the_message() {
        for bad in [
            "seq:",
            "seq:-1",
            "seq:+1",
            "seq:1x",
            "seq:99999999999999999999",
            "yesterday",
            "",
            "2026-03-01",
        ] {
            let e = bad.parse::<Point>().unwrap_err().to_string();
            assert!(e.contains("seq:N") || e.contains("RFC 3339"), "{bad}: {e}");
        }
        let e = "4711".parse::<Point>().unwrap_err().to_string();
        assert!(e.contains("seq:4711"), "{e}");
        let long = "x".repeat(10_000);
        assert!(long.parse::<Point>().unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn the_seq_pattern_accepts_exactly_the_seqs_that_parse() {
        let re = regex::Regex::new(SEQ_POINT_PATTERN).unwrap();
        for ok in ["seq:0", "seq:42", "seq:9999999999999999999"] {
            assert!(re.is_match(ok), "{ok}");
            assert!(matches!(ok.parse::<Point>(), Ok(Point::Seq(_))), "{ok}");
        }
        for bad in [
            "seq:",
            "seq:+1",
            "seq:-1",
            "seq:1x",
            "4711",
            "2026-03-01T00:00:00Z",
        ] {
            assert!(!re.is_match(bad), "{bad}");
            assert!(!matches!(bad.parse::<Point>(), Ok(Point::Seq(_))), "{bad}");
        }
    }
}
