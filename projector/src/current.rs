//! The read model's in-memory half (issue 10): the current view and an index of every asset's
//! versions, so that everyday reads cost what their answer costs, not what the history costs.
//!
//! - [`Snapshot`]: the state at one committed checkpoint — every asset's folded state with its
//!   last known document, every collector scope's newest sweep, and (through the append-only
//!   [`VersionIndex`]) every asset's versions up to that checkpoint. The store publishes a new
//!   one after each committed batch ([`Live`]); a reader holds one for a whole request, so it never
//!   sees half a batch, and says which checkpoint it answered at ([`Snapshot::seq`]).
//! - Snapshots share structure ([`imbl::OrdMap`]): publishing one costs O(1), a batch's updates
//!   O(changed assets · log n), and a snapshot a reader still holds is never modified.
//! - DuckDB stays the store of history and the analysts' file: past views take their versions
//!   from the index and their records from the version log ([`crate::version_log`]) by offset.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use chrono::{DateTime, Utc};
use foldhash::fast::RandomState;
use imbl::OrdMap;

use crate::fold::AssetState;
use crate::read::{AssetQuery, AssetRow, Matcher, SweepRow};
use crate::version_log::{Located, VersionLog};

/// An asset document (JSON text, exactly as the event carried it; validated when decoded).
pub type Document = Arc<str>;

/// An asset as it stands: its folded state and its last known document (`None` for an asset
/// known only from a tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub state: AssetState,
    pub data: Option<Document>,
    /// What facets and filters read of the document, extracted once when the asset is folded.
    pub tags: Tags,
}

impl Current {
    /// The asset in `state` with its document `data`, its [`Tags`] extracted from it.
    pub fn new(state: AssetState, data: Option<Document>) -> Self {
        let tags = data.as_deref().map(Tags::of).unwrap_or_default();
        Self { state, data, tags }
    }
}

/// An asset document's org path and labels, as facets count and filters match them: extracted
/// once, when the asset is folded (or the read model is opened), so that counting facets over
/// the whole estate is a pass over memory, not over documents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Tags {
    /// Every prefix of the org path, joined by `/`, shortest first (`o-root`,
    /// `o-root/ou-prod`, ...): an asset is counted under, and found by, each.
    pub org_prefixes: Box<[Arc<str>]>,
    /// Every label as `key:value`, in key order.
    pub labels: Box<[Arc<str>]>,
}

impl Tags {
    /// The tags of an asset document (a document without them, or not an asset's: none).
    pub fn of(doc: &str) -> Self {
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(default)]
            org_path: Vec<String>,
            #[serde(default)]
            labels: BTreeMap<String, String>,
        }
        let Ok(d) = serde_json::from_str::<Doc>(doc) else {
            return Self::default();
        };
        Self::build(
            d.org_path.iter().map(String::as_str),
            d.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut String::new(),
            |s| Arc::from(s),
        )
    }

    /// The tags of an org path (root first) and labels (in key order), each string made by
    /// `make` from its text in `buf`: the one rule of what an asset is counted under.
    fn build<'a>(
        org_path: impl Iterator<Item = &'a str>,
        labels: impl Iterator<Item = (&'a str, &'a str)>,
        buf: &mut String,
        mut make: impl FnMut(&str) -> Arc<str>,
    ) -> Self {
        buf.clear();
        let org_prefixes = org_path
            .map(|seg| {
                if !buf.is_empty() {
                    buf.push('/');
                }
                buf.push_str(seg);
                make(buf)
            })
            .collect();
        let labels = labels
            .map(|(k, v)| {
                buf.clear();
                buf.push_str(k);
                buf.push(':');
                buf.push_str(v);
                make(buf)
            })
            .collect();
        Self {
            org_prefixes,
            labels,
        }
    }

    /// The full org path (`""`: none).
    pub fn org_path(&self) -> &str {
        self.org_prefixes.last().map_or("", |p| p)
    }
}

