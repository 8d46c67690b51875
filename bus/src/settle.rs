//! Publishes that settle through a leader change: retried with the same `Nats-Msg-Id`, an
//! unknown outcome resolved by reading the subject back ([`publish_settled`]).

use super::*;

/// What became of a publish retried by [`publish_settled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Stored at this stream sequence (by this attempt or an earlier one).
    Stored(u64),
    /// Refused: the subject moved past the expected sequence (another writer was first); the
    /// caller re-reads and re-decides.
    Conflict,
}

/// Publishes `event` until it is stored, refused by a racing writer, or `backoff`'s deadline
/// passes (then the last error). `maybe_stored`: an earlier attempt's outcome is unknown.
///
/// Retried with the same `Nats-Msg-Id` when the publish meets no responders or no stream (a
/// leader election), a timeout or a closed connection. An outcome that is unknown, and a
/// `wrong last sequence` (perhaps the subject moved because an earlier attempt of this very
/// event was stored), is resolved by reading the subject's last message back from the stream
/// leader ([`resolve`]) before anything is published again: the same event is never stored twice,
/// and a refusal is reported only when another writer really was first.
pub async fn publish_settled(
    js: &jetstream::Context,
    stream: &stream::Stream,
    event: &OutgoingEvent,
    backoff: Backoff,
    maybe_stored: bool,
) -> Result<Settled, BusError> {
    use retry::Verdict;
    use std::sync::atomic::{AtomicBool, Ordering};
    let unknown = AtomicBool::new(maybe_stored);
    let unknown = &unknown;
    retry::retry(backoff, |attempt| async move {
        if unknown.load(Ordering::Relaxed) {
            match resolve(stream, event).await {
                Ok(Some(settled)) => return Ok(settled),
                Ok(None) => unknown.store(false, Ordering::Relaxed),
                Err(e) => {
                    warn!(subject = %event.subject, id = %event.id, attempt, error = %e, "cannot read back a publish of unknown outcome; retrying");
                    return Err(Verdict::retry(e));
                }
            }
        }
        let e = match publish(js, event).await {
            Ok(seq) => return Ok(Settled::Stored(seq)),
            Err(e) => e,
        };
        match e.kind() {
            ErrorKind::Config => Err(Verdict::Fail(e)),
            ErrorKind::Conflict => match resolve(stream, event).await {
                Ok(Some(settled)) => Ok(settled),
                // The leader refused it, yet reads the subject where the event expects it: a
                // read racing an apply; decide again on the next attempt.
                Ok(None) | Err(_) => {
                    unknown.store(true, Ordering::Relaxed);
                    Err(Verdict::retry(e))
                }
            },
            ErrorKind::Unknown => {
                warn!(subject = %event.subject, id = %event.id, attempt, error = %e, "publish unconfirmed; reading back before retrying");
                unknown.store(true, Ordering::Relaxed);
                Err(Verdict::retry(e))
            }
            ErrorKind::Transient => {
                warn!(subject = %event.subject, id = %event.id, attempt, error = %e, "publish failed; retrying");
                Err(Verdict::retry(e))
            }
        }
    })
    .await
    .map_err(retry::GaveUp::into_error)
}

/// Whether `event` is stored, from the subject's newest message: `Some(Stored)` when that
/// message is this event (same CloudEvents id, hence same `Nats-Msg-Id`), `Some(Conflict)` when
/// the subject moved past the sequence the event expects, `None` when it is not stored and may
/// be published (again).
///
/// The newest message is read with a direct get by subject ([`last_on_subject_direct`]), which
/// every replica answers, also while a new leader is elected or a peer is down (creating a
/// consumer is then often not answered for as long as the peer stays down). A replica that lags
/// can only make this answer "not stored" or "moved" too early: the event is then published
/// again with its `Nats-Msg-Id` (JetStream drops a stored copy as a duplicate, or refuses it as
/// `wrong last sequence` and it is read back again), or reported as a conflict, which the caller
/// resolves by re-reading and re-deciding — never a second copy. An event without an expected
/// sequence (`sweep.completed`; a collector may not read its sweep subject) is not read back:
/// published again with the same `Nats-Msg-Id`, a copy that was stored is dropped by JetStream's
/// duplicate window.
pub async fn resolve(
    stream: &stream::Stream,
    event: &OutgoingEvent,
) -> Result<Option<Settled>, BusError> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    let Some(prev) = event.prevseq else {
        return Ok(None);
    };
    let last = last_on_subject_direct(stream, &event.subject).await?;
    if let Some(m) = &last {
        let id = serde_json::from_slice::<Id<'_>>(&m.payload).ok();
        if id.is_some_and(|i| i.id == event.id) {
            debug!(subject = %event.subject, id = %event.id, seq = m.seq, "read back: the event is stored");
            return Ok(Some(Settled::Stored(m.seq)));
        }
    }
    Ok((last.as_ref().map_or(0, |m| m.seq) != prev).then_some(Settled::Conflict))
}

/// Runs a bus read until it succeeds, fails for a reason retrying cannot fix, or `backoff`'s
/// deadline passes (a read that meets a leader election waits it out).
pub async fn read_retrying<T, F, Fut>(
    what: &str,
    backoff: Backoff,
    mut read: F,
) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    retry::retry(backoff, |attempt| {
        let fut = read();
        async move {
            fut.await.map_err(|e| match e.kind() {
                ErrorKind::Transient | ErrorKind::Unknown => {
                    warn!(what, attempt, error = %e, "read failed; retrying");
                    retry::Verdict::retry(e)
                }
                ErrorKind::Config | ErrorKind::Conflict => retry::Verdict::Fail(e),
            })
        }
    })
    .await
    .map_err(retry::GaveUp::into_error)
}
