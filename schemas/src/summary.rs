//! The read model's view of an event ([`crate::decode_summary`]): the envelope, the asset's
//! identity, name and status, and where `data` lies in the payload.
//!
//! To accept and refuse exactly what [`crate::decode`] does, `data` is read through *check*
//! types that mirror the types of [`crate::asset`] field for field (same names, required fields,
//! defaults and `deny_unknown_fields`) but build nothing they are not asked for. A test in this
//! module keeps the two in step.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::asset::{AssetStatus, SweepCompleted};
use crate::event::EventType;

/// A decoded and validated event, reduced to what the read model stores.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub id: String,
    pub ty: EventType,
    pub source: String,
    /// The asset key for asset events; the scope for sweeps.
    pub subject: Option<String>,
    /// When the collector observed it.
    pub time: DateTime<Utc>,
    pub contenthash: Option<String>,
    pub prevseq: Option<u64>,
    pub chainhash: Option<String>,
    pub data: DataSummary,
    /// Byte range of the `data` member (a JSON object, exactly as received) in the payload.
    pub data_range: Range<usize>,
}

impl EventSummary {
    /// The `data` member's text, given the payload this summary was decoded from.
    pub fn data_text<'p>(&self, payload: &'p [u8]) -> &'p str {
        // The range was taken from a validated UTF-8 JSON value of this payload; checking it
        // again is the price of no `unsafe` (SIMD: a fraction of a microsecond per document).
        payload
            .get(self.data_range.clone())
            .and_then(|b| simdutf8::basic::from_utf8(b).ok())
            .unwrap_or("null")
    }

    /// The asset key of an asset event.
    pub fn asset_key(&self) -> Option<&str> {
        match self.data {
            DataSummary::Sweep(_) => None,
            _ => self.subject.as_deref(),
        }
    }
}

/// What the read model keeps of `data`.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSummary {
    /// `discovered` and `changed`.
    Asset {
        provider: String,
        kind: String,
        id: String,
        name: String,
        status: AssetStatus,
    },
    /// `deleted`.
    Tombstone {
        provider: String,
        kind: String,
        id: String,
        /// Last known name.
        name: String,
    },
    /// `sweep.completed`, in full.
    Sweep(Box<SweepCompleted>),
}

/// Mirrors [`crate::Asset`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssetCheck<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub provider: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub status: AssetStatus,
    #[serde(default)]
    #[allow(dead_code)]
    org_path: Strings,
    #[serde(default)]
    #[allow(dead_code)]
    region_residency: Strings,
    #[serde(default)]
    #[allow(dead_code)]
    url: Option<Str>,
    #[serde(default)]
    #[allow(dead_code)]
    auth_mode: Option<Str>,
    #[serde(default)]
    #[allow(dead_code)]
    labels: StringMap,
    #[serde(default)]
    #[allow(dead_code)]
    raw: AnyJson,
    #[allow(dead_code)]
    provenance: ProvenanceCheck,
}

/// Mirrors [`crate::Tombstone`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TombstoneCheck<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub provider: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[allow(dead_code)]
    reason: Str,
    #[allow(dead_code)]
    last_contenthash: Str,
    #[allow(dead_code)]
    provenance: ProvenanceCheck,
}

/// Mirrors [`crate::Provenance`].
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProvenanceCheck {
    collector: Str,
    collector_version: Str,
    api: Str,
    #[serde(default)]
    request_ids: Strings,
    #[serde(default)]
    pages: u32,
    #[serde(default)]
    principal: Option<Str>,
}

/// A JSON string (as `String` accepts it), not kept.
struct Str;

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Str, E> {
                Ok(Str)
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON array of strings (as `Vec<String>` accepts it), not kept.
#[derive(Default)]
struct Strings;

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                while seq.next_element::<Str>()?.is_some() {}
                Ok(Strings)
            }
        }
        d.deserialize_seq(V)
    }
}

/// A JSON object of strings (as `BTreeMap<String, String>` accepts it), not kept.
#[derive(Default)]
struct StringMap;

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringMap, A::Error> {
                while map.next_entry::<Str, Str>()?.is_some() {}
                Ok(StringMap)
            }
        }
        d.deserialize_map(V)
    }
}

