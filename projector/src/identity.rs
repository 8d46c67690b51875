//! The read model belongs to one stream (DESIGN §5). A database records the identity of the
//! stream it was built from — the stream's creation time and the SHA-256 of its first message —
//! in its `meta` table, with the first batch it commits. Before following a stream, and whenever
//! the ordered consumer had to be recreated or the stream's tip is refreshed, the projector
//! checks that the stream is still that one: a stream deleted and created again under the same
//! name has a new creation time, and its sequences start again at 1, so applying it on top of the
//! old state would mix two histories.

use std::fmt;

use async_nats::jetstream::stream::Stream as JsStream;
use chrono::{DateTime, SecondsFormat, Utc};
use inventory_bus::StreamState;
use inventory_schemas::STREAM_NAME;
use sha2::{Digest, Sha256};

use crate::ProjectorError;

/// The stream a read model was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIdentity {
    /// The stream's creation time (JetStream's `created`).
    pub created: DateTime<Utc>,
    /// The sequence of the first message applied: 1, or the stream's first sequence when
    /// retention (`max_age`) had expired older messages.
    pub first_seq: u64,
    /// SHA-256 (hex) of that message's payload.
    pub first_sha256: String,
}

/// SHA-256 (hex) of a message payload, as [`StreamIdentity::first_sha256`] records it.
pub fn payload_sha256(payload: &[u8]) -> String {
    hex::encode(Sha256::digest(payload))
}

/// A creation time as the `meta` table stores it (RFC 3339, nanoseconds: exact round trip).
pub(crate) fn format_created(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn short(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl fmt::Display for StreamIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {STREAM_NAME} created {} (first message: sequence {}, sha256 {})",
            short(self.created),
            self.first_seq,
            &self.first_sha256[..self.first_sha256.len().min(16)]
        )
    }
}

fn changed(recorded: impl ToString, found: String) -> ProjectorError {
    ProjectorError::StreamChanged {
        recorded: recorded.to_string(),
        found,
    }
}

/// Checks, without reading any message, that `state` is the stream created at `created` and
/// that it holds everything up to `applied` (the last sequence the read model has): what is
/// checked while following, each time the stream's state is read.
pub fn check_state(
    created: DateTime<Utc>,
    recorded: &dyn fmt::Display,
    applied: u64,
    state: &StreamState,
) -> Result<(), ProjectorError> {
    if state.created != created {
        return Err(changed(
            recorded,
            format!(
                "{STREAM_NAME} created {} (deleted and created again, or another stream)",
                short(state.created)
            ),
        ));
    }
    if state.last_seq < applied {
        return Err(changed(
            recorded,
            format!(
                "{STREAM_NAME} created {} ending at sequence {}, before the read model's \
                 sequence {applied} (messages lost, or the stream restored from an older copy)",
                short(state.created),
                state.last_seq
            ),
        ));
    }
    Ok(())
}

/// The stream an empty read model is being built from, before its identity is recorded.
pub(crate) fn describe_created(created: DateTime<Utc>) -> String {
    format!("stream {STREAM_NAME} created {}", short(created))
}

/// The check made before following: [`check_state`], the recorded first message still holds the
/// recorded digest (when the stream still stores it), and a database with events records an
/// identity at all.
pub(crate) async fn check_start(
    stream: &JsStream,
    recorded: Option<&StreamIdentity>,
    checkpoint: u64,
    state: &StreamState,
) -> Result<(), ProjectorError> {
    let Some(id) = recorded else {
        if checkpoint == 0 {
            return Ok(());
        }
        return Err(changed(
            format!(
                "an unknown stream (events up to sequence {checkpoint} but no stream identity: \
                 written by an older version)"
            ),
            format!(
                "{STREAM_NAME} created {}, which it cannot be shown to belong to",
                short(state.created)
            ),
        ));
    };
    check_state(id.created, id, checkpoint, state)?;
    // Once retention expired the first message there is nothing left to compare it with.
    if (state.first_seq..=state.last_seq).contains(&id.first_seq) {
        if let Some(first) = inventory_bus::message_at(stream, id.first_seq).await? {
            let digest = payload_sha256(&first.payload);
            if digest != id.first_sha256 {
                return Err(changed(
                    id,
                    format!(
                        "{STREAM_NAME} created {} whose message {} has sha256 {} \
                         (rewritten, or another stream)",
                        short(state.created),
                        id.first_seq,
                        &digest[..16]
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn state(created: DateTime<Utc>, first_seq: u64, last_seq: u64) -> StreamState {
        StreamState {
            created,
            first_seq,
            last_seq,
        }
    }

    #[test]
    fn a_new_creation_time_or_a_stream_behind_the_read_model_is_another_stream() {
        let t0 = Utc.timestamp_nanos(1_700_000_000_123_456_789);
        let id = StreamIdentity {
            created: t0,
            first_seq: 1,
            first_sha256: payload_sha256(b"first"),
        };
        assert!(check_state(t0, &id, 10, &state(t0, 1, 10)).is_ok());
        assert!(check_state(t0, &id, 10, &state(t0, 5, 12)).is_ok());

        let recreated = check_state(
            t0,
            &id,
            10,
            &state(t0 + chrono::Duration::nanoseconds(1), 1, 40),
        )
        .unwrap_err();
        assert_eq!(recreated.kind(), crate::ErrorKind::StreamChanged);
        let line = recreated.to_string();
        assert!(line.contains("2023-11-14T22:13:20.123456789Z"), "{line}");
        assert!(line.contains("deleted and created again"), "{line}");

        let behind = check_state(t0, &id, 10, &state(t0, 1, 9)).unwrap_err();
        assert!(behind
            .to_string()
            .contains("ending at sequence 9, before the read model's sequence 10"));
    }

    #[test]
    fn the_creation_time_round_trips_exactly() {
        let t = Utc.timestamp_nanos(1_700_000_000_000_000_001);
        let s = format_created(t);
        assert_eq!(DateTime::parse_from_rfc3339(&s).unwrap(), t);
    }
}
