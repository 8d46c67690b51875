//! Queries over the full history (DESIGN §1, "what did it look like then, what changed"): the
//! estate as it stood at any stream sequence, an asset's versions, the changes in a window, and
//! the difference between two points.
//!
//! Which version of which asset answers is decided in memory, from a [`Snapshot`]'s versions
//! index (every asset's event sequences, content fingerprints and tombstones, and every asset
//! event in stream order); the version log ([`crate::version_log`]) then supplies only the
//! records of the answer, by offset. So a page costs what the page holds, however long the
//! history is. Every record carries the asset's state after its event, so a version's record is
//! all a past view needs. DuckDB is read only to turn a time into a stream sequence.
//!
//! Every function answers at the snapshot's checkpoint: a point beyond it is the caller's to
//! refuse ([`Snapshot::seq`]); nothing committed after the snapshot is read.

use std::collections::HashMap;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use duckdb::Connection;
use inventory_schemas::EventType;

use crate::current::{Current, Document, Snapshot, Tags, Version};
use crate::read::{AssetQuery, AssetRow};
use crate::store::ts;
use crate::version_log::{Located, Record};
use crate::StoreError;

pub use inventory_schemas::Point;

/// The stream sequence of a point: a sequence as is, a time as the newest event recorded at or
/// before it (0 when none was). Rejected events count: a point names a stream position.
pub fn resolve(conn: &Connection, point: Point) -> Result<u64, StoreError> {
    match point {
        Point::Seq(s) => Ok(s),
        Point::Time(t) => {
            let sql = "SELECT greatest(\
                 coalesce((SELECT max(seq) FROM events WHERE recorded_at <= ?1), 0), \
                 coalesce((SELECT max(seq) FROM rejected WHERE recorded_at <= ?1), 0))";
            Ok(conn.query_row(sql, [ts(t)], |r| r.get(0))?)
        }
    }
}

/// Reads records of a snapshot's versions from the version log, reusing its buffers.
struct Records<'s> {
    snap: &'s Snapshot,
    buf: Vec<u8>,
    doc: Vec<u8>,
}

impl<'s> Records<'s> {
    fn new(snap: &'s Snapshot) -> Self {
        Self {
            snap,
            buf: Vec::new(),
            doc: Vec::new(),
        }
    }

    /// Where the record of this event is (`None`: not an asset event of the snapshot).
    fn locate(&self, seq: u64) -> Option<Located> {
        self.snap.versions().locate(seq)
    }

    /// The document of the event at `seq` (its own `data`).
    fn document(&mut self, seq: Option<u64>) -> Result<Option<Document>, StoreError> {
        let Some(at) = seq.and_then(|s| self.locate(s)) else {
            return Ok(None);
        };
        Ok(Some(Document::from(
            self.snap.log().read(at, &mut self.doc)?.data,
        )))
    }

    /// The asset's row after the event at `at`, with its document (`last_seen`: the time of
    /// the event). A tombstone's document is the one before it.
    fn asset_row(&mut self, at: Located) -> Result<AssetRow, StoreError> {
        let (state, own) = {
            let r = self.snap.log().read(at, &mut self.buf)?;
            let own = (r.ty != EventType::Deleted).then(|| Document::from(r.data));
            (r.state(), own)
        };
        let data = match own {
            Some(d) => Some(d),
            None => self.document(state.data_seq)?,
        };
        Ok(AssetRow {
            last_seen: state.last_seen,
            data,
            state,
        })
    }

    /// The event at `at` as history shows it (without the document before it).
    fn version_row(&mut self, at: Located) -> Result<VersionRow, StoreError> {
        let r = self.snap.log().read(at, &mut self.buf)?;
        Ok(version_row(&r))
    }
}

/// An event of an asset's history, from its record (`previous`: not yet known).
fn version_row(r: &Record<'_>) -> VersionRow {
    VersionRow {
        seq: r.seq,
        ty: r.ty.short().to_owned(),
        asset_key: r.key.to_owned(),
        source: r.source.to_owned(),
        event_id: r.event_id.to_owned(),
        observed_at: r.observed_at,
        recorded_at: r.recorded_at,
        name: r.name.to_owned(),
        status: r.status.to_owned(),
        contenthash: r.contenthash.unwrap_or_default().to_owned(),
        chainhash: r.chainhash.unwrap_or_default().to_owned(),
        prevseq: r.prevseq.unwrap_or(0),
        data: parse(r.data),
        previous: None,
    }
}