/// Makes [`Tags`] for the writer, which folds every event: documents are read without copying
/// their strings, and each distinct org-path prefix or label is one shared string (no allocation
/// for a string seen before). Same result as [`Tags::of`].
#[derive(Debug, Default)]
pub(crate) struct TagBuilder {
    strings: HashSet<Arc<str>, RandomState>,
    buf: String,
}

/// Most distinct strings a [`TagBuilder`] keeps (beyond, it starts again: a few MiB at most).
const TAG_STRINGS: usize = 65_536;

impl TagBuilder {
    /// The tags of an asset document the decoder accepted ([`Tags::of`]; for such a document
    /// the same result).
    ///
    /// Only the document's members up to `org_path` and `labels` are read: a document is
    /// checked in full when its event is decoded, and what follows them (the provider's record,
    /// the provenance) is most of its text.
    pub(crate) fn tags(&mut self, doc: &str) -> Tags {
        let mut found = None;
        let mut de = serde_json::Deserializer::from_str(doc);
        // Stopping inside the object is an error to serde_json: the result is in `found`
        // (`None`: a string with an escape, which cannot be borrowed, or not an object; such a
        // document takes the copying path).
        let _ = serde::Deserializer::deserialize_map(&mut de, TagMembers { found: &mut found });
        let Some((org_path, labels)) = found else {
            return Tags::of(doc);
        };
        let Self { strings, buf } = self;
        Tags::build(org_path.into_iter(), labels.into_iter(), buf, |s| {
            if let Some(shared) = strings.get(s) {
                return Arc::clone(shared);
            }
            if strings.len() >= TAG_STRINGS {
                strings.clear();
            }
            let shared: Arc<str> = Arc::from(s);
            strings.insert(Arc::clone(&shared));
            shared
        })
    }
}

/// Reads an asset document's `org_path` and `labels` (borrowed) into `found`, and stops once it
/// has both.
struct TagMembers<'a, 'f> {
    found: &'f mut Option<(Vec<&'a str>, BTreeMap<&'a str, &'a str>)>,
}

impl<'de> serde::de::Visitor<'de> for TagMembers<'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an asset document")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut org_path, mut labels) = (None, None);
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "org_path" => org_path = Some(map.next_value()?),
                "labels" => labels = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            if org_path.is_some() && labels.is_some() {
                break;
            }
        }
        *self.found = Some((org_path.unwrap_or_default(), labels.unwrap_or_default()));
        Ok(())
    }
}

/// One event of an asset, as the version index keeps it (32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Stream sequence of the event.
    pub seq: u64,
    /// The first 64 bits of the event's content hash (see [`content_fingerprint`]).
    pub content: u64,
    /// The asset's name after the event ([`Versions::name`]).
    pub(crate) name: u32,
    /// The asset's tags after the event ([`Versions::tags`]; [`UNKNOWN_TAGS`]: not yet known).
    pub(crate) tags: u32,
    /// The asset's status after the event ([`Versions::status`]).
    pub(crate) status: u16,
    /// A tombstone (`deleted`).
    pub deleted: bool,
}

/// A version's tags id when its tags are not known yet: versions loaded when the read model is
/// opened, until a past view reads their document ([`VersionIndex::learn_tags`]). Versions
/// folded by this process always have theirs.
const UNKNOWN_TAGS: u32 = u32::MAX;

/// A new version, as the writer hands it to the index.
pub(crate) struct NewVersion {
    pub key: Arc<str>,
    pub seq: u64,
    pub content: u64,
    pub deleted: bool,
    pub name: String,
    pub status: String,
    /// The asset's tags after the event (`None`: not known, see [`UNKNOWN_TAGS`]).
    pub tags: Option<Tags>,
    pub at: Located,
}

