//! Readiness ([`crate::api`]'s `health.rs`): whether the read model may be trusted, and if not,
//! why. Liveness and metrics need no service.

use std::time::Instant;

use inventory_projector::Status;

use crate::limits::ReadyBounds;
use crate::model::Readiness;
use crate::problem::{ErrorCode, ServiceError};

/// `GET /readyz`: ready once the projector has caught up with the stream's tip at start, as long
/// as it keeps up: not ready while it lags more than `bounds.max_lag` events, or has applied
/// nothing for `bounds.stall_after` while the stream holds newer events, or has not reached the
/// stream for `bounds.stall_after` (then it cannot tell how far behind it is). `now` is the
/// time of the probe.
pub fn readiness(
    status: &Status,
    bounds: &ReadyBounds,
    now: Instant,
) -> Result<Readiness, ServiceError> {
    if let Some(why) = &status.stream_changed {
        return Err(ServiceError::new(
            ErrorCode::NotReady,
            format!("rebuilding the read model from scratch: {why}"),
        ));
    }
    if let Some(why) = &status.failed {
        return Err(ServiceError::new(
            ErrorCode::NotReady,
            format!("the projector stopped: {why}"),
        ));
    }
    if !status.caught_up {
        let detail = if status.tip_at_start == 0 && status.applied_seq == 0 {
            "the projector is starting (connecting to the stream)".to_owned()
        } else {
            format!(
                "the projector is catching up: applied {} of {} events present at start",
                status.applied_seq, status.tip_at_start
            )
        };
        return Err(ServiceError::new(ErrorCode::NotReady, detail));
    }
    let lag = status.lag();
    if bounds.max_lag > 0 && lag > bounds.max_lag {
        return Err(ServiceError::new(
            ErrorCode::NotReady,
            format!(
                "the projector lags {lag} events behind the stream (applied {} of {}), more than \
                 INVENTORY_READY_MAX_LAG={}",
                status.applied_seq, status.stream_last_seq, bounds.max_lag
            ),
        ));
    }
    let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
    let stall = bounds.stall_after;
    if !stall.is_zero() {
        if let Some(unseen) = since(status.stream_seen_at).filter(|d| *d > stall) {
            return Err(ServiceError::new(
                ErrorCode::NotReady,
                format!(
                    "the projector has not reached the stream for {}s (INVENTORY_READY_STALL_AFTER={}s): \
                     the read model may be behind it (applied seq {})",
                    unseen.as_secs(),
                    stall.as_secs(),
                    status.applied_seq
                ),
            ));
        }
        if let Some(idle) = since(status.progressed_at).filter(|d| lag > 0 && *d > stall) {
            return Err(ServiceError::new(
                ErrorCode::NotReady,
                format!(
                    "the projector is stalled: it has applied nothing for {}s while the stream \
                     holds {lag} newer events (INVENTORY_READY_STALL_AFTER={}s)",
                    idle.as_secs(),
                    stall.as_secs()
                ),
            ));
        }
    }
    debug_assert!(status.is_ready());
    Ok(Readiness {
        ready: true,
        applied_seq: status.applied_seq,
        tip_at_start: status.tip_at_start,
        lag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn readiness(s: &Status) -> Result<Readiness, ServiceError> {
        super::readiness(s, &ReadyBounds::default(), Instant::now())
    }

    #[test]
    fn readiness_turns_unready_when_stalled_or_lagging_and_back() {
        let bounds = ReadyBounds {
            stall_after: Duration::from_secs(10),
            max_lag: 100,
        };
        let t0 = Instant::now();
        let mut s = Status {
            caught_up: true,
            applied_seq: 50,
            tip_at_start: 50,
            stream_last_seq: 50,
            progressed_at: Some(t0),
            stream_seen_at: Some(t0),
            ..Status::default()
        };
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(super::readiness(&s, &bounds, at(5)).is_ok());
        // Current, and nothing new: idle for long is not a stall.
        s.stream_seen_at = Some(at(100));
        assert!(super::readiness(&s, &bounds, at(105)).is_ok());
        // Newer events and no progress for more than the bound: stalled.
        s.stream_last_seq = 60;
        let e = super::readiness(&s, &bounds, at(105)).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotReady);
        assert!(
            e.detail.contains("stalled") && e.detail.contains("10 newer"),
            "{}",
            e.detail
        );
        // Progress again: ready.
        s.applied_seq = 55;
        s.progressed_at = Some(at(104));
        assert!(super::readiness(&s, &bounds, at(105)).is_ok());
        // The stream out of reach for longer than the bound.
        let e = super::readiness(&s, &bounds, at(111)).unwrap_err();
        assert!(e.detail.contains("not reached the stream"), "{}", e.detail);
        // Lag beyond the bound, even while progressing.
        s.stream_seen_at = Some(at(111));
        s.progressed_at = Some(at(111));
        s.stream_last_seq = 156;
        let e = super::readiness(&s, &bounds, at(111)).unwrap_err();
        assert!(e.detail.contains("lags 101 events"), "{}", e.detail);
        s.stream_last_seq = 155;
        assert_eq!(super::readiness(&s, &bounds, at(111)).unwrap().lag, 100);
        // Zero bounds: neither check.
        let off = ReadyBounds {
            stall_after: Duration::ZERO,
            max_lag: 0,
        };
        s.stream_last_seq = 1_000_000;
        assert!(super::readiness(&s, &off, at(10_000)).is_ok());
    }

    #[test]
    fn readiness_reports_why_not() {
        let mut s = Status::default();
        assert!(readiness(&s).unwrap_err().detail.contains("starting"));
        s.tip_at_start = 10;
        s.applied_seq = 4;
        assert!(readiness(&s)
            .unwrap_err()
            .detail
            .contains("applied 4 of 10"));
        s.caught_up = true;
        s.applied_seq = 10;
        s.stream_last_seq = 12;
        assert_eq!(readiness(&s).unwrap().lag, 2);
        s.failed = Some("disk full".into());
        assert!(readiness(&s).unwrap_err().detail.contains("disk full"));
        s.stream_changed = Some("the stream was recreated".into());
        let detail = readiness(&s).unwrap_err().detail;
        assert!(detail.starts_with("rebuilding"), "{detail}");
        assert!(detail.contains("the stream was recreated"), "{detail}");
    }
}
