//! Opening a read model: the schema check before any DDL, the stream identity, the in-memory
//! half (every asset's versions, then each asset's newest row and document), and the version
//! log's agreement with `events`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt};
use foldhash::fast::RandomState;
use imbl::OrdMap;

use super::SCHEMA_VERSION;
use crate::current::{content_fingerprint, Current, Document, NewVersion, VersionIndex};
use crate::identity::StreamIdentity;
use crate::store::from_micros;
use crate::version_log::{Located, Record, VersionLog};
use crate::StoreError;
use inventory_schemas::EventType;

/// Whether the database is new (no tables yet). A database of another schema version, or one that
/// is not an asset-inventory read model, is refused before anything is written to it.
pub(super) fn check_version(conn: &Connection) -> Result<bool, StoreError> {
    let refuse = |reason: String| StoreError::Open {
        path: "database".into(),
        reason,
    };
    let mut stmt = conn.prepare(
        "SELECT table_name FROM information_schema.tables \
         WHERE table_catalog = current_database() AND table_schema = 'main'",
    )?;
    let tables = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if tables.is_empty() {
        return Ok(true);
    }
    let not_ours = || {
        refuse(
            "not an asset-inventory read model (it holds other tables): choose another file".into(),
        )
    };
    if !tables.iter().any(|t| t == "meta") {
        return Err(not_ours());
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|_| not_ours())?;
    match version {
        Some(v) if v == SCHEMA_VERSION.to_string() => Ok(false),
        Some(found) => Err(StoreError::OtherVersion {
            path: "database".into(),
            found,
            expected: SCHEMA_VERSION,
        }),
        None => Err(not_ours()),
    }
}

/// The stream identity recorded in `meta`, if any.
pub(super) fn load_identity(conn: &Connection) -> Result<Option<StreamIdentity>, StoreError> {
    let get = |key: &str| -> Result<Option<String>, StoreError> {
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()?)
    };
    let broken = |what: &str| StoreError::Open {
        path: "database".into(),
        reason: format!(
            "its stream identity in the meta table is {what}: delete the file to rebuild it from \
             the stream"
        ),
    };
    match (
        get("stream_created")?,
        get("stream_first_seq")?,
        get("stream_first_sha256")?,
    ) {
        (None, None, None) => Ok(None),
        (Some(created), Some(seq), Some(first_sha256)) => Ok(Some(StreamIdentity {
            created: DateTime::parse_from_rfc3339(&created)
                .map_err(|_| broken("unreadable"))?
                .with_timezone(&Utc),
            first_seq: seq.parse().map_err(|_| broken("unreadable"))?,
            first_sha256,
        })),
        _ => Err(broken("incomplete")),
    }
}

/// Every asset's versions in stream order, with their records in `log` (one scan of `events`).
pub(super) fn load_versions(
    conn: &Connection,
    log: VersionLog,
) -> Result<VersionIndex, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT asset_key, seq, contenthash, type, log_offset, log_len, name, status FROM events \
         WHERE asset_key IS NOT NULL ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut keys: HashMap<String, Arc<str>, RandomState> = HashMap::default();
    let mut batch: Vec<NewVersion> = Vec::new();
    let index = VersionIndex::new(log);
    while let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let key = match keys.get(&key) {
            Some(k) => Arc::clone(k),
            None => {
                let k: Arc<str> = Arc::from(key.as_str());
                keys.insert(key, Arc::clone(&k));
                k
            }
        };
        let contenthash: Option<String> = r.get(2)?;
        let seq: u64 = r.get(1)?;
        let ty = event_type(&r.get::<_, String>(3)?)?;
        batch.push(NewVersion {
            key,
            seq,
            content: content_fingerprint(contenthash.as_deref().unwrap_or_default()),
            deleted: ty == EventType::Deleted,
            name: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            status: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
            // Known once a past view or `load_assets` reads the document (see `UNKNOWN_TAGS`).
            tags: None,
            at: Located {
                seq,
                offset: r.get(4)?,
                len: r.get(5)?,
                ty,
            },
        });
        if batch.len() == 65_536 {
            index.append(batch.drain(..));
        }
    }
    index.append(batch);
    Ok(index)
}