/// Any JSON value (as `serde_json::Value` accepts it: numbers are parsed, so one out of range is
/// refused as it is there), not kept.
#[derive(Default)]
struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_none<E: de::Error>(self) -> Result<AnyJson, E> {
                Ok(AnyJson)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<AnyJson, D::Error> {
                AnyJson::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
                while seq.next_element::<AnyJson>()?.is_some() {}
                Ok(AnyJson)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
                while map.next_entry::<Str, AnyJson>()?.is_some() {}
                Ok(AnyJson)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::{json, Value};

    use crate::event::tests::sample_asset;
    use crate::event::{encode_asset, encode_tombstone, ChainLink, EventData};
    use crate::{decode, decode_summary, EventType, Provenance, Tombstone};

    use super::*;

    /// Encodes an event and replaces its `data` with `data`.
    fn with_data(ty: EventType, data: &Value) -> Vec<u8> {
        let at = chrono::TimeZone::timestamp_opt(&Utc, 1_760_000_000, 0).unwrap();
        let payload = match ty {
            EventType::Deleted => {
                let t = Tombstone {
                    id: "123456789012".into(),
                    provider: "aws".into(),
                    kind: "account".into(),
                    name: "gone".into(),
                    reason: "absent".into(),
                    last_contenthash: "abc".into(),
                    provenance: Provenance::default(),
                };
                encode_tombstone(&t, "/t", at, &ChainLink::default())
                    .unwrap()
                    .payload
            }
            _ => {
                encode_asset(
                    ty,
                    &sample_asset("123456789012"),
                    "/t",
                    at,
                    &ChainLink::default(),
                )
                .unwrap()
                .payload
            }
        };
        let mut ev: Value = serde_json::from_slice(&payload).unwrap();
        ev["data"] = data.clone();
        serde_json::to_vec(&ev).unwrap()
    }

    /// Applies `edit` to a copy of `base` (a JSON object).
    fn edited(base: &Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
        let mut v = base.clone();
        edit(v.as_object_mut().unwrap());
        v
    }

    #[test]
    fn accepts_and_refuses_exactly_what_decode_does() {
        let asset = serde_json::to_value(sample_asset("123456789012")).unwrap();
        let mut asset_cases = vec![asset.clone()];
        for field in [
            "id",
            "provider",
            "kind",
            "name",
            "status",
            "org_path",
            "region_residency",
            "url",
            "auth_mode",
            "labels",
            "raw",
            "provenance",
        ] {
            for bad in [
                json!(null),
                json!(1),
                json!("x"),
                json!(["x"]),
                json!([1]),
                json!({"k": "v"}),
                json!({"k": 1}),
                json!(1e300),
                json!("active"),
                json!({"collector": "c", "collector_version": "1", "api": "a"}),
            ] {
                asset_cases.push(edited(&asset, |m| {
                    m.insert(field.into(), bad.clone());
                }));
            }
            asset_cases.push(edited(&asset, |m| {
                m.remove(field);
            }));
        }
        asset_cases.push(edited(&asset, |m| {
            m.insert("extra".into(), json!(1));
        }));
        asset_cases.push(edited(&asset, |m| {
            m.insert("id".into(), json!("other"));
        }));
        asset_cases.push(edited(&asset, |m| {
            m.insert("provider".into(), json!("AWS"));
        }));
        asset_cases.push(edited(&asset, |m| {
            m.insert("name".into(), json!("caf\u{e9} \"q\" \\ \n"));
            m.insert(
                "raw".into(),
                json!({"deep": [[{"x": [null, true, -1, 2.5]}]]}),
            );
        }));
        for field in ["collector", "pages", "request_ids", "principal", "api"] {
            for bad in [json!(null), json!(-1), json!("x"), json!(["x"]), json!([1])] {
                asset_cases.push(edited(&asset, |m| {
                    m["provenance"][field] = bad.clone();
                }));
            }
        }
        asset_cases.push(edited(&asset, |m| {
            m["provenance"]["secret"] = json!("x");
        }));
        // Out-of-range numbers are refused by `Value`; the check must refuse them too.
        let mut cases: Vec<Vec<u8>> = asset_cases
            .iter()
            .map(|d| with_data(EventType::Changed, d))
            .collect();
        let big = with_data(EventType::Changed, &asset);
        let text = String::from_utf8(big)
            .unwrap()
            .replace("\"raw\":{", "\"raw\":{\"huge\":1e400,");
        cases.push(text.into_bytes());

        let tomb =
            serde_json::from_slice::<Value>(&with_data(EventType::Deleted, &json!(null))).unwrap();
        let _ = tomb;
        let tombstone = json!({
            "id": "123456789012", "provider": "aws", "kind": "account", "name": "gone",
            "reason": "absent", "last_contenthash": "abc",
            "provenance": {"collector": "c", "collector_version": "1", "api": "a"}
        });
        cases.push(with_data(EventType::Deleted, &tombstone));
        for field in ["id", "name", "reason", "last_contenthash", "provenance"] {
            cases.push(with_data(
                EventType::Deleted,
                &edited(&tombstone, |m| {
                    m.remove(field);
                }),
            ));
            cases.push(with_data(
                EventType::Deleted,
                &edited(&tombstone, |m| {
                    m.insert(field.into(), json!(7));
                }),
            ));
        }
        cases.push(with_data(
            EventType::Deleted,
            &edited(&tombstone, |m| {
                m.insert("status".into(), json!("active"));
            }),
        ));

        let (mut ok, mut refused) = (0, 0);
        for payload in &cases {
            let full = decode(payload);
            let summary = decode_summary(payload);
            match (&full, &summary) {
                (Ok(f), Ok(s)) => {
                    ok += 1;
                    assert_eq!(
                        (&f.id, f.ty, &f.source, &f.subject, f.time),
                        (&s.id, s.ty, &s.source, &s.subject, s.time)
                    );
                    assert_eq!(
                        (&f.contenthash, f.prevseq, &f.chainhash),
                        (&s.contenthash, s.prevseq, &s.chainhash)
                    );
                    assert_eq!(f.data_raw.get(), s.data_text(payload));
                    match (&f.data, &s.data) {
                        (
                            EventData::Asset(a),
                            DataSummary::Asset {
                                provider,
                                kind,
                                id,
                                name,
                                status,
                            },
                        ) => assert_eq!(
                            (&a.provider, &a.kind, &a.id, &a.name, a.status),
                            (provider, kind, id, name, *status)
                        ),
                        (
                            EventData::Tombstone(t),
                            DataSummary::Tombstone {
                                provider,
                                kind,
                                id,
                                name,
                            },
                        ) => assert_eq!(
                            (&t.provider, &t.kind, &t.id, &t.name),
                            (provider, kind, id, name)
                        ),
                        other => panic!("different data: {other:?}"),
                    }
                }
                (Err(_), Err(_)) => refused += 1,
                _ => panic!(
                    "decode and decode_summary disagree on {}: {:?} vs {:?}",
                    String::from_utf8_lossy(payload),
                    full.map(|_| ()),
                    summary.map(|_| ())
                ),
            }
        }
        assert!(ok >= 10 && refused >= 50, "ok {ok}, refused {refused}");
    }
}
