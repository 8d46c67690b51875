//! Decoding of structured-mode CloudEvents 1.0 (JSON event format) into [`InventoryEvent`]s.
//!
//! Events are *built* with `cloudevents-sdk` (see [`crate::event`]). Parsing them is the hot path
//! of the projector, so [`decode`] reads the envelope directly with serde instead of through the
//! SDK's `Event` (which first builds a full `serde_json::Value` of the whole event): attributes
//! are borrowed from the payload, `data` is kept as the exact JSON text received and parsed once
//! into its typed form. It accepts what the SDK accepts for the events of this contract; a test
//! checks that both agree attribute for attribute on every event we encode.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{EventData, EventType, InventoryEvent};
use crate::key::validate_key;
use crate::summary::{DataSummary, EventSummary};
use crate::SchemaError;

/// A JSON string, borrowed from the payload unless it contains escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A context attribute's value: a string, or `null` (which the SDK treats as absent).
struct OptStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for OptStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(OptStr(Option::<Str<'de>>::deserialize(d)?.map(|s| s.0)))
    }
}

/// An extension attribute's value, as the SDK's `ExtensionValue` accepts it (string, boolean or
/// 64-bit signed integer); `null` is absent.
enum Ext<'a> {
    Null,
    String(Cow<'a, str>),
    Boolean(bool),
    Integer(i64),
}

impl Ext<'_> {
    fn describe(&self) -> String {
        match self {
            Ext::Null => "null".to_owned(),
            Ext::String(s) => s.to_string(),
            Ext::Boolean(b) => b.to_string(),
            Ext::Integer(i) => i.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Ext<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ext<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a boolean or an integer")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Ext::Null)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Ext::String(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Ext::String(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Ext::String(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Ext::Boolean(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Ext::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(Ext::Integer)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// The top-level members of a structured-mode event, borrowed from the payload.
#[derive(Default)]
struct Envelope<'a> {
    specversion: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
    ty: Option<Cow<'a, str>>,
    source: Option<Cow<'a, str>>,
    subject: Option<Cow<'a, str>>,
    time: Option<Cow<'a, str>>,
    datacontenttype: Option<Cow<'a, str>>,
    dataschema: Option<Cow<'a, str>>,
    /// `data`, unless it is `null`.
    data: Option<&'a RawValue>,
    data_base64: bool,
    contenthash: Option<Ext<'a>>,
    chainhash: Option<Ext<'a>>,
    traceparent: Option<Ext<'a>>,
    prevseq: Option<Ext<'a>>,
}

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Envelope<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut env = Envelope::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    // A repeated member replaces the earlier one, as in a JSON object read into
                    // a map (which is what the SDK does).
                    match key.0.as_ref() {
                        "specversion" => env.specversion = map.next_value::<OptStr<'de>>()?.0,
                        "id" => env.id = map.next_value::<OptStr<'de>>()?.0,
                        "type" => env.ty = map.next_value::<OptStr<'de>>()?.0,
                        "source" => env.source = map.next_value::<OptStr<'de>>()?.0,
                        "subject" => env.subject = map.next_value::<OptStr<'de>>()?.0,
                        "time" => env.time = map.next_value::<OptStr<'de>>()?.0,
                        "datacontenttype" => {
                            env.datacontenttype = map.next_value::<OptStr<'de>>()?.0
                        }
                        "dataschema" => env.dataschema = map.next_value::<OptStr<'de>>()?.0,
                        "data" => {
                            let raw: &'de RawValue = map.next_value()?;
                            env.data = (raw.get() != "null").then_some(raw);
                        }
                        "data_base64" => {
                            env.data_base64 = map.next_value::<Option<IgnoredAny>>()?.is_some()
                        }
                        "contenthash" => env.contenthash = Some(map.next_value()?),
                        "chainhash" => env.chainhash = Some(map.next_value()?),
                        "traceparent" => env.traceparent = Some(map.next_value()?),
                        "prevseq" => env.prevseq = Some(map.next_value()?),
                        // Any other extension: the SDK requires a string, boolean or integer.
                        _ => {
                            map.next_value::<Ext<'de>>()?;
                        }
                    }
                }
                Ok(env)
            }
        }
        d.deserialize_map(V)
    }
}

