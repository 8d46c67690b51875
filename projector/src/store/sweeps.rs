//! The `sweeps` table: the newest sweep of every collector scope (freshness). The store keeps
//! the committed rows in memory, so the next row is computed without reading the table back.

use duckdb::params;
use inventory_schemas::{SweepCompleted, SweepStatus};

use super::ts;
use crate::read::SweepRow;
use crate::StoreError;

/// The scope's row after sweep `s` (stream sequence `seq`) given its previous row: the newest
/// sweep, keeping the newest `ok` time and counting runs.
pub(super) fn next_row(
    prev: Option<&SweepRow>,
    seq: u64,
    source: &str,
    s: &SweepCompleted,
) -> SweepRow {
    let last_ok_at = if s.status == SweepStatus::Ok {
        Some(s.finished_at)
    } else {
        prev.and_then(|p| p.last_ok_at)
    };
    SweepRow {
        source: source.to_owned(),
        collector: s.collector.clone(),
        provider: s.provider.clone(),
        scope: s.scope.clone(),
        status: s.status.as_str().to_owned(),
        seq,
        started_at: s.started_at,
        finished_at: s.finished_at,
        duration_ms: s.duration_ms,
        counts: s.counts,
        error: s.error.clone(),
        last_ok_at,
        runs: prev.map_or(0, |p| p.runs) + 1,
    }
}

/// Replaces the scope's row.
pub(super) fn write(conn: &duckdb::Connection, row: &SweepRow) -> Result<(), StoreError> {
    conn.execute("DELETE FROM sweeps WHERE source = ?", [&row.source])?;
    conn.execute(
        "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            row.source,
            row.collector,
            row.provider,
            row.scope,
            row.status,
            row.seq,
            ts(row.started_at),
            ts(row.finished_at),
            row.duration_ms,
            row.counts.seen,
            row.counts.discovered,
            row.counts.changed,
            row.counts.deleted,
            row.counts.unchanged,
            row.counts.deletions_withheld,
            row.error,
            row.last_ok_at.map(ts),
            row.runs,
        ],
    )?;
    Ok(())
}
