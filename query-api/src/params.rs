//! Parameter types of the spec.
//!
//! Each carries a query, path or header value as received: the service layer's `parse_*`
//! functions ([`crate::service`]) validate it and word the error. What each type declares in the
//! spec (`minimum`/`maximum`, `pattern`, `maxLength`) is built from the constants those functions
//! use, so that a value valid by the spec is one the server accepts, and the other way round
//! (schemathesis checks both against the real server: `tests/openapi_contract.rs`).

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromParameter, ParseResult, Type};

use crate::problem::ServiceError;
use crate::service;

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

macro_rules! param {
    ($(#[$meta:meta])* $name:ident($inner:ty) => $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub $inner);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
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

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                value.parse::<$inner>().map(Self).map_err(ParseError::custom)
            }
        }
    };
}

fn string(pattern: Option<&str>, max_length: Option<usize>) -> MetaSchema {
    MetaSchema {
        pattern: pattern.map(str::to_owned),
        max_length,
        ..MetaSchema::new("string")
    }
}

/// A point of the stream: an RFC 3339 time or `seq:N` ([`service::parse_point`]); `empty` adds
/// the empty string (the parameter is then absent).
fn point(empty: bool) -> MetaSchema {
    let mut any_of = vec![
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time"))),
        MetaSchemaRef::Inline(Box::new(string(Some(service::SEQ_POINT_PATTERN), None))),
    ];
    if empty {
        any_of.push(MetaSchemaRef::Inline(Box::new(string(None, Some(0)))));
    }
    MetaSchema {
        any_of,
        ..MetaSchema::new("string")
    }
}

param! {
    /// `limit`: the page size ([`service::parse_limit`]).
    Limit(i64) => MetaSchema {
        minimum: Some(1.0),
        maximum: Some(f64::from(service::MAX_LIMIT)),
        ..MetaSchema::new_with_format("integer", "int64")
    }
}

param! {
    /// `provider` or `kind` ([`service::word`]); empty means absent.
    Word(String) => string(Some(service::WORD_PATTERN), Some(service::MAX_WORD_LEN))
}

param! {
    /// `name`: a substring of asset names ([`service::MAX_NAME_CHARS`]).
    NameFilter(String) => string(None, Some(service::MAX_NAME_CHARS))
}

param! {
    /// `cursor` of the key-ordered pages (assets, diffs; [`service::parse_cursor`]).
    KeyCursor(String) => string(Some(service::KEY_CURSOR_PATTERN), None)
}

param! {
    /// `cursor` of the sequence-ordered pages (history, changes, rejected): a stream sequence.
    SeqCursor(String) => string(Some(service::SEQ_PATTERN), None)
}

param! {
    /// `Last-Event-ID`: the id (a stream sequence) of the last change event received.
    LastEventId(String) => string(Some(service::SEQ_PATTERN), None)
}

param! {
    /// An optional point of the stream ([`service::parse_point`]); empty means absent.
    OptionalPoint(String) => point(true)
}

param! {
    /// A required point of the stream ([`service::parse_point`]).
    RequiredPoint(String) => point(false)
}

param! {
    /// An asset key in a path: `<provider>/<kind>/<native id>` ([`service::KEY_PATTERN`]).
    KeyParam(String) => string(Some(service::KEY_PATTERN), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_of_limit_is_what_parse_limit_accepts() {
        let s = match Limit::schema_ref() {
            MetaSchemaRef::Inline(s) => s,
            other => panic!("{other:?}"),
        };
        let (lo, hi) = (s.minimum.unwrap() as i64, s.maximum.unwrap() as i64);
        assert!(service::parse_limit(Some(lo)).is_ok());
        assert!(service::parse_limit(Some(hi)).is_ok());
        assert!(service::parse_limit(Some(lo - 1)).is_err());
        assert!(service::parse_limit(Some(hi + 1)).is_err());
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