/// Distinct strings (names, statuses) by number, so that every version carries its asset's name
/// and status in a few bytes and past views filter on them without reading a record.
#[derive(Debug, Default)]
struct Interned {
    ids: HashMap<Arc<str>, u32, RandomState>,
    strings: Vec<Arc<str>>,
}

impl Interned {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = u32::try_from(self.strings.len()).unwrap_or(u32::MAX);
        let s: Arc<str> = Arc::from(s);
        self.strings.push(Arc::clone(&s));
        self.ids.insert(s, id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", |s| s)
    }
}

/// Distinct tag sets by number, so that every version carries its asset's org path and labels
/// in four bytes and past facets count them without reading a document. An estate has few
/// distinct sets (owners, teams, org units); each is held once, its strings shared with the
/// current view's.
#[derive(Debug, Default)]
struct TagSets {
    ids: HashMap<Tags, u32, RandomState>,
    sets: Vec<Tags>,
}

impl TagSets {
    /// The id of `tags` ([`UNKNOWN_TAGS`] once ids run out: those versions' documents are read).
    fn id(&mut self, tags: Tags) -> u32 {
        if let Some(id) = self.ids.get(&tags) {
            return *id;
        }
        let Ok(id) = u32::try_from(self.sets.len()) else {
            return UNKNOWN_TAGS;
        };
        if id == UNKNOWN_TAGS {
            return UNKNOWN_TAGS;
        }
        self.sets.push(tags.clone());
        self.ids.insert(tags, id);
        id
    }

    fn get(&self, id: u32) -> Option<&Tags> {
        self.sets.get(id as usize)
    }
}

/// The first 64 bits of a content hash: a SHA-256 in hex (optionally `sha256:`-prefixed) gives
/// its first 16 hex digits; anything else a keyed hash of the whole text. Two versions with the
/// same fingerprint are taken to have the same content (a chance of 2⁻⁶⁴ per pair otherwise).
pub fn content_fingerprint(contenthash: &str) -> u64 {
    let hex = contenthash.strip_prefix("sha256:").unwrap_or(contenthash);
    match hex.get(..16).map(|h| u64::from_str_radix(h, 16)) {
        Some(Ok(v)) if hex.len() == 64 => v,
        _ => {
            use std::hash::BuildHasher;
            foldhash::fast::FixedState::with_seed(0x6173_7365_7469_6e76).hash_one(contenthash)
        }
    }
}

/// Every asset's versions in stream order, and where each one's record is in the version log.
/// Append-only: the writer appends a committed batch's versions before publishing the snapshot
/// that covers them, so a reader that looks only at versions up to its snapshot's sequence sees
/// exactly that checkpoint.
#[derive(Debug, Default)]
pub struct VersionIndex {
    inner: RwLock<Inner>,
    log: VersionLog,
}

#[derive(Debug, Default)]
struct Inner {
    by_key: HashMap<Arc<str>, Vec<Version>, RandomState>,
    /// Every asset event in stream order.
    stream: Vec<Located>,
    names: Interned,
    statuses: Interned,
    tags: TagSets,
}

/// A read-locked [`VersionIndex`], limited to one snapshot's sequence.
pub struct Versions<'a> {
    seq: u64,
    guard: RwLockReadGuard<'a, Inner>,
}