fn ext_string(value: Option<Ext<'_>>, name: &'static str) -> Result<Option<String>, SchemaError> {
    match value {
        None | Some(Ext::Null) => Ok(None),
        Some(Ext::String(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(SchemaError::BadExtension {
            name,
            reason: format!("expected a string, got {}", other.describe()),
        }),
    }
}

fn ext_u64(value: Option<Ext<'_>>, name: &'static str) -> Result<Option<u64>, SchemaError> {
    match value {
        None | Some(Ext::Null) => Ok(None),
        Some(Ext::Integer(i)) => {
            u64::try_from(i)
                .map(Some)
                .map_err(|_| SchemaError::BadExtension {
                    name,
                    reason: format!("negative value {i}"),
                })
        }
        // Integers may arrive as strings from bindings that only carry strings.
        Some(Ext::String(s)) => s
            .parse::<u64>()
            .map(Some)
            .map_err(|_| SchemaError::BadExtension {
                name,
                reason: format!("not an unsigned integer: {s:?}"),
            }),
        Some(other) => Err(SchemaError::BadExtension {
            name,
            reason: format!("expected an integer, got {}", other.describe()),
        }),
    }
}

fn require<T>(value: Option<T>, name: &'static str) -> Result<T, SchemaError> {
    value.ok_or(SchemaError::MissingAttribute(name))
}

fn not_cloud_event(reason: impl fmt::Display) -> SchemaError {
    SchemaError::NotCloudEvent(reason.to_string())
}

/// A required string attribute: present, not `null` (the SDK's rule) and not empty.
fn required_str<'a>(
    value: Option<Cow<'a, str>>,
    name: &'static str,
) -> Result<Cow<'a, str>, SchemaError> {
    match value {
        None => Err(not_cloud_event(format_args!("missing field `{name}`"))),
        Some(s) if s.is_empty() => Err(not_cloud_event(format_args!("empty attribute `{name}`"))),
        Some(s) => Ok(s),
    }
}

/// Whether a `datacontenttype` announces JSON (the SDK's rule for reading `data` as JSON).
fn is_json_content_type(ct: &str) -> bool {
    ct.starts_with("application/json") || ct.starts_with("text/json") || ct.ends_with("+json")
}

fn typed<T: de::DeserializeOwned>(ty: EventType, data: &RawValue) -> Result<T, SchemaError> {
    serde_json::from_str(data.get()).map_err(|e| SchemaError::InvalidData {
        ty: ty.short(),
        reason: e.to_string(),
    })
}

/// The validated envelope of an event: everything but the typed `data`.
struct Opened<'a> {
    id: Cow<'a, str>,
    ty: EventType,
    source: Cow<'a, str>,
    subject: Option<Cow<'a, str>>,
    time: DateTime<Utc>,
    contenthash: Option<String>,
    prevseq: Option<u64>,
    chainhash: Option<String>,
    traceparent: Option<String>,
    /// `data`: a JSON object.
    data: &'a RawValue,
}

fn open(payload: &[u8]) -> Result<Opened<'_>, SchemaError> {
    let env: Envelope<'_> = serde_json::from_slice(payload).map_err(not_cloud_event)?;
    match env.specversion.as_deref() {
        Some("1.0") => {}
        Some(other) => {
            return Err(not_cloud_event(format_args!(
                "unknown variant `{other}`, expected `1.0`"
            )))
        }
        None => return Err(not_cloud_event("missing field `specversion`")),
    }
    let id = required_str(env.id, "id")?;
    let ty_str = required_str(env.ty, "type")?;
    let source = required_str(env.source, "source")?;
    let time = match env.time {
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| not_cloud_event(format_args!("time {t:?}: {e}")))?,
        None => return Err(SchemaError::MissingAttribute("time")),
    };
    if let Some(ct) = env.datacontenttype.as_deref() {
        if !is_json_content_type(ct) {
            return Err(not_cloud_event(format_args!(
                "datacontenttype {ct:?} is not JSON"
            )));
        }
    }
    if let Some(schema) = env.dataschema.as_deref() {
        url::Url::parse(schema).map_err(|e| not_cloud_event(format_args!("dataschema: {e}")))?;
    }
    if env.data.is_some() && env.data_base64 {
        return Err(not_cloud_event(
            "Cannot have both data and data_base64 field",
        ));
    }
    let ty: EventType = ty_str.parse()?;
    let contenthash = ext_string(env.contenthash, "contenthash")?;
    let chainhash = ext_string(env.chainhash, "chainhash")?;
    let traceparent = ext_string(env.traceparent, "traceparent")?;
    let prevseq = ext_u64(env.prevseq, "prevseq")?;
    let data = match env.data {
        Some(raw) => raw,
        None if env.data_base64 => {
            return Err(SchemaError::InvalidData {
                ty: ty.short(),
                reason: "data_base64 is not supported: data must be a JSON object".into(),
            })
        }
        None => return Err(SchemaError::MissingAttribute("data")),
    };
    if !data.get().starts_with('{') {
        return Err(SchemaError::InvalidData {
            ty: ty.short(),
            reason: "data is not a JSON object".into(),
        });
    }
    Ok(Opened {
        id,
        ty,
        source,
        subject: env.subject,
        time,
        contenthash,
        prevseq,
        chainhash,
        traceparent,
        data,
    })
}