/// Every asset's committed state and last known document, from its newest version's record (a
/// tombstone's: the document of the record before it), once the log agrees with `events`.
pub(super) fn load_assets(
    index: &VersionIndex,
) -> Result<OrdMap<Arc<str>, Arc<Current>>, StoreError> {
    let newest = index.newest();
    let log = index.log();
    let (mut buf, mut doc) = (Vec::new(), Vec::new());
    let mut out = OrdMap::new();
    // The newest versions' tags, learnt from the documents read here (once the index is let go).
    let mut learned = Vec::with_capacity(newest.len());
    {
        let versions = index.versions_at(u64::MAX);
        for (key, seq) in newest {
            let Some(at) = versions.locate(seq) else {
                continue;
            };
            let r = log.read(at, &mut buf)?;
            let data = if r.ty == EventType::Deleted {
                match r.data_seq.and_then(|s| versions.locate(s)) {
                    Some(at) => Some(Document::from(log.read(at, &mut doc)?.data)),
                    None => None,
                }
            } else {
                Some(Document::from(r.data))
            };
            let current = Current::new(r.state(), data);
            learned.push((Arc::clone(&key), seq, current.tags.clone()));
            out.insert(key, Arc::new(current));
        }
    }
    index.learn_tags(learned);
    Ok(out)
}

fn event_type(short: &str) -> Result<EventType, StoreError> {
    EventType::from_short(short).ok_or_else(|| StoreError::Open {
        path: "database".into(),
        reason: format!("an event of unknown type {short:?} in `events`"),
    })
}

/// Makes the version log agree with `events`: what lies beyond the committed records (a batch
/// that never committed) is cut off; records missing from the file (a database copied or
/// restored without its log), or a log that is not this database's, are written again from
/// `events`. Returns where the records end.
pub(super) fn check_log(conn: &Connection, index: &VersionIndex) -> Result<u64, StoreError> {
    let log = index.log();
    let end = index.log_end();
    let len = log.len()?;
    if len > end {
        log.truncate(end)?;
    }
    let from = if len < end {
        len
    } else {
        // The first and the newest record must be the events `events` says they are.
        let (first, last) = {
            let all = index.versions_at(u64::MAX);
            let stream = all.stream(0, u64::MAX);
            (stream.first().copied(), stream.last().copied())
        };
        let mut buf = Vec::new();
        let belongs = [first, last]
            .into_iter()
            .flatten()
            .all(|at| log.read(at, &mut buf).is_ok());
        if belongs {
            return Ok(end);
        }
        0
    };
    tracing::warn!(from, end, "writing the version log again from the database");
    restore_log(conn, log, from)?;
    log.sync()?;
    Ok(end)
}

/// Writes every record of `events` that ends beyond `from` at its place in the log.
fn restore_log(conn: &Connection, log: &VersionLog, from: u64) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, type, epoch_us(recorded_at), epoch_us(observed_at), epoch_us(first_seen), \
         epoch_us(last_changed), prevseq, data_seq, asset_key, provider, kind, \
         substr(asset_key, length(provider) + length(kind) + 3), source, event_id, name, status, \
         contenthash, chainhash, data, log_offset, log_len FROM events \
         WHERE asset_key IS NOT NULL AND log_offset + log_len > {from} ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    let (mut buf, mut at) = (Vec::new(), None::<u64>);
    while let Some(r) = rows.next()? {
        let text = |i: usize| -> duckdb::Result<String> {
            Ok(r.get::<_, Option<String>>(i)?.unwrap_or_default())
        };
        let (key, provider, kind, native_id, source, event_id, name, status, data) = (
            text(8)?,
            text(9)?,
            text(10)?,
            text(11)?,
            text(12)?,
            text(13)?,
            text(14)?,
            text(15)?,
            text(18)?,
        );
        let (contenthash, chainhash): (Option<String>, Option<String>) = (r.get(16)?, r.get(17)?);
        let record = Record {
            seq: r.get(0)?,
            ty: event_type(&r.get::<_, String>(1)?)?,
            recorded_at: from_micros(r.get(2)?),
            observed_at: from_micros(r.get(3)?),
            first_seen: from_micros(r.get::<_, Option<i64>>(4)?.unwrap_or_default()),
            last_changed: from_micros(r.get::<_, Option<i64>>(5)?.unwrap_or_default()),
            prevseq: r.get(6)?,
            data_seq: r.get(7)?,
            key: &key,
            provider: &provider,
            kind: &kind,
            native_id: &native_id,
            source: &source,
            event_id: &event_id,
            name: &name,
            status: &status,
            contenthash: contenthash.as_deref(),
            chainhash: chainhash.as_deref(),
            data: &data,
        };
        let (offset, len): (u64, u32) = (r.get(19)?, r.get(20)?);
        let start = *at.get_or_insert(offset);
        if start + buf.len() as u64 != offset || buf.len() >= 1 << 24 {
            log.write_at(start, &buf)?;
            buf.clear();
            at = Some(offset);
        }
        if record.encode(&mut buf) != len {
            return Err(StoreError::Open {
                path: "database".into(),
                reason: format!(
                    "event {}'s version log record cannot be written again as it was: delete the \
                     database to rebuild it from the stream",
                    record.seq
                ),
            });
        }
    }
    if let Some(start) = at {
        log.write_at(start, &buf)?;
    }
    Ok(())
}