impl Versions<'_> {
    /// The asset's versions up to the snapshot, oldest first (empty: unknown).
    pub fn of(&self, key: &str) -> &[Version] {
        let all = self.guard.by_key.get(key).map_or(&[][..], Vec::as_slice);
        &all[..all.partition_point(|v| v.seq <= self.seq)]
    }

    /// The asset's version at stream sequence `at` (its newest event at or before it).
    pub fn at(&self, key: &str, at: u64) -> Option<Version> {
        let all = self.of(key);
        all[..all.partition_point(|v| v.seq <= at)].last().copied()
    }

    /// The asset's event before the one at `seq`, if any.
    pub fn before(&self, key: &str, seq: u64) -> Option<Version> {
        let all = self.of(key);
        let i = all.partition_point(|v| v.seq < seq);
        i.checked_sub(1).map(|i| all[i])
    }

    /// Where the record of the asset event at `seq` is (`None`: no asset event there, or
    /// beyond the snapshot).
    pub fn locate(&self, seq: u64) -> Option<Located> {
        self.stream(seq.saturating_sub(1), seq).first().copied()
    }

    /// The asset events with a sequence above `after` and at most `until` (and the snapshot's),
    /// in stream order.
    pub fn stream(&self, after: u64, until: u64) -> &[Located] {
        let stream = &self.guard.stream;
        let until = until.min(self.seq);
        let lo = stream.partition_point(|l| l.seq <= after);
        let hi = stream.partition_point(|l| l.seq <= until).max(lo);
        &stream[lo..hi]
    }

    /// The asset's name after this version.
    pub fn name(&self, v: &Version) -> &str {
        self.guard.names.get(v.name)
    }

    /// The asset's status after this version.
    pub fn status(&self, v: &Version) -> &str {
        self.guard.statuses.get(u32::from(v.status))
    }

    /// The asset's org path and labels after this version (`None`: not known yet, read its
    /// document).
    pub fn tags(&self, v: &Version) -> Option<&Tags> {
        self.guard.tags.get(v.tags)
    }

    /// Whether the asset `key` after this version passes a query's state filters.
    pub fn matches(&self, m: &Matcher<'_>, key: &str, v: &Version) -> bool {
        m.matches(v.deleted, self.status(v), self.name(v), key)
    }

    /// Every asset with its versions up to the snapshot, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = (&Arc<str>, &[Version])> + '_ {
        self.guard
            .by_key
            .iter()
            .map(|(k, v)| (k, &v[..v.partition_point(|x| x.seq <= self.seq)]))
    }
}

impl VersionIndex {
    /// An empty index whose records are in `log`.
    pub(crate) fn new(log: VersionLog) -> Self {
        Self {
            inner: RwLock::default(),
            log,
        }
    }

    /// The log holding the versions' records.
    pub fn log(&self) -> &VersionLog {
        &self.log
    }

    /// Appends committed versions (in stream order) and where their records are.
    pub(crate) fn append(&self, versions: impl IntoIterator<Item = NewVersion>) {
        let mut inner = match self.inner.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let inner = &mut *inner;
        for n in versions {
            let v = Version {
                seq: n.seq,
                content: n.content,
                name: inner.names.id(&n.name),
                // Statuses are a handful of words; should there ever be more than 65,535,
                // those beyond read as "" (a status filter then never matches them).
                status: u16::try_from(inner.statuses.id(&n.status)).unwrap_or(u16::MAX),
                tags: n.tags.map_or(UNKNOWN_TAGS, |t| inner.tags.id(t)),
                deleted: n.deleted,
            };
            inner.by_key.entry(n.key).or_default().push(v);
            inner.stream.push(n.at);
        }
    }

    /// Records the tags of versions whose tags were not known (`(key, seq, tags)`, read from
    /// their documents), so that the next past view finds them in memory.
    pub(crate) fn learn_tags(&self, learned: Vec<(Arc<str>, u64, Tags)>) {
        if learned.is_empty() {
            // The usual case once tags are known: no write lock for readers to wait on.
            return;
        }
        let mut inner = match self.inner.write() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Inner { by_key, tags, .. } = &mut *inner;
        for (key, seq, t) in learned {
            let Some(all) = by_key.get_mut(&key) else {
                continue;
            };
            if let Ok(i) = all.binary_search_by_key(&seq, |v| v.seq) {
                if all[i].tags == UNKNOWN_TAGS {
                    all[i].tags = tags.id(t);
                }
            }
        }
    }

