//! The version log (issue 10): every asset event's row — the event, the asset's state after it
//! and its document — appended in stream order to a file beside the database
//! (`<db>.versions`), so that a past view, a page of history or of changes, or a diff reads
//! exactly its answer's rows, by offset, however long the history is.
//!
//! DuckDB stays the store of history and the analysts' file: each `events` row records where its
//! record is (`log_offset`, `log_len`), in the same transaction as the row. The writer hands a
//! batch's records to the log's own thread ([`LogAppender`]) as it appends the rows, and waits
//! for them to be written and synced before the COMMIT, so a committed row's record is always
//! durable; on open, what lies beyond the committed records (a batch that never
//! committed) is cut off, and records missing from the file (a database copied without its log)
//! are written again from `events` ([`crate::store`]). A record is checked when read: its length
//! and its sequence must be the ones the index expects. While the store catches up, records
//! bypass the page cache (`version_log/appender.rs`).
//!
//! A record (little-endian): seq u64, type u8, flags u8, recorded_at, observed_at, first_seen,
//! last_changed (i64 µs), prevseq u64, data_seq u64, then key, provider, kind, native id, source,
//! event id, name, status, content hash, chain hash and data, each a u32 length and UTF-8 bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use inventory_schemas::EventType;

use crate::fold::AssetState;
use crate::store::from_micros;
use crate::StoreError;

mod appender;

pub(crate) use appender::LogAppender;

/// The version log of the database at `path` (`<path>.versions`): it belongs with the file, and
/// moves and goes with it.
pub fn log_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".versions");
    PathBuf::from(s)
}

/// Where an asset event's record is in the log, and what kind of event it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub seq: u64,
    pub offset: u64,
    pub len: u32,
    pub ty: EventType,
}

const PREVSEQ: u8 = 1;
const DATA_SEQ: u8 = 2;
const CONTENTHASH: u8 = 4;
const CHAINHASH: u8 = 8;

/// What a record holds, borrowed (from an event being written, or from a read buffer).
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub seq: u64,
    pub ty: EventType,
    pub recorded_at: DateTime<Utc>,
    pub observed_at: DateTime<Utc>,
    pub first_seen: DateTime<Utc>,
    pub last_changed: DateTime<Utc>,
    pub prevseq: Option<u64>,
    pub data_seq: Option<u64>,
    pub key: &'a str,
    pub provider: &'a str,
    pub kind: &'a str,
    pub native_id: &'a str,
    pub source: &'a str,
    pub event_id: &'a str,
    pub name: &'a str,
    pub status: &'a str,
    pub contenthash: Option<&'a str>,
    pub chainhash: Option<&'a str>,
    /// The event's `data` (an asset document, or a tombstone), exactly as received.
    pub data: &'a str,
}

fn type_code(ty: EventType) -> u8 {
    match ty {
        EventType::Discovered => 0,
        EventType::Changed => 1,
        EventType::Deleted => 2,
        EventType::SweepCompleted => 3,
    }
}

impl<'a> Record<'a> {
    /// Appends the record's bytes to `out`; returns their length.
    pub fn encode(&self, out: &mut Vec<u8>) -> u32 {
        let start = out.len();
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(type_code(self.ty));
        let mut flags = 0;
        for (set, flag) in [
            (self.prevseq.is_some(), PREVSEQ),
            (self.data_seq.is_some(), DATA_SEQ),
            (self.contenthash.is_some(), CONTENTHASH),
            (self.chainhash.is_some(), CHAINHASH),
        ] {
            if set {
                flags |= flag;
            }
        }
        out.push(flags);
        for t in [
            self.recorded_at,
            self.observed_at,
            self.first_seen,
            self.last_changed,
        ] {
            out.extend_from_slice(&t.timestamp_micros().to_le_bytes());
        }
        out.extend_from_slice(&self.prevseq.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.data_seq.unwrap_or(0).to_le_bytes());
        for s in [
            self.key,
            self.provider,
            self.kind,
            self.native_id,
            self.source,
            self.event_id,
            self.name,
            self.status,
            self.contenthash.unwrap_or(""),
            self.chainhash.unwrap_or(""),
            self.data,
        ] {
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&s.as_bytes()[..len as usize]);
        }
        u32::try_from(out.len() - start).unwrap_or(u32::MAX)
    }

    /// Reads a record's bytes (`None`: not a whole, well-formed record).
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let seq = r.u64()?;
        let ty = match r.u8()? {
            0 => EventType::Discovered,
            1 => EventType::Changed,
            2 => EventType::Deleted,
            3 => EventType::SweepCompleted,
            _ => return None,
        };
        let flags = r.u8()?;
        let mut time = || r.u64().map(|v| from_micros(v as i64));
        let (recorded_at, observed_at, first_seen, last_changed) =
            (time()?, time()?, time()?, time()?);
        let (prevseq, data_seq) = (r.u64()?, r.u64()?);
        let record = Record {
            seq,
            ty,
            recorded_at,
            observed_at,
            first_seen,
            last_changed,
            prevseq: (flags & PREVSEQ != 0).then_some(prevseq),
            data_seq: (flags & DATA_SEQ != 0).then_some(data_seq),
            key: r.str()?,
            provider: r.str()?,
            kind: r.str()?,
            native_id: r.str()?,
            source: r.str()?,
            event_id: r.str()?,
            name: r.str()?,
            status: r.str()?,
            contenthash: r.str().map(|s| (flags & CONTENTHASH != 0).then_some(s))?,
            chainhash: r.str().map(|s| (flags & CHAINHASH != 0).then_some(s))?,
            data: r.str()?,
        };
        r.0.is_empty().then_some(record)
    }

    /// The asset's state after this event, as the API shows it (`last_seen`: the event's time).
    pub fn state(&self) -> AssetState {
        AssetState {
            key: self.key.to_owned(),
            provider: self.provider.to_owned(),
            kind: self.kind.to_owned(),
            native_id: self.native_id.to_owned(),
            name: self.name.to_owned(),
            status: self.status.to_owned(),
            source: self.source.to_owned(),
            first_seen: self.first_seen,
            last_changed: self.last_changed,
            last_seen: self.observed_at,
            deleted_at: (self.ty == EventType::Deleted).then_some(self.observed_at),
            version: self.seq,
            data_seq: self.data_seq,
            contenthash: self.contenthash.unwrap_or_default().to_owned(),
            chainhash: self.chainhash.unwrap_or_default().to_owned(),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        std::str::from_utf8(self.take(len as usize)?).ok()
    }
}

