//! The `sweeps` table: the newest sweep of every collector scope (freshness).

use duckdb::{params, OptionalExt};
use inventory_schemas::{SweepCompleted, SweepStatus};

use super::{from_micros, ts};
use crate::StoreError;

/// Replaces the scope's row with this sweep, keeping the newest `ok` time and counting runs.
pub(super) fn upsert_sweep(
    conn: &duckdb::Connection,
    seq: u64,
    source: &str,
    s: &SweepCompleted,
) -> Result<(), StoreError> {
    let prev: Option<(Option<i64>, u64)> = conn
        .query_row(
            "SELECT epoch_us(last_ok_at), runs FROM sweeps WHERE source = ?",
            [source],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (prev_ok, runs) = prev.unwrap_or((None, 0));
    let last_ok = if s.status == SweepStatus::Ok {
        Some(ts(s.finished_at))
    } else {
        prev_ok.map(|us| ts(from_micros(us)))
    };
    conn.execute("DELETE FROM sweeps WHERE source = ?", [source])?;
    conn.execute(
        "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            source,
            s.collector,
            s.provider,
            s.scope,
            s.status.as_str(),
            seq,
            ts(s.started_at),
            ts(s.finished_at),
            s.duration_ms,
            s.counts.seen,
            s.counts.discovered,
            s.counts.changed,
            s.counts.deleted,
            s.counts.unchanged,
            s.counts.deletions_withheld,
            s.error,
            last_ok,
            runs + 1,
        ],
    )?;
    Ok(())
}
