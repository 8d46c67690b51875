//! The parameters of the spec, validated: their bounds, and a type per kind of parameter.
//!
//! Each type parses a query, path or header value into what the service layer takes, or refuses
//! it with a [`Refusal`] the client reads as the problem's detail. What each type declares in the
//! spec (`minimum`/`maximum`, `pattern`, `maxLength`) is built from the same constants, so that a
//! value valid by the spec is one the server accepts, and the other way round (schemathesis
//! checks both against the real server: `tests/openapi_contract.rs`).
//!
//! An optional parameter sent empty (`?provider=`) is absent, except `limit` and
//! `include_deleted`, whose empty value is refused.

use std::borrow::Cow;

use inventory_schemas::{AssetKey, Point};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};

use crate::cursor;
use crate::problem::{Refusal, ServiceError};

/// Page size when `limit` is absent.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest accepted `limit`.
pub const MAX_LIMIT: u32 = 1000;
/// Longest `provider` or `kind` filter (as [`inventory_schemas::key::validate_word`]).
pub const MAX_WORD_LEN: usize = 64;
/// What [`Word`] accepts (empty: the filter is absent).
pub const WORD_PATTERN: &str = "^[a-z0-9_-]{0,64}$";
/// Longest `name` filter, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// What [`KeyCursor`] accepts: base64url, optionally padded (empty: the first page).
pub const KEY_CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]*=*$";
/// A stream sequence as the sequence cursors and `Last-Event-ID` accept it (empty: absent).
/// Nineteen digits stay below `u64::MAX`; no stream comes near.
pub const SEQ_PATTERN: &str = "^[0-9]{0,19}$";
/// The `seq:N` form of a point; the other form is an RFC 3339 time.
pub use inventory_schemas::SEQ_POINT_PATTERN;
/// An asset key in a path, as [`AssetKey::parse`] accepts it: provider and kind words, and a
/// native id of 1-1024 characters without control characters (the server counts at most
/// 1024 bytes).
pub const KEY_PATTERN: &str =
    "^[a-z0-9_-]{1,64}/[a-z0-9_-]{1,64}/[^\\u0000-\\u001F\\u007F-\\u009F]{1,1024}$";

/// At most this much of a refused value is repeated in a message.
const SHOWN_CHARS: usize = 64;

/// The start of `s` that a message repeats.
pub fn shown(s: &str) -> String {
    s.chars().take(SHOWN_CHARS).collect()
}

/// Refuses a header `name` whose value is not visible ASCII: poem-openapi's header parameters
/// skip such a value as if the header were absent, while the spec's pattern refuses it.
pub fn refuse_opaque_header(req: &poem::Request, name: &str) -> Result<(), ServiceError> {
    match req.headers().get(name) {
        Some(v) if v.to_str().is_err() => Err(ServiceError::invalid_parameter(
            name,
            format!("{name} must be visible ASCII"),
        )),
        _ => Ok(()),
    }
}