    pub(crate) fn versions_at(&self, seq: u64) -> Versions<'_> {
        Versions {
            seq,
            guard: match self.inner.read() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            },
        }
    }

    /// Every asset's key and the sequence of its newest version.
    pub(crate) fn newest(&self) -> Vec<(Arc<str>, u64)> {
        self.versions_at(u64::MAX)
            .guard
            .by_key
            .iter()
            .filter_map(|(k, v)| v.last().map(|v| (Arc::clone(k), v.seq)))
            .collect()
    }

    /// Where the newest record ends (0: none): records are written in stream order.
    pub(crate) fn log_end(&self) -> u64 {
        self.versions_at(u64::MAX)
            .guard
            .stream
            .last()
            .map_or(0, |l| l.offset + u64::from(l.len))
    }

    /// Number of versions held (all keys).
    pub fn len(&self) -> usize {
        self.versions_at(u64::MAX).guard.stream.len()
    }

    /// Whether no version is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The read model at one committed checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) assets: OrdMap<Arc<str>, Arc<Current>>,
    pub(crate) sweeps: OrdMap<Arc<str>, Arc<SweepRow>>,
    pub(crate) versions: Arc<VersionIndex>,
}

/// Where the store publishes each committed snapshot and readers take the newest one.
#[derive(Debug, Clone, Default)]
pub struct Live(Arc<RwLock<Arc<Snapshot>>>);

impl Live {
    /// The newest committed snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        match self.0.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn publish(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.0.write() {
            Ok(mut s) => *s = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}

impl Snapshot {
    /// The stream sequence of the checkpoint this snapshot is (0: nothing applied).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of assets ever recorded (deleted ones included).
    pub fn asset_count(&self) -> usize {
        self.assets.len()
    }

    /// The versions index as of this snapshot, read-locked for the caller's walk (let go of it
    /// before reading records: the writer waits for it to publish the next snapshot).
    pub fn versions(&self) -> Versions<'_> {
        self.versions.versions_at(self.seq)
    }

    /// The log holding the records of this snapshot's versions.
    pub fn log(&self) -> &VersionLog {
        self.versions.log()
    }

    /// The asset with this key (deleted ones included).
    pub fn get(&self, key: &str) -> Option<AssetRow> {
        self.assets.get(key).map(|c| self.row(c))
    }

    /// The current assets matching `q`, ordered by key, at most `q.limit`.
    pub fn list(&self, q: &AssetQuery) -> Vec<AssetRow> {
        let matches = q.matcher();
        self.keys(q)
            .filter(|(_, c)| matches.current(c))
            .map(|(_, c)| self.row(c))
            .take(q.limit as usize)
            .collect()
    }

    /// Assets in key order after `q.after`, of `q`'s provider and kinds (other filters are the
    /// caller's).
    pub fn keys<'a>(
        &'a self,
        q: &'a AssetQuery,
    ) -> impl Iterator<Item = (&'a Arc<str>, &'a Arc<Current>)> + 'a {
        let prefix = q.provider.as_ref().map(|p| format!("{p}/"));
        let lower = match (&q.after, &prefix) {
            (Some(after), Some(p)) if after.as_str() < p.as_str() => Bound::Included(p.clone()),
            (Some(after), _) => Bound::Excluded(after.clone()),
            (None, Some(p)) => Bound::Included(p.clone()),
            (None, None) => Bound::Unbounded,
        };
        let range = match &lower {
            Bound::Included(k) => self
                .assets
                .range::<_, str>((Bound::Included(k.as_str()), Bound::Unbounded)),
            Bound::Excluded(k) => self
                .assets
                .range::<_, str>((Bound::Excluded(k.as_str()), Bound::Unbounded)),
            Bound::Unbounded => self.assets.range::<_, str>(..),
        };
        range
            .take_while(move |(k, _)| prefix.as_ref().is_none_or(|p| k.starts_with(p.as_str())))
            .filter(move |(_, c)| q.kinds.is_empty() || q.kinds.contains(&c.state.kind))
    }

    /// Every collector scope's newest sweep, by source.
    pub fn sweeps(&self) -> Vec<SweepRow> {
        self.sweeps.values().map(|s| (**s).clone()).collect()
    }

    /// The newest time a complete sweep of `source` finished, if any.
    pub fn last_ok(&self, source: &str) -> Option<DateTime<Utc>> {
        self.sweeps.get(source).and_then(|s| s.last_ok_at)
    }

    /// A current asset as the API shows it: `last_seen` is the newest of its newest event and
    /// its collector's newest complete sweep (while it exists).
    fn row(&self, c: &Current) -> AssetRow {
        let s = &c.state;
        let last_seen = match self.last_ok(&s.source) {
            Some(ok) if s.deleted_at.is_none() && ok > s.last_seen => ok,
            _ => s.last_seen,
        };
        AssetRow {
            state: s.clone(),
            last_seen,
            data: c.data.clone(),
        }
    }
}

