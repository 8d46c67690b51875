-- Rows: schema_version; and the identity of the stream the read model was built from, written
-- with its first committed batch (projector/src/identity.rs): stream_created (the stream's
-- creation time, RFC 3339 with nanoseconds), stream_first_seq and stream_first_sha256 (the first
-- message applied and the SHA-256 of its payload).
CREATE TABLE IF NOT EXISTS meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
-- Unique short strings (keys, ids, hashes) are always FSST-compressed: letting DuckDB try a
-- dictionary first costs a hash of every string and never wins for them; documents are always
-- ZSTD-compressed (storage format v1.2.0, projector/src/store.rs): much less CPU than FSST, and
-- a file 3× smaller (BENCHMARKS.md). A file created in an older format keeps FSST.
CREATE TABLE IF NOT EXISTS events (
    seq          UBIGINT   NOT NULL,  -- JetStream stream sequence
    recorded_at  TIMESTAMP NOT NULL,  -- when JetStream stored it (UTC)
    observed_at  TIMESTAMP NOT NULL,  -- CloudEvents time: when the collector observed it (UTC)
    type         VARCHAR   NOT NULL,  -- discovered | changed | deleted | sweep
    asset_key    VARCHAR USING COMPRESSION fsst,  -- <provider>/<kind>/<native id>; NULL for sweeps
    provider     VARCHAR,
    kind         VARCHAR,
    source       VARCHAR   NOT NULL,  -- CloudEvents source
    subject      VARCHAR   NOT NULL USING COMPRESSION fsst,  -- NATS subject
    event_id     VARCHAR   NOT NULL USING COMPRESSION fsst,  -- CloudEvents id
    contenthash  VARCHAR USING COMPRESSION fsst,
    prevseq      UBIGINT,
    chainhash    VARCHAR USING COMPRESSION fsst,
    data         VARCHAR   NOT NULL USING COMPRESSION zstd,  -- the event's data member (a JSON
                                      -- object), exactly as received
    -- The asset's state after this event (NULL for sweeps): a version's row is all a past view
    -- needs (which version answers is decided in memory, projector/src/current.rs).
    name         VARCHAR,
    status       VARCHAR,
    first_seen   TIMESTAMP,
    last_changed TIMESTAMP,
    data_seq     UBIGINT,             -- the event holding the asset's last known data
    -- Where the event's record is in the version log beside the database (<file>.versions,
    -- projector/src/version_log.rs); NULL for sweeps.
    log_offset   UBIGINT,
    log_len      UINTEGER
);
-- The current view, for analysts: each asset's newest event, with the state it carries (deleted
-- ones included, with deleted_at). A view, not a table, so that the write path is only appends to
-- `events` and the current view can never disagree with the history. The API serves the current
-- view from memory (projector/src/current.rs), loaded from the version log at start.
CREATE VIEW IF NOT EXISTS assets AS
    SELECT asset_key, provider, kind,
           substr(asset_key, length(provider) + length(kind) + 3) AS native_id,
           name, status, source, first_seen, last_changed,
           observed_at AS last_seen,
           CASE WHEN type = 'deleted' THEN observed_at END AS deleted_at,
           seq AS version, contenthash, chainhash,
           data_seq  -- the event whose data is the last known state, kept after deletion;
                     -- NULL if only a tombstone was seen
    FROM events
    WHERE asset_key IS NOT NULL
    QUALIFY seq = max(seq) OVER (PARTITION BY asset_key);
-- For analysts (replay files, `inventory project`): the current view with each asset's document.
CREATE VIEW IF NOT EXISTS assets_full AS
    SELECT a.*, e.data FROM assets a LEFT JOIN events e ON e.seq = a.data_seq;
CREATE TABLE IF NOT EXISTS sweeps (
    source       VARCHAR   NOT NULL,  -- collector scope, e.g. /collectors/aws/o-abc
    collector    VARCHAR   NOT NULL,
    provider     VARCHAR   NOT NULL,
    scope        VARCHAR   NOT NULL,
    status       VARCHAR   NOT NULL,  -- ok | partial | failed
    seq          UBIGINT   NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP NOT NULL,
    duration_ms  UBIGINT   NOT NULL,
    seen         UBIGINT   NOT NULL,
    discovered   UBIGINT   NOT NULL,
    changed      UBIGINT   NOT NULL,
    deleted      UBIGINT   NOT NULL,
    unchanged    UBIGINT   NOT NULL,
    withheld     UBIGINT   NOT NULL,
    error        VARCHAR,
    last_ok_at   TIMESTAMP,           -- newest sweep of this scope with status ok
    runs         UBIGINT   NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint (stream VARCHAR NOT NULL, last_seq UBIGINT NOT NULL, updated_at TIMESTAMP NOT NULL);
-- Messages that are not valid events of the NATS subject they were stored on (the trust rule,
-- schemas/src/trust.rs), or that cannot be folded: never applied, kept for operators.
CREATE TABLE IF NOT EXISTS rejected (
    seq          UBIGINT   NOT NULL,
    recorded_at  TIMESTAMP NOT NULL,
    subject      VARCHAR   NOT NULL,
    reason_code  VARCHAR   NOT NULL,  -- undecodable | unknown_subject | wrong_type |
                                      -- subject_mismatch | source_mismatch | future_time |
                                      -- invalid_data
    reason       VARCHAR   NOT NULL,  -- what exactly was wrong
    payload      VARCHAR   NOT NULL   -- as received (lossy UTF-8)
);