/// Assets matching `q` as they stood at stream sequence `at` (at most the snapshot's), ordered
/// by key. `last_seen` is the time of each asset's newest event up to `at`.
pub fn list_assets_at(
    snap: &Snapshot,
    q: &AssetQuery,
    at: u64,
) -> Result<Vec<AssetRow>, StoreError> {
    let matcher = q.matcher();
    let limit = q.limit as usize;
    // Every asset ever recorded is in the snapshot (deleted ones too), so its keys in order,
    // each with its version at `at`, are the past view in order; every version carries the
    // name, status and tags then, so the filters apply in memory. An asset whose version then is
    // its current one is answered from memory, the others from their records (read once the
    // versions index is let go of). A past version whose tags are not known yet (see
    // [`Versions::tags`](crate::current::Versions::tags)) is a candidate until its document is read, so more than a page of
    // candidates may be gathered: up to the `limit`-th certain one.
    let on_tags = matcher.on_tags();
    let page: Vec<Candidate<'_>> = {
        let versions = snap.versions();
        let mut page = Vec::new();
        let mut certain = 0;
        for (k, c) in snap.keys(q) {
            if certain >= limit {
                break;
            }
            let Some(v) = versions.at(k, at) else {
                continue;
            };
            if !versions.matches(&matcher, k, &v) {
                continue;
            }
            if v.seq == c.state.version {
                if matcher.tags(&c.tags) {
                    page.push(Candidate::Current(c));
                    certain += 1;
                }
                continue;
            }
            let known = versions.tags(&v);
            if known.is_some_and(|t| !matcher.tags(t)) {
                continue;
            }
            let Some(located) = versions.locate(v.seq) else {
                continue;
            };
            let check = on_tags && known.is_none();
            if !check {
                certain += 1;
            }
            page.push(Candidate::Past {
                key: k,
                located,
                check,
            });
        }
        page
    };
    let mut records = Records::new(snap);
    let mut rows = Vec::new();
    let mut learned = Vec::new();
    for candidate in page {
        if rows.len() >= limit {
            break;
        }
        let row = match candidate {
            Candidate::Current(c) => AssetRow {
                state: c.state.clone(),
                last_seen: c.state.last_seen,
                data: c.data.clone(),
            },
            Candidate::Past {
                key,
                located,
                check,
            } => {
                let row = records.asset_row(located)?;
                if check {
                    let tags = Tags::of(row.data.as_deref().unwrap_or(""));
                    let pass = matcher.tags(&tags);
                    learned.push((Arc::clone(key), located.seq, tags));
                    if !pass {
                        continue;
                    }
                }
                row
            }
        };
        rows.push(row);
    }
    snap.versions.learn_tags(learned);
    Ok(rows)
}

/// A candidate row of a past view: a current asset, or a past version's record (`check`: its
/// tags are not known yet, so its document is matched once read).
enum Candidate<'s> {
    Current(&'s Arc<Current>),
    Past {
        key: &'s Arc<str>,
        located: Located,
        check: bool,
    },
}

