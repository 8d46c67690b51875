//! `inventory replay --until seq:N|TIME --db FILE`: rebuilds the read model (state and history) as
//! it was at a past point, with the projector itself (see docs/audit.md).
//!
//! `--until TIME` means "every event JetStream recorded at or before TIME": it is resolved to the
//! sequence just before the first message recorded after TIME (an ordered consumer started by
//! time), or to the stream's tip when nothing was recorded since.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use inventory_projector::store::{move_files, remove_files};
use inventory_projector::{RunOptions, Status, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::{Global, Point, ReplayArgs};

/// The last stream sequence recorded at or before `time` (0: none), given the stream's tip.
async fn seq_at(
    stream: &async_nats::jetstream::stream::Stream,
    time: DateTime<Utc>,
    tip: u64,
) -> anyhow::Result<u64> {
    let after = SystemTime::from(time) + std::time::Duration::from_nanos(1);
    Ok(
        match inventory_bus::first_recorded_at_or_after(stream, after).await? {
            Some(first_after) => first_after.seq.saturating_sub(1),
            None => tip,
        },
    )
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_db(path: &Path) -> anyhow::Result<()> {
    remove_files(path).with_context(|| format!("removing {}", path.display()))
}

/// `inventory replay`.
pub async fn run(
    global: &Global,
    args: ReplayArgs,
    cancel: CancellationToken,
) -> anyhow::Result<ExitCode> {
    let db = args.db;
    if db.exists() && !args.force {
        anyhow::bail!(
            "--db {} exists: refusing to overwrite it (choose another file, or add --force)",
            db.display()
        );
    }
    let mut stream = crate::open_stream(global, "inventory-replay").await?;
    let tip = inventory_bus::last_sequence(&mut stream).await?;
    let until = match args.until {
        Point::Seq(n) if n > tip => anyhow::bail!(
            "--until {n}: the stream ends at sequence {tip} (nothing to replay past it)"
        ),
        Point::Seq(n) => n,
        Point::Time(t) => {
            let seq = seq_at(&stream, t, tip).await?;
            info!(time = %t, seq, "--until time resolved to the last sequence recorded at or before it");
            seq
        }
    };

    // Written beside the target and renamed at the end: a failed replay leaves no half file.
    let partial = with_suffix(&db, ".partial");
    remove_db(&partial)?;
    let store = Store::open(&partial).with_context(|| format!("--db {}", partial.display()))?;
    let (tx, rx) = tokio::sync::watch::channel(Status::default());
    let opts = RunOptions {
        stop_at: Some(until),
        ..Default::default()
    };
    let result = inventory_projector::run(stream, store, cancel.clone(), tx, opts).await;
    let store = match result {
        Ok(store) if cancel.is_cancelled() => {
            drop(store);
            remove_db(&partial)?;
            anyhow::bail!("replay interrupted");
        }
        Ok(store) => store,
        Err(e) => {
            let _ = remove_db(&partial);
            return Err(e).context("replay failed");
        }
    };
    if store.checkpoint() < until {
        drop(store);
        remove_db(&partial)?;
        anyhow::bail!("replay stopped before sequence {until}");
    }
    let status = rx.borrow().clone();
    let conn = store.connection()?;
    let count = |sql: &str| -> anyhow::Result<i64> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .with_context(|| sql.to_owned())
    };
    let events = count("SELECT count(*) FROM events")?;
    let assets = count("SELECT count(*) FROM assets")?;
    let deleted = count("SELECT count(*) FROM assets WHERE deleted_at IS NOT NULL")?;
    let rejected = count("SELECT count(*) FROM rejected")?;
    let last_recorded: Option<String> = conn
        .query_row(
            "SELECT strftime(max(recorded_at), '%Y-%m-%dT%H:%M:%S.%gZ') FROM events",
            [],
            |r| r.get(0),
        )
        .context("last recorded time")?;
    drop(conn);
    let checkpoint = store.checkpoint();
    drop(store);

    if args.force {
        remove_db(&db)?;
    }
    move_files(&partial, &db)
        .with_context(|| format!("renaming {} to {}", partial.display(), db.display()))?;
    info!(
        applied = status.applied_total,
        rejected = status.rejected_total,
        "replay written"
    );
    let when = match args.until {
        Point::Seq(_) => String::new(),
        Point::Time(t) => format!(
            " (recorded at or before {})",
            t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    };
    let line = format!(
        "replayed seqs 1..={checkpoint}{when} into {}: {events} events ({rejected} rejected), {assets} assets ({deleted} deleted); last event recorded at {}",
        db.display(),
        last_recorded.as_deref().unwrap_or("-")
    );
    writeln!(std::io::stdout().lock(), "{line}").context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