impl Opened<'_> {
    /// For asset events: the key of the data is valid and equals `subject`, and the chain
    /// extensions are present.
    fn check_asset(&self, provider: &str, kind: &str, native_id: &str) -> Result<(), SchemaError> {
        validate_key(provider, kind, native_id)?;
        let subject = require(self.subject.as_deref(), "subject")?;
        let matches = subject
            .strip_prefix(provider)
            .and_then(|s| s.strip_prefix('/'))
            .and_then(|s| s.strip_prefix(kind))
            .and_then(|s| s.strip_prefix('/'))
            == Some(native_id);
        if !matches {
            return Err(SchemaError::SubjectMismatch {
                subject: subject.to_owned(),
                key: format!("{provider}/{kind}/{native_id}"),
            });
        }
        require(self.contenthash.as_ref(), "contenthash")?;
        require(self.chainhash.as_ref(), "chainhash")?;
        require(self.prevseq, "prevseq")?;
        Ok(())
    }
}

/// Decodes and validates a structured-mode CloudEvent of one of our types.
///
/// Checks: CloudEvents 1.0 envelope (`specversion` "1.0"; non-empty `id`, `source`, `type`;
/// `time` RFC 3339; `datacontenttype`, when present, JSON; `dataschema`, when present, a URL;
/// extensions strings, booleans or integers), a known `type`, `data` a JSON object of the type's
/// schema, and for asset events the `subject` equal to the data's key and the
/// `contenthash`/`prevseq`/`chainhash` extensions present and well-formed. `data` is kept as the
/// exact text received ([`InventoryEvent::data_raw`]).
pub fn decode(payload: &[u8]) -> Result<InventoryEvent, SchemaError> {
    let ev = open(payload)?;
    let ty = ev.ty;
    let data = match ty {
        EventType::Discovered | EventType::Changed => EventData::Asset(typed(ty, ev.data)?),
        EventType::Deleted => EventData::Tombstone(typed(ty, ev.data)?),
        EventType::SweepCompleted => EventData::Sweep(typed(ty, ev.data)?),
    };
    match &data {
        EventData::Asset(a) => ev.check_asset(&a.provider, &a.kind, &a.id)?,
        EventData::Tombstone(t) => ev.check_asset(&t.provider, &t.kind, &t.id)?,
        EventData::Sweep(_) => {}
    }
    Ok(InventoryEvent {
        id: ev.id.into_owned(),
        ty,
        source: ev.source.into_owned(),
        subject: ev.subject.map(Cow::into_owned),
        time: ev.time,
        contenthash: ev.contenthash,
        prevseq: ev.prevseq,
        chainhash: ev.chainhash,
        traceparent: ev.traceparent,
        data,
        data_raw: ev.data.to_owned(),
    })
}

