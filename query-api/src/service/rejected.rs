//! Rejected messages ([`crate::api`]'s `rejected.rs`): what the read model did not apply.

use inventory_projector::read;

use crate::model::{RejectReasonCode, RejectedDoc, RejectedPage};
use crate::problem::ServiceError;
use crate::state::AppState;

/// `GET /api/v1/rejected`: `limit` messages the read model did not apply after the sequence
/// `after`, oldest first, optionally of one reason.
pub async fn list(
    state: &AppState,
    reason: Option<RejectReasonCode>,
    limit: u32,
    after: Option<u64>,
) -> Result<RejectedPage, ServiceError> {
    let after = after.unwrap_or(0);
    let rows = state
        .pool
        .run(move |conn| read::list_rejected(conn, after, limit + 1, reason.map(|r| r.as_str())))
        .await?;
    let more = rows.len() > limit as usize;
    let items: Vec<RejectedDoc> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| RejectedDoc {
            seq: r.seq,
            recorded_at: r.recorded_at,
            // Written by the projector from `RejectReason::as_str`, so always one of the codes.
            reason_code: RejectReasonCode::VALUES
                .iter()
                .position(|v| *v == r.reason_code)
                .and_then(|i| RejectReasonCode::ALL.get(i).copied())
                .unwrap_or(RejectReasonCode::Undecodable),
            subject: r.subject,
            reason: r.reason,
            payload: r.payload,
        })
        .collect();
    Ok(RejectedPage {
        next_cursor: more
            .then(|| items.last().map(|i| i.seq.to_string()))
            .flatten(),
        items,
    })
}
