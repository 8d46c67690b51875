//! Opening a read model: the schema check before any DDL, the stream identity, and the
//! in-memory half (every asset's versions, then each asset's newest row and document).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt};
use foldhash::fast::RandomState;
use imbl::OrdMap;

use super::SCHEMA_VERSION;
use crate::current::{content_fingerprint, Current, Document, Version, VersionIndex};
use crate::identity::StreamIdentity;
use crate::read::{state_row, VERSION_COLUMNS};
use crate::StoreError;

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

/// Every asset's versions in stream order (one scan of `events`).
pub(super) fn load_versions(conn: &Connection) -> Result<VersionIndex, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT asset_key, seq, contenthash, type = 'deleted' FROM events \
         WHERE asset_key IS NOT NULL ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut keys: HashMap<String, Arc<str>, RandomState> = HashMap::default();
    let mut batch: Vec<(Arc<str>, Version)> = Vec::new();
    let index = VersionIndex::default();
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
        batch.push((
            key,
            Version {
                seq: r.get(1)?,
                content: content_fingerprint(contenthash.as_deref().unwrap_or_default()),
                deleted: r.get(3)?,
            },
        ));
        if batch.len() == 65_536 {
            index.append(batch.drain(..));
        }
    }
    index.append(batch);
    Ok(index)
}

/// Every asset's committed state and last known document, given each asset's newest version:
/// one scan of `events` for those rows (the document of every asset not deleted is in its own
/// row), then the documents of deleted assets by sequence.
pub(super) fn load_assets(
    conn: &Connection,
    newest: Vec<(Arc<str>, u64)>,
) -> Result<OrdMap<Arc<str>, Arc<Current>>, StoreError> {
    {
        let mut stage = conn.appender("newest_stage")?;
        for (_, seq) in &newest {
            stage.append_row([*seq])?;
        }
        stage.flush()?;
    }
    let mut keys: HashMap<u64, Arc<str>, RandomState> =
        newest.into_iter().map(|(k, s)| (s, k)).collect();
    let mut all = Vec::with_capacity(keys.len());
    {
        let mut stmt = conn.prepare(&format!(
            "SELECT {VERSION_COLUMNS}, CASE WHEN e.type <> 'deleted' THEN e.data END \
             FROM events e WHERE e.seq IN (SELECT seq FROM newest_stage)"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(Current {
                state: state_row(r, 0)?,
                data: r.get::<_, Option<String>>(15)?.map(Document::from),
            })
        })?;
        for row in rows {
            all.push(row?);
        }
    }
    conn.execute_batch("DELETE FROM newest_stage")?;
    let kept: Vec<u64> = all
        .iter()
        .filter(|c| c.data.is_none())
        .filter_map(|c| c.state.data_seq)
        .collect();
    let mut kept = crate::read::event_data(conn, kept)?;
    let mut out = OrdMap::new();
    for mut c in all {
        if c.data.is_none() {
            c.data = c.state.data_seq.and_then(|s| kept.remove(&s));
        }
        let key = keys
            .remove(&c.state.version)
            .unwrap_or_else(|| Arc::from(c.state.key.as_str()));
        out.insert(key, Arc::new(c));
    }
    Ok(out)
}