/// Every asset matching `q` as it stood at stream sequence `at`, handed to `each` with its
/// provider, kind, status and tags then (the facets of a past view), from memory: the index
/// keeps every version's status and tags. Only past versions whose tags are not known yet
/// (loaded when the read model was opened, see [`Versions::tags`](crate::current::Versions::tags)) have their record and
/// document read from the version log, once: what is read is learnt for the next view.
pub fn tagged_assets_at(
    snap: &Snapshot,
    q: &AssetQuery,
    at: u64,
    mut each: impl FnMut(&str, &str, &str, &Tags),
) -> Result<(), StoreError> {
    let matcher = q.matcher();
    let unknown: Vec<(&Arc<str>, Located)> = {
        let versions = snap.versions();
        let mut unknown = Vec::new();
        for (k, c) in snap.keys(q) {
            let Some(v) = versions.at(k, at) else {
                continue;
            };
            if !versions.matches(&matcher, k, &v) {
                continue;
            }
            let s = &c.state;
            if v.seq == s.version {
                if matcher.tags(&c.tags) {
                    each(&s.provider, &s.kind, &s.status, &c.tags);
                }
            } else if let Some(t) = versions.tags(&v) {
                // An asset's key holds its provider and kind: only status and tags change.
                if matcher.tags(t) {
                    each(&s.provider, &s.kind, versions.status(&v), t);
                }
            } else if let Some(l) = versions.locate(v.seq) {
                unknown.push((k, l));
            }
        }
        unknown
    };
    // The documents of then, read and parsed on up to [`TAG_READERS`] threads when there are
    // many (each with its own buffers; ~2.5 µs per document), handed to `each` in order.
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(TAG_READERS)
        .min(unknown.len().div_ceil(TAGS_PER_READER))
        .max(1);
    // Only what `each` is given is kept per asset (not the documents): a few dozen bytes.
    type Tagged = (u64, String, String, String, Tags);
    let tagged = |part: &[(&Arc<str>, Located)]| -> Result<Vec<Tagged>, StoreError> {
        let mut records = Records::new(snap);
        let mut out = Vec::with_capacity(part.len());
        for &(_, located) in part {
            let row = records.asset_row(located)?;
            let tags = Tags::of(row.data.as_deref().unwrap_or(""));
            let s = row.state;
            out.push((located.seq, s.provider, s.kind, s.status, tags));
        }
        Ok(out)
    };
    let parts: Vec<Result<Vec<Tagged>, StoreError>> = if threads == 1 {
        vec![tagged(&unknown)]
    } else {
        let chunk = unknown.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let running: Vec<_> = unknown
                .chunks(chunk)
                .map(|part| scope.spawn(|| tagged(part)))
                .collect();
            running
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    };
    let mut keys = unknown.iter().map(|(k, _)| *k);
    let mut learned = Vec::with_capacity(unknown.len());
    for part in parts {
        for (seq, provider, kind, status, tags) in part? {
            if matcher.tags(&tags) {
                each(&provider, &kind, &status, &tags);
            }
            if let Some(key) = keys.next() {
                learned.push((Arc::clone(key), seq, tags));
            }
        }
    }
    snap.versions.learn_tags(learned);
    Ok(())
}

/// Most threads [`tagged_assets_at`] reads past documents on.
const TAG_READERS: usize = 4;
/// Fewest past documents per extra thread (below, one thread reads them all).
const TAGS_PER_READER: usize = 4096;

/// One asset as it stood at stream sequence `at` (deleted included; `None`: not known then).
pub fn get_asset_at(snap: &Snapshot, key: &str, at: u64) -> Result<Option<AssetRow>, StoreError> {
    let located = {
        let versions = snap.versions();
        versions.at(key, at).and_then(|v| versions.locate(v.seq))
    };
    located.map(|l| Records::new(snap).asset_row(l)).transpose()
}

/// One event of an asset's history, with the asset's state after it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub seq: u64,
    /// discovered | changed | deleted
    pub ty: String,
    pub asset_key: String,
    pub source: String,
    pub event_id: String,
    pub observed_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub name: String,
    pub status: String,
    pub contenthash: String,
    pub chainhash: String,
    pub prevseq: u64,
    /// The event's own `data` (an asset document, or a tombstone).
    pub data: serde_json::Value,
    /// The asset document before this event (`None` for the first).
    pub previous: Option<serde_json::Value>,
}

/// An event to show, and where the asset's document before it is: `None` for an asset's first
/// event; `Some(None)` when only tombstones came before.
struct Wanted {
    seq: u64,
    previous: Option<Option<u64>>,
}

/// The event holding an asset's document as of version `i` of `all`: the newest non-tombstone
/// at or before it (tombstones keep the document before them).
fn data_seq_at(all: &[Version], i: usize) -> Option<u64> {
    all[..=i].iter().rev().find(|v| !v.deleted).map(|v| v.seq)
}

/// What to fetch for version `i` of the asset whose versions are `all`.
fn wanted(all: &[Version], i: usize) -> Wanted {
    Wanted {
        seq: all[i].seq,
        previous: i.checked_sub(1).map(|p| data_seq_at(all, p)),
    }
}