/// Declares a parameter type over a parse function (`&str` to the value, or the end of the
/// sentence that refuses it). `required`: the parameter must be sent. `path("name")`: a path
/// parameter of that name. `= default`: an absent parameter has this value. `optional`: the type
/// holds an `Option`, `None` when the parameter is absent or empty.
macro_rules! param {
    ($(#[$meta:meta])* $name:ident($inner:ty): required => $schema:expr, $parse:expr) => {
        param!(@type $(#[$meta])* $name($inner), true, $schema);

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                refuse($parse(value).map(Self), None)
            }
        }
    };
    ($(#[$meta:meta])* $name:ident($inner:ty): path($param:literal) => $schema:expr, $parse:expr) => {
        param!(@type $(#[$meta])* $name($inner), true, $schema);

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                refuse($parse(value).map(Self), Some($param))
            }
        }
    };
    ($(#[$meta:meta])* $name:ident($inner:ty) = $default:expr => $schema:expr, $parse:expr) => {
        param!(@type $(#[$meta])* $name($inner), false, $schema);

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                refuse($parse(value).map(Self), None)
            }

            fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(
                iter: I,
            ) -> ParseResult<Self> {
                match iter.into_iter().next() {
                    None => Ok(Self::default()),
                    Some(v) => Self::parse_from_parameter(v.as_ref()),
                }
            }
        }
    };
    ($(#[$meta:meta])* $name:ident(Option<$inner:ty>): optional => $schema:expr, $parse:expr) => {
        param!(@type $(#[$meta])* $name(Option<$inner>), false, $schema);

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                if value.is_empty() {
                    return Ok(Self(None));
                }
                refuse($parse(value).map(|v| Self(Some(v))), None)
            }

            fn parse_from_parameters<I: IntoIterator<Item = A>, A: AsRef<str>>(
                iter: I,
            ) -> ParseResult<Self> {
                match iter.into_iter().next() {
                    None => Ok(Self(None)),
                    Some(v) => Self::parse_from_parameter(v.as_ref()),
                }
            }
        }
    };
    (@type $(#[$meta:meta])* $name:ident($inner:ty), $required:expr, $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub $inner);

        impl Type for $name {
            const IS_REQUIRED: bool = $required;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }
    };
}

/// A parsed value, or its [`Refusal`] as the parser's error (`name`: the parameter's, for a path
/// parameter, which the framework names by position).
fn refuse<T: Type>(parsed: Result<T, String>, name: Option<&'static str>) -> ParseResult<T> {
    parsed.map_err(|rest| ParseError::custom(Refusal { name, rest }))
}

fn string(pattern: Option<&str>, max_length: Option<usize>) -> MetaSchema {
    MetaSchema {
        pattern: pattern.map(str::to_owned),
        max_length,
        ..MetaSchema::new("string")
    }
}

/// A point of the stream: an RFC 3339 time or `seq:N`; `empty` adds the empty string (the
/// parameter is then absent).
fn point_schema(empty: bool) -> MetaSchema {
    let mut any_of = vec![
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time"))),
        MetaSchemaRef::Inline(Box::new(string(Some(SEQ_POINT_PATTERN), None))),
    ];
    if empty {
        any_of.push(MetaSchemaRef::Inline(Box::new(string(None, Some(0)))));
    }
    MetaSchema {
        any_of,
        ..MetaSchema::new("string")
    }
}

fn limit(v: &str) -> Result<u32, String> {
    match v.parse::<i64>() {
        Ok(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| format!(" must be between 1 and {MAX_LIMIT} (got {n})")),
        Err(_) => Err(format!(" must be an integer between 1 and {MAX_LIMIT}")),
    }
}

fn flag(v: &str) -> Result<bool, String> {
    v.parse::<bool>()
        .map_err(|_| " must be true or false".to_owned())
}

fn word(v: &str) -> Result<String, String> {
    inventory_schemas::key::validate_word("word", v)
        .map(|()| v.to_owned())
        .map_err(|_| {
            format!(
                " must be 1-64 characters of [a-z0-9_-] (got {:?})",
                shown(v)
            )
        })
}

fn name_filter(v: &str) -> Result<String, String> {
    if v.chars().count() > MAX_NAME_CHARS {
        return Err(format!(" must be at most {MAX_NAME_CHARS} characters"));
    }
    Ok(v.to_owned())
}

fn label_filter(v: &str) -> Result<String, String> {
    name_filter(v)?;
    match v.split_once(':') {
        Some((key, _)) if !key.is_empty() => Ok(v.to_owned()),
        _ => Err(format!(
            " must be key:value, e.g. team:payments (got {:?})",
            shown(v)
        )),
    }
}

fn key_cursor(v: &str) -> Result<String, String> {
    cursor::decode(v).map_err(|why| format!(" is {why}; pass the next_cursor of a previous page"))
}

fn seq_cursor(v: &str) -> Result<u64, String> {
    v.parse::<u64>().map_err(|_| {
        format!(
            " {:?} is not valid; pass the next_cursor of a previous page",
            shown(v)
        )
    })
}

fn last_event_id(v: &str) -> Result<u64, String> {
    v.trim().parse::<u64>().map_err(|_| {
        format!(
            " must be the id (a stream sequence) of an event of this feed (got {:?})",
            shown(v)
        )
    })
}

fn point(v: &str) -> Result<Point, String> {
    v.parse::<Point>().map_err(|e| format!(": {e}"))
}

fn required_point(v: &str) -> Result<Point, String> {
    if v.is_empty() {
        return Err(" is required: an RFC 3339 time or seq:N".to_owned());
    }
    point(v)
}

fn key(v: &str) -> Result<AssetKey, String> {
    AssetKey::parse(v).map_err(|_| {
        format!(
            " must be <provider>/<kind>/<native id>, e.g. aws/account/123456789012 (got {:?})",
            shown(v)
        )
    })
}

param! {
    /// `limit`: the page size, 1..=[`MAX_LIMIT`] ([`DEFAULT_LIMIT`] when absent).
    Limit(u32) = DEFAULT_LIMIT => MetaSchema {
        minimum: Some(1.0),
        maximum: Some(f64::from(MAX_LIMIT)),
        ..MetaSchema::new_with_format("integer", "int64")
    }, limit
}

param! {
    /// A boolean switch (`include_deleted`): `true` or `false`, false when absent.
    Flag(bool) = false => MetaSchema::new("boolean"), flag
}

param! {
    /// `provider` or `kind`: 1-[`MAX_WORD_LEN`] of `[a-z0-9_-]`.
    Word(Option<String>): optional
        => string(Some(WORD_PATTERN), Some(MAX_WORD_LEN)), word
}

param! {
    /// `name`: a substring of asset names, at most [`MAX_NAME_CHARS`] characters.
    NameFilter(Option<String>): optional => string(None, Some(MAX_NAME_CHARS)), name_filter
}

/// What `label` accepts besides absent/empty: `key:value` with a non-empty key.
pub const LABEL_PATTERN: &str = "^([^:]+:[\\s\\S]*)?$";

param! {
    /// `label`: one label `key:value`, at most [`MAX_NAME_CHARS`] characters.
    LabelFilter(Option<String>): optional
        => string(Some(LABEL_PATTERN), Some(MAX_NAME_CHARS)), label_filter
}

param! {
    /// `cursor` of the key-ordered pages (assets, diffs): the key to start after.
    KeyCursor(Option<String>): optional => string(Some(KEY_CURSOR_PATTERN), None), key_cursor
}

param! {
    /// `cursor` of the sequence-ordered pages (history, changes, rejected): a stream sequence.
    SeqCursor(Option<u64>): optional => string(Some(SEQ_PATTERN), None), seq_cursor
}

param! {
    /// `Last-Event-ID`: the id (a stream sequence) of the last change event received.
    LastEventId(Option<u64>): optional => string(Some(SEQ_PATTERN), None), last_event_id
}

param! {
    /// An optional point of the stream: an RFC 3339 time or `seq:N`.
    OptionalPoint(Option<Point>): optional => point_schema(true), point
}

param! {
    /// A required point of the stream: an RFC 3339 time or `seq:N`.
    RequiredPoint(Point): required => point_schema(false), required_point
}

param! {
    /// `key`, an asset key in a path: `<provider>/<kind>/<native id>` ([`KEY_PATTERN`]).
    KeyParam(AssetKey): path("key") => string(Some(KEY_PATTERN), None), key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: ParseFromParameter>(v: &str) -> Result<T, String> {
        T::parse_from_parameters([v]).map_err(ParseError::into_message)
    }

    fn absent<T: ParseFromParameter + std::fmt::Debug>() -> T {
        T::parse_from_parameters(std::iter::empty::<&str>()).unwrap()
    }

    #[test]
    fn the_spec_of_limit_is_what_limit_accepts() {
        let s = match Limit::schema_ref() {
            MetaSchemaRef::Inline(s) => s,
            other => panic!("{other:?}"),
        };
        let (lo, hi) = (s.minimum.unwrap() as i64, s.maximum.unwrap() as i64);
        assert_eq!(parse::<Limit>(&lo.to_string()), Ok(Limit(1)));
        assert_eq!(parse::<Limit>(&hi.to_string()), Ok(Limit(MAX_LIMIT)));
        assert!(parse::<Limit>(&(lo - 1).to_string()).is_err());
        assert!(parse::<Limit>(&(hi + 1).to_string()).is_err());
        assert_eq!(absent::<Limit>(), Limit(DEFAULT_LIMIT));
        for bad in ["0", "-1", "1001", "", "x", "99999999999999999999"] {
            assert!(parse::<Limit>(bad)
                .unwrap_err()
                .contains("between 1 and 1000"));
        }
    }

    #[test]
    fn empty_optional_parameters_are_absent() {
        assert_eq!(parse::<Word>(""), Ok(Word(None)));
        assert_eq!(absent::<Word>(), Word(None));
        assert_eq!(parse::<NameFilter>(""), Ok(NameFilter(None)));
        assert_eq!(parse::<KeyCursor>(""), Ok(KeyCursor(None)));
        assert_eq!(parse::<SeqCursor>(""), Ok(SeqCursor(None)));
        assert_eq!(parse::<LastEventId>(""), Ok(LastEventId(None)));
        assert_eq!(parse::<OptionalPoint>(""), Ok(OptionalPoint(None)));
        assert_eq!(absent::<Flag>(), Flag(false));
        assert!(parse::<Flag>("").is_err());
        assert!(parse::<RequiredPoint>("")
            .unwrap_err()
            .contains("is required"));
    }

    #[test]
    fn values_are_parsed_and_refusals_say_why() {
        assert_eq!(parse::<Word>("aws"), Ok(Word(Some("aws".into()))));
        assert!(parse::<Word>("AWS").unwrap_err().contains("[a-z0-9_-]"));
        assert_eq!(
            parse::<KeyCursor>(&cursor::encode("aws/account/1")),
            Ok(KeyCursor(Some("aws/account/1".into())))
        );
        assert_eq!(parse::<SeqCursor>("7"), Ok(SeqCursor(Some(7))));
        assert_eq!(parse::<LastEventId>(" 7 "), Ok(LastEventId(Some(7))));
        assert_eq!(
            parse::<OptionalPoint>("seq:3"),
            Ok(OptionalPoint(Some(Point::Seq(3))))
        );
        assert_eq!(
            parse::<KeyParam>("aws/account/1").unwrap().0.to_string(),
            "aws/account/1"
        );
        assert!(parse::<KeyParam>("aws/account/").is_err());
        assert!(parse::<NameFilter>(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(parse::<NameFilter>(&"é".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn points_are_times_seqs_or_empty_when_optional() {
        let any_of = |s: MetaSchemaRef| match s {
            MetaSchemaRef::Inline(s) => s.any_of.len(),
            other => panic!("{other:?}"),
        };
        assert_eq!(any_of(OptionalPoint::schema_ref()), 3);
        assert_eq!(any_of(RequiredPoint::schema_ref()), 2);
    }
}