/// Decodes and validates an event exactly as [`decode`] does (the same events are accepted and
/// refused, with the same errors), but keeps only what the read model needs: the envelope, the
/// asset's identity, name and status (or a sweep's data), and where `data` lies in the payload.
/// The rest of `data` (labels, the provider's record, provenance) is checked against the schema
/// without being built, which makes this several times cheaper for the projector's replays.
pub fn decode_summary(payload: &[u8]) -> Result<EventSummary, SchemaError> {
    let ev = open(payload)?;
    let ty = ev.ty;
    let data = match ty {
        EventType::Discovered | EventType::Changed => {
            let a: crate::summary::AssetCheck<'_> = checked(ty, ev.data)?;
            ev.check_asset(&a.provider, &a.kind, &a.id)?;
            DataSummary::Asset {
                provider: a.provider.into_owned(),
                kind: a.kind.into_owned(),
                id: a.id.into_owned(),
                name: a.name.into_owned(),
                status: a.status,
            }
        }
        EventType::Deleted => {
            let t: crate::summary::TombstoneCheck<'_> = checked(ty, ev.data)?;
            ev.check_asset(&t.provider, &t.kind, &t.id)?;
            DataSummary::Tombstone {
                provider: t.provider.into_owned(),
                kind: t.kind.into_owned(),
                id: t.id.into_owned(),
                name: t.name.into_owned(),
            }
        }
        EventType::SweepCompleted => DataSummary::Sweep(Box::new(typed(ty, ev.data)?)),
    };
    let start = ev.data.get().as_ptr() as usize - payload.as_ptr() as usize;
    Ok(EventSummary {
        id: ev.id.into_owned(),
        ty,
        source: ev.source.into_owned(),
        subject: ev.subject.map(Cow::into_owned),
        time: ev.time,
        contenthash: ev.contenthash,
        prevseq: ev.prevseq,
        chainhash: ev.chainhash,
        data,
        data_range: start..start + ev.data.get().len(),
    })
}