fn parse(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// `rows` (in order), each with the document before it, as `wanted` says (by sequence).
fn with_previous(
    records: &mut Records<'_>,
    wanted: Vec<Wanted>,
    rows: Vec<VersionRow>,
) -> Result<Vec<VersionRow>, StoreError> {
    let mut before: HashMap<u64, serde_json::Value> = HashMap::new();
    for seq in wanted.iter().filter_map(|w| w.previous.flatten()) {
        if let std::collections::hash_map::Entry::Vacant(e) = before.entry(seq) {
            let doc = records.document(Some(seq))?;
            e.insert(doc.map_or(serde_json::Value::Null, |d| parse(&d)));
        }
    }
    let previous: HashMap<u64, Option<Option<u64>>> =
        wanted.into_iter().map(|w| (w.seq, w.previous)).collect();
    Ok(rows
        .into_iter()
        .map(|mut v| {
            v.previous = previous.get(&v.seq).copied().flatten().map(|p| {
                p.and_then(|s| before.get(&s).cloned())
                    .unwrap_or(serde_json::Value::Null)
            });
            v
        })
        .collect())
}

/// An asset's events, newest first, from before `before` (a sequence; `None`: the newest).
pub fn history(
    snap: &Snapshot,
    key: &str,
    before: Option<u64>,
    limit: u32,
) -> Result<Vec<VersionRow>, StoreError> {
    let (wanted, located): (Vec<Wanted>, Vec<Option<Located>>) = {
        let versions = snap.versions();
        let all = versions.of(key);
        let end = all.partition_point(|v| v.seq < before.unwrap_or(u64::MAX));
        let start = end.saturating_sub(limit as usize);
        (start..end)
            .rev()
            .map(|i| (wanted(all, i), versions.locate(all[i].seq)))
            .unzip()
    };
    let mut records = Records::new(snap);
    let rows = located
        .into_iter()
        .flatten()
        .map(|at| records.version_row(at))
        .collect::<Result<Vec<_>, _>>()?;
    with_previous(&mut records, wanted, rows)
}

/// Filters of a window of changes.
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    /// Changes with a sequence above this one.
    pub after: u64,
    /// Changes up to this sequence (inclusive).
    pub until: Option<u64>,
    pub provider: Option<String>,
    pub kinds: Vec<String>,
    /// discovered | changed | deleted (empty: all).
    pub types: Vec<String>,
    pub limit: u32,
}

impl ChangeQuery {
    /// Whether a change of an asset of `provider` and `kind` is in the query's scope (the
    /// provider and kind filters; the type filter is [`ChangeQuery::has_type`]).
    pub fn in_scope(&self, provider: &str, kind: &str) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
    }

    /// Whether a change of type `ty` (discovered | changed | deleted) passes the type filter.
    pub fn has_type(&self, ty: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| t == ty)
    }
}

/// Asset events in stream order matching `q`, up to the snapshot's checkpoint.
///
/// The versions index lists every asset event in stream order with its type: the window is
/// walked there (type filters in memory), and only candidates' records are read (provider and
/// kind filters apply to them), in chunks, until the page is full or the window is done.
pub fn changes(snap: &Snapshot, q: &ChangeQuery) -> Result<Vec<VersionRow>, StoreError> {
    let until = q.until.unwrap_or(u64::MAX).min(snap.seq());
    let limit = q.limit as usize;
    let types: Vec<EventType> = q
        .types
        .iter()
        .filter_map(|t| EventType::from_short(t))
        .collect();
    if !q.types.is_empty() && types.is_empty() {
        return Ok(Vec::new());
    }
    let mut records = Records::new(snap);
    let mut found: Vec<VersionRow> = Vec::new();
    let mut after = q.after;
    let filtered = q.provider.is_some() || !q.kinds.is_empty();
    let mut chunk = if filtered { 4 * limit } else { limit }.clamp(1, 4096);
    while after < until && found.len() < limit {
        let candidates: Vec<Located> = {
            let versions = snap.versions();
            versions
                .stream(after, until)
                .iter()
                .filter(|l| types.is_empty() || types.contains(&l.ty))
                .take(chunk)
                .copied()
                .collect()
        };
        let Some(last) = candidates.last() else {
            break;
        };
        after = last.seq;
        for at in candidates {
            let r = snap.log().read(at, &mut records.buf)?;
            if !q.in_scope(r.provider, r.kind) {
                continue;
            }
            found.push(version_row(&r));
            if found.len() == limit {
                break;
            }
        }
        chunk = (chunk * 4).min(4096);
    }
    let page = {
        let versions = snap.versions();
        found
            .iter()
            .filter_map(|v| {
                let all = versions.of(&v.asset_key);
                let i = all.partition_point(|x| x.seq < v.seq);
                (all.get(i)?.seq == v.seq).then(|| wanted(all, i))
            })
            .collect()
    };
    with_previous(&mut records, page, found)
}