/// Whether `haystack`, lowercased, contains `needle` (already lowercase), without allocating for
/// ASCII names.
pub(crate) fn contains_lowercase(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        n.is_empty()
            || h.windows(n.len())
                .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
    } else {
        haystack.to_lowercase().contains(needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_take_the_hash_prefix_and_hash_anything_else() {
        let h = "0123456789abcdef".repeat(4);
        assert_eq!(content_fingerprint(&h), 0x0123_4567_89ab_cdef);
        assert_eq!(
            content_fingerprint(&format!("sha256:{h}")),
            0x0123_4567_89ab_cdef
        );
        assert_ne!(content_fingerprint("x"), content_fingerprint("y"));
        assert_eq!(content_fingerprint(""), content_fingerprint(""));
    }

    #[test]
    fn tags_are_the_org_path_prefixes_and_the_labels() {
        let t = Tags::of(
            r#"{"org_path":["o-root","ou-prod","ou-pay"],"labels":{"team":"pay","owner":"a:b"}}"#,
        );
        let strs = |v: &[Arc<str>]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            strs(&t.org_prefixes),
            ["o-root", "o-root/ou-prod", "o-root/ou-prod/ou-pay"]
        );
        assert_eq!(strs(&t.labels), ["owner:a:b", "team:pay"]);
        assert_eq!(t.org_path(), "o-root/ou-prod/ou-pay");
        assert_eq!(Tags::of("{}"), Tags::default());
        assert_eq!(Tags::of("not json"), Tags::default());
        // The writer's builder gives the same tags, escapes and all, and shares its strings.
        let mut b = TagBuilder::default();
        for doc in [
            r#"{"org_path":["r","ou-a"],"labels":{"team":"x","env":"prod"}}"#,
            r#"{"org_path":["r","ou-\u0061"],"labels":{"te\"am":"x\\y"}}"#,
            r#"{"labels":{}}"#,
            "{}",
            "not json",
            r#"{"org_path":"not a list"}"#,
            // Members in any order, before, between and after the two it reads.
            r#"{"id":"1","labels":{"b":"2","a":"1"},"raw":{"x":[1,{"y":null}]},"org_path":["r"],"provenance":{}}"#,
            r#"{"org_path":["r","ou-a"],"raw":{"labels":{"no":"t this"}}}"#,
            r#"{"raw":"x","labels":{"te\u0061m":"x"},"org_path":[]}"#,
        ] {
            assert_eq!(b.tags(doc), Tags::of(doc), "{doc}");
        }
        let doc = r#"{"org_path":["r"],"labels":{"team":"x"}}"#;
        let (t1, t2) = (b.tags(doc), b.tags(doc));
        assert!(Arc::ptr_eq(&t1.labels[0], &t2.labels[0]));
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_lowercase("Payments-Prod", "payments"));
        assert!(contains_lowercase("x", ""));
        assert!(!contains_lowercase("pay", "payments"));
        assert!(contains_lowercase("ÄRGER GmbH", "ärger"));
    }
}