/// The log file (an unnamed temporary file for an in-memory store; none for an empty snapshot).
#[derive(Debug, Default)]
pub struct VersionLog {
    file: Option<File>,
    path: String,
}

impl VersionLog {
    /// Opens (creating if needed) the log at `path`; `None`: an unnamed temporary file.
    pub(crate) fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let shown = path.map_or_else(|| "(temporary)".to_owned(), |p| p.display().to_string());
        let file = match path {
            Some(p) => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p),
            None => tempfile::tempfile(),
        }
        .map_err(|e| StoreError::Log {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            file: Some(file),
            path: shown,
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Log {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn file(&self) -> Result<&File, StoreError> {
        self.file.as_ref().ok_or_else(|| self.error("no log"))
    }

    /// The file's length.
    pub(crate) fn len(&self) -> Result<u64, StoreError> {
        Ok(self.file()?.metadata().map_err(|e| self.error(e))?.len())
    }

    /// Writes `bytes` at `offset`.
    pub(crate) fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.file()?
            .write_all_at(bytes, offset)
            .map_err(|e| self.error(e))
    }

    /// Makes everything written durable.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.file()?.sync_data().map_err(|e| self.error(e))
    }

    /// Cuts the file to `len` bytes.
    pub(crate) fn truncate(&self, len: u64) -> Result<(), StoreError> {
        self.file()?.set_len(len).map_err(|e| self.error(e))
    }

    /// An appender writing to this log on a thread of its own ([`LogAppender`]).
    pub(crate) fn appender(&self) -> Result<LogAppender, StoreError> {
        let file = self.file()?.try_clone().map_err(|e| self.error(e))?;
        LogAppender::start(file, self.path.clone())
    }

    /// Reads the record at `at` into `buf` (reused across reads) and checks it is that event's.
    pub fn read<'b>(&self, at: Located, buf: &'b mut Vec<u8>) -> Result<Record<'b>, StoreError> {
        buf.resize(at.len as usize, 0);
        self.file()?
            .read_exact_at(buf, at.offset)
            .map_err(|e| self.error(format!("reading the record of event {}: {e}", at.seq)))?;
        match Record::decode(buf) {
            Some(r) if r.seq == at.seq => Ok(r),
            _ => Err(self.error(format!(
                "the record at offset {} is not event {}'s: the log does not belong to this \
                 database; delete it (it is written again from the database on open)",
                at.offset, at.seq
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn record(data: &str) -> Record<'_> {
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 1000).unwrap();
        Record {
            seq: 42,
            ty: EventType::Deleted,
            recorded_at: t(1),
            observed_at: t(2),
            first_seen: t(3),
            last_changed: t(4),
            prevseq: Some(0),
            data_seq: None,
            key: "aws/account/1",
            provider: "aws",
            kind: "account",
            native_id: "1",
            source: "/collectors/aws/o-1",
            event_id: "id",
            name: "Ärger",
            status: "active",
            contenthash: None,
            chainhash: Some(""),
            data,
        }
    }

    #[test]
    fn records_read_back_as_written_and_a_wrong_one_is_refused() {
        let log = VersionLog::open(None).unwrap();
        let mut bytes = Vec::new();
        let a = record("{\"a\":1}");
        let len_a = a.encode(&mut bytes);
        let b = Record {
            seq: 43,
            ..record("{}")
        };
        let len_b = b.encode(&mut bytes);
        log.write_at(0, &bytes).unwrap();
        assert_eq!(log.len().unwrap(), u64::from(len_a + len_b));
        let mut buf = Vec::new();
        let at = |seq, offset, len| Located {
            seq,
            offset,
            len,
            ty: EventType::Deleted,
        };
        assert_eq!(log.read(at(42, 0, len_a), &mut buf).unwrap(), a);
        assert_eq!(
            log.read(at(43, u64::from(len_a), len_b), &mut buf).unwrap(),
            b
        );
        // Another event's record, a cut record, or bytes past the end are errors.
        assert!(log.read(at(43, 0, len_a), &mut buf).is_err());
        assert!(log.read(at(42, 0, len_a - 1), &mut buf).is_err());
        assert!(log.read(at(42, 1000, len_a), &mut buf).is_err());
        assert!(Record::decode(&bytes[..len_a as usize + 3]).is_none());
    }

    #[test]
    fn state_of_a_tombstone_has_deleted_at() {
        let r = record("{}");
        let s = r.state();
        assert_eq!(s.deleted_at, Some(r.observed_at));
        assert_eq!((s.version, s.data_seq), (42, None));
    }
}