/// How an asset differs between two points.
#[derive(Debug, Clone, PartialEq)]
pub enum DiffKind {
    Added,
    Removed,
    Changed,
}

/// One asset that differs between two points, with its versions at each.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    pub key: String,
    pub kind: DiffKind,
    pub from: Option<AssetRow>,
    pub to: Option<AssetRow>,
}

/// Totals of a diff (all pages).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffCounts {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
}

/// How an asset whose versions are `all` differs between sequences `from` and `to`, with its
/// live versions' sequences then (`None`: it does not).
fn difference(all: &[Version], from: u64, to: u64) -> Option<(DiffKind, Option<u64>, Option<u64>)> {
    let live = |at: u64| {
        all[..all.partition_point(|v| v.seq <= at)]
            .last()
            .filter(|v| !v.deleted)
    };
    let (a, b) = (live(from), live(to));
    let kind = match (a, b) {
        (None, None) => return None,
        (None, Some(_)) => DiffKind::Added,
        (Some(_), None) => DiffKind::Removed,
        (Some(a), Some(b)) if a.content != b.content => DiffKind::Changed,
        (Some(_), Some(_)) => return None,
    };
    Some((kind, a.map(|v| v.seq), b.map(|v| v.seq)))
}

/// Whether an asset key (`<provider>/<kind>/<id>`) is of `q`'s provider and kinds.
fn in_scope(key: &str, q: &AssetQuery) -> bool {
    let mut parts = key.splitn(3, '/');
    let (provider, kind) = (parts.next(), parts.next());
    q.provider.as_deref().is_none_or(|p| Some(p) == provider)
        && (q.kinds.is_empty() || kind.is_some_and(|k| q.kinds.iter().any(|x| x == k)))
}

/// Assets (of `q`'s provider and kinds) added, removed or changed (content hash) between
/// sequences `from` and `to`, ordered by key after `q.after`, at most `q.limit`; and the totals.
pub fn diff(
    snap: &Snapshot,
    q: &AssetQuery,
    from: u64,
    to: u64,
) -> Result<(Vec<DiffRow>, DiffCounts), StoreError> {
    let mut counts = DiffCounts::default();
    let page: Vec<(String, Option<u64>, Option<u64>)> = {
        let versions = snap.versions();
        // The totals cover every page: the whole estate of q's provider and kinds, in no order
        // (no lookup by key).
        let scoped = q.provider.is_some() || !q.kinds.is_empty();
        for (key, all) in versions.all() {
            let Some((kind, ..)) = difference(all, from, to) else {
                continue;
            };
            if scoped && !in_scope(key, q) {
                continue;
            }
            match kind {
                DiffKind::Added => counts.added += 1,
                DiffKind::Removed => counts.removed += 1,
                DiffKind::Changed => counts.changed += 1,
            }
        }
        // The page: keys in order after the cursor, until it is full.
        snap.keys(q)
            .filter_map(|(key, _)| {
                difference(versions.of(key), from, to).map(|(_, a, b)| (key.to_string(), a, b))
            })
            .take(q.limit as usize)
            .collect()
    };
    let mut records = Records::new(snap);
    let mut row_at = |seq: Option<u64>| -> Result<Option<AssetRow>, StoreError> {
        let at = seq.and_then(|s| records.locate(s));
        at.map(|at| records.asset_row(at)).transpose()
    };
    let mut rows = Vec::with_capacity(page.len());
    for (key, a, b) in page {
        let (from, to) = (row_at(a)?, row_at(b)?);
        let kind = match (&from, &to) {
            (None, _) => DiffKind::Added,
            (_, None) => DiffKind::Removed,
            _ => DiffKind::Changed,
        };
        rows.push(DiffRow {
            key,
            kind,
            from,
            to,
        });
    }
    Ok((rows, counts))
}
