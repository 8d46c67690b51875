//! What the sources share, in one place: settings parsing and validation ([`config`]: the
//! errors that name a setting, endpoint URLs, names, the clap value parsers of seconds and
//! booleans), the HTTP client and the one bounded reader of provider answers ([`http`]), the
//! retry machinery ([`retry`]), and two small text helpers.
//!
//! A helper two sources need goes here; one only a single source needs stays in its folder.

pub mod config;
pub(crate) mod http;
pub(crate) mod retry;

use serde_json::Value;

/// Collapses any run of whitespace (newlines included) to one space: provider errors in one
/// line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Drops the `null` members of a JSON object (fields a provider left out), so that an absent
/// field and a missing one record the same.
pub(crate) fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}