fn checked<'a, T: Deserialize<'a>>(ty: EventType, data: &'a RawValue) -> Result<T, SchemaError> {
    serde_json::from_str(data.get()).map_err(|e| SchemaError::InvalidData {
        ty: ty.short(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::asset::{Provenance, SweepCompleted, SweepCounts, SweepStatus, Tombstone};
    use crate::event::tests::sample_asset;
    use crate::event::{encode_asset, encode_sweep, encode_tombstone, ChainLink};
    use chrono::TimeZone;
    use cloudevents::event::{Data, ExtensionValue};
    use cloudevents::{AttributesReader, Event};
    use serde_json::{json, Value};

    /// Every kind of event the contract produces, with escapes and non-ASCII text.
    fn encoded() -> Vec<Vec<u8>> {
        let at = Utc.timestamp_opt(1_760_000_000, 123_456_789).unwrap();
        let mut asset = sample_asset("123456789012");
        asset.name = "caf\u{e9} \"quoted\" \\ tab\t/newline\n".into();
        asset.url = Some("https://example.com/x?y=1&z=\u{2603}".into());
        asset.raw =
            json!({"n": 1.5, "big": u64::MAX, "neg": -3, "nested": [null, true, {"k": "v"}]});
        let prev = ChainLink {
            prevseq: 41,
            chainhash: "c0ffee".into(),
        };
        let tomb = Tombstone {
            id: "123456789012".into(),
            provider: "aws".into(),
            kind: "account".into(),
            name: "gone".into(),
            reason: "absent from a complete sweep".into(),
            last_contenthash: "abc".into(),
            provenance: Provenance::default(),
        };
        let sweep = SweepCompleted {
            collector: "aws".into(),
            provider: "aws".into(),
            scope: "o-abc".into(),
            status: SweepStatus::Partial,
            started_at: at,
            finished_at: at,
            duration_ms: 12,
            counts: SweepCounts::default(),
            error: Some("page 3 failed".into()),
            provenance: Provenance::default(),
        };
        vec![
            encode_asset(
                EventType::Discovered,
                &asset,
                "/collectors/aws/o-abc",
                at,
                &ChainLink::default(),
            )
            .unwrap()
            .payload,
            encode_asset(EventType::Changed, &asset, "/api", at, &prev)
                .unwrap()
                .payload,
            encode_tombstone(&tomb, "/collectors/aws/o-abc", at, &prev)
                .unwrap()
                .payload,
            encode_sweep(&sweep, "/collectors/aws/o-abc")
                .unwrap()
                .payload,
        ]
    }

    fn sdk_ext(event: &Event, name: &str) -> Option<ExtensionValue> {
        event.extension(name).cloned()
    }

    #[test]
    fn the_sdk_parses_every_event_we_encode_and_agrees_with_decode() {
        for payload in encoded() {
            let sdk: Event = serde_json::from_slice(&payload).unwrap();
            let ours = decode(&payload).unwrap();
            assert_eq!(sdk.specversion().as_str(), "1.0");
            assert_eq!(sdk.id(), ours.id);
            assert_eq!(sdk.ty(), ours.ty.as_str());
            assert_eq!(sdk.source().as_str(), ours.source);
            assert_eq!(sdk.subject(), ours.subject.as_deref());
            assert_eq!(sdk.time(), Some(&ours.time));
            assert_eq!(sdk.datacontenttype(), Some("application/json"));
            assert_eq!(
                sdk_ext(&sdk, "contenthash"),
                ours.contenthash.clone().map(ExtensionValue::String)
            );
            assert_eq!(
                sdk_ext(&sdk, "chainhash"),
                ours.chainhash.clone().map(ExtensionValue::String)
            );
            assert_eq!(
                sdk_ext(&sdk, "prevseq"),
                ours.prevseq.map(|p| ExtensionValue::Integer(p as i64))
            );
            assert_eq!(sdk_ext(&sdk, "traceparent"), None);
            let Some(Data::Json(data)) = sdk.data() else {
                panic!("the SDK did not read JSON data");
            };
            assert_eq!(data, &ours.data_json());
            // The data text is kept exactly as it appears in the payload.
            let text = std::str::from_utf8(&payload).unwrap();
            assert!(text.contains(ours.data_raw.get()));
        }
    }

    /// The decoder this one replaced: the SDK's `Event`, then the same checks.
    fn decode_with_sdk(payload: &[u8]) -> Result<InventoryEvent, String> {
        let mut event: Event = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let ty: EventType = event.ty().parse().map_err(|e: SchemaError| e.to_string())?;
        let ext = |name| match event.extension(name) {
            None => None,
            Some(ExtensionValue::String(s)) => Some(Ext::String(Cow::Owned(s.clone()))),
            Some(ExtensionValue::Integer(i)) => Some(Ext::Integer(*i)),
            Some(ExtensionValue::Boolean(b)) => Some(Ext::Boolean(*b)),
        };
        let contenthash =
            ext_string(ext("contenthash"), "contenthash").map_err(|e| e.to_string())?;
        let chainhash = ext_string(ext("chainhash"), "chainhash").map_err(|e| e.to_string())?;
        let traceparent =
            ext_string(ext("traceparent"), "traceparent").map_err(|e| e.to_string())?;
        let prevseq = ext_u64(ext("prevseq"), "prevseq").map_err(|e| e.to_string())?;
        let time = *event.time().ok_or("no time")?;
        let (id, source, subject) = (
            event.id().to_owned(),
            event.source().to_string(),
            event.subject().map(str::to_owned),
        );
        let Some(Data::Json(data)) = event.take_data().2 else {
            return Err("no JSON data".into());
        };
        // Re-encode the data and let `decode` check the rest, on a payload the SDK rebuilt.
        let mut rebuilt = json!({
            "specversion": "1.0", "id": id, "type": ty.as_str(), "source": source,
            "time": time, "data": data,
        });
        let obj = rebuilt.as_object_mut().unwrap();
        if let Some(s) = subject {
            obj.insert("subject".into(), s.into());
        }
        for (k, v) in [
            ("contenthash", contenthash),
            ("chainhash", chainhash),
            ("traceparent", traceparent),
        ] {
            if let Some(v) = v {
                obj.insert(k.into(), v.into());
            }
        }
        if let Some(p) = prevseq {
            obj.insert("prevseq".into(), p.into());
        }
        decode(&serde_json::to_vec(&rebuilt).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_and_refuses_what_the_sdk_based_decoder_did() {
        type Mutation = Box<dyn Fn(&mut Value)>;
        let set = |k: &'static str, v: Value| -> Mutation {
            Box::new(move |e: &mut Value| e[k] = v.clone())
        };
        let remove = |k: &'static str| -> Mutation {
            Box::new(move |e: &mut Value| {
                e.as_object_mut().unwrap().remove(k);
            })
        };
        let mutations: Vec<(&str, Mutation)> = vec![
            ("as encoded", Box::new(|_| {})),
            ("null subject", set("subject", Value::Null)),
            ("numeric id", set("id", json!(5))),
            ("missing id", remove("id")),
            ("missing source", remove("source")),
            ("missing time", remove("time")),
            ("bad time", set("time", json!("yesterday"))),
            (
                "offset time",
                set("time", json!("2025-10-09T10:00:00.5+02:00")),
            ),
            ("missing type", remove("type")),
            ("unknown type", set("type", json!("x.y"))),
            ("other specversion", set("specversion", json!("0.1"))),
            ("missing specversion", remove("specversion")),
            ("string prevseq", set("prevseq", json!("12"))),
            ("bad string prevseq", set("prevseq", json!("-1"))),
            ("negative prevseq", set("prevseq", json!(-1))),
            ("boolean prevseq", set("prevseq", json!(true))),
            ("float prevseq", set("prevseq", json!(1.5))),
            ("huge prevseq", set("prevseq", json!(u64::MAX))),
            ("null prevseq", set("prevseq", Value::Null)),
            ("numeric chainhash", set("chainhash", json!(7))),
            ("missing contenthash", remove("contenthash")),
            (
                "traceparent",
                set(
                    "traceparent",
                    json!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                ),
            ),
            ("other extension", set("region", json!("eu"))),
            ("object extension", set("region", json!({"a": 1}))),
            (
                "json+ content type",
                set("datacontenttype", json!("application/cloudevents+json")),
            ),
            (
                "dataschema",
                set("dataschema", json!("https://example.com/schema.json")),
            ),
            ("bad dataschema", set("dataschema", json!("not a url"))),
            ("null data", set("data", Value::Null)),
            ("missing data", remove("data")),
            (
                "data with unknown member",
                Box::new(|e| e["data"]["extra"] = json!(1)),
            ),
            (
                "data with bad status",
                Box::new(|e| e["data"]["status"] = json!("sideways")),
            ),
            (
                "data for another asset",
                Box::new(|e| e["data"]["id"] = json!("999")),
            ),
        ];
        for payload in encoded() {
            let event: Value = serde_json::from_slice(&payload).unwrap();
            for (name, mutate) in &mutations {
                let mut e = event.clone();
                mutate(&mut e);
                let bytes = serde_json::to_vec(&e).unwrap();
                let ours = decode(&bytes);
                let reference = decode_with_sdk(&bytes);
                assert_eq!(
                    ours.is_ok(),
                    reference.is_ok(),
                    "{name}: decode {:?} vs SDK {:?}",
                    ours.as_ref().err(),
                    reference.as_ref().err()
                );
                if let (Ok(a), Ok(b)) = (ours, reference) {
                    assert_eq!(a.data, b.data, "{name}");
                    assert_eq!(
                        (a.id, a.ty, a.time, a.prevseq),
                        (b.id, b.ty, b.time, b.prevseq),
                        "{name}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_what_the_contract_does_not_allow() {
        let payload = encoded().remove(0);
        let event: Value = serde_json::from_slice(&payload).unwrap();
        let cases: Vec<(&str, Value, &str)> = vec![
            ("id", json!(""), "empty attribute"),
            ("source", json!(""), "empty attribute"),
            ("datacontenttype", json!("text/plain"), "not JSON"),
            ("data", json!([1, 2]), "not a JSON object"),
            ("data", json!("{}"), "not a JSON object"),
            ("specversion", json!("0.3"), "not a CloudEvent"),
        ];
        for (key, value, expected) in cases {
            let mut e = event.clone();
            e[key] = value;
            let err = decode(&serde_json::to_vec(&e).unwrap()).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{key}: {err} !~ {expected}"
            );
        }
        let mut e = event.clone();
        e.as_object_mut().unwrap().remove("data");
        e["data_base64"] = json!("e30=");
        assert!(decode(&serde_json::to_vec(&e).unwrap()).is_err());
    }

    #[test]
    fn keeps_the_data_text_as_received() {
        let payload = encoded().remove(0);
        let text = String::from_utf8(payload).unwrap();
        // Reformat the data member with whitespace: it is stored as it came.
        let spaced = text.replacen("\"data\":{", "\"data\": {  ", 1);
        let ev = decode(spaced.as_bytes()).unwrap();
        assert!(ev.data_raw.get().starts_with("{  "));
        assert_eq!(ev.data_json(), decode(text.as_bytes()).unwrap().data_json());
        // Escaped attribute values are read too.
        let escaped = text.replacen("\"source\":\"/collectors", "\"source\":\"\\/collectors", 1);
        assert_eq!(
            decode(escaped.as_bytes()).unwrap().source,
            "/collectors/aws/o-abc"
        );
    }
}
