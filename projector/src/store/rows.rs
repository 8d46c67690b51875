//! Column-wise builders for the rows the store appends (a chunk of `events` rows), handed to DuckDB's appender as one Arrow record batch (much cheaper than
//! binding every value of every row through the row appender).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use duckdb::arrow::array::{
    ArrayBuilder, ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
    UInt64Builder,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use inventory_schemas::EventType;

use crate::fold::AssetState;
use crate::version_log::Record;

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

fn schema(columns: &[(&str, DataType, bool)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, ty, nullable)| Field::new(*name, ty.clone(), *nullable))
            .collect::<Vec<_>>(),
    ))
}

/// One row of `events`, borrowed from the decoded event.
pub(crate) struct EventRow<'a> {
    pub seq: u64,
    pub recorded_at: DateTime<Utc>,
    pub observed_at: DateTime<Utc>,
    pub ty: EventType,
    pub asset_key: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub source: &'a str,
    pub subject: &'a str,
    pub event_id: &'a str,
    pub contenthash: Option<&'a str>,
    pub prevseq: Option<u64>,
    pub chainhash: Option<&'a str>,
    pub data: &'a str,
    /// The asset's state after the event (asset events).
    pub state: Option<&'a AssetState>,
    /// Where the event's record is in the version log (asset events): offset and length.
    pub log: Option<(u64, u32)>,
}

impl<'a> EventRow<'a> {
    /// The version log's record of an asset event (`None` for a sweep).
    pub fn record(&self) -> Option<Record<'a>> {
        let (key, state) = (self.asset_key?, self.state?);
        Some(Record {
            seq: self.seq,
            ty: self.ty,
            recorded_at: self.recorded_at,
            observed_at: self.observed_at,
            first_seen: state.first_seen,
            last_changed: state.last_changed,
            prevseq: self.prevseq,
            data_seq: state.data_seq,
            key,
            provider: &state.provider,
            kind: &state.kind,
            native_id: &state.native_id,
            source: self.source,
            event_id: self.event_id,
            name: &state.name,
            status: &state.status,
            contenthash: self.contenthash,
            chainhash: self.chainhash,
            data: self.data,
        })
    }
}

/// The `events` columns of a chunk, in table order.
pub(super) struct EventColumns {
    seq: UInt64Builder,
    recorded_at: TimestampMicrosecondBuilder,
    observed_at: TimestampMicrosecondBuilder,
    ty: StringBuilder,
    asset_key: StringBuilder,
    provider: StringBuilder,
    kind: StringBuilder,
    source: StringBuilder,
    subject: StringBuilder,
    event_id: StringBuilder,
    contenthash: StringBuilder,
    prevseq: UInt64Builder,
    chainhash: StringBuilder,
    data: StringBuilder,
    name: StringBuilder,
    status: StringBuilder,
    first_seen: TimestampMicrosecondBuilder,
    last_changed: TimestampMicrosecondBuilder,
    data_seq: UInt64Builder,
    log_offset: UInt64Builder,
    log_len: UInt32Builder,
}

/// Bytes reserved per row for each short string column (keys, ids, hashes, subjects are
/// shorter): builders that never grow while a chunk is pushed (growing copies and touches fresh
/// memory).
const SHORT_STRING: usize = 72;

impl EventColumns {
    /// Builders sized for `rows` rows whose documents total at most `data_bytes`.
    pub fn with_capacity(rows: usize, data_bytes: usize) -> Self {
        let short = || StringBuilder::with_capacity(rows, rows * SHORT_STRING);
        let tiny = || StringBuilder::with_capacity(rows, rows * 16);
        Self {
            seq: UInt64Builder::with_capacity(rows),
            recorded_at: TimestampMicrosecondBuilder::with_capacity(rows),
            observed_at: TimestampMicrosecondBuilder::with_capacity(rows),
            ty: tiny(),
            asset_key: short(),
            provider: tiny(),
            kind: tiny(),
            source: short(),
            subject: short(),
            event_id: short(),
            contenthash: short(),
            prevseq: UInt64Builder::with_capacity(rows),
            chainhash: short(),
            data: StringBuilder::with_capacity(rows, data_bytes),
            name: short(),
            status: tiny(),
            first_seen: TimestampMicrosecondBuilder::with_capacity(rows),
            last_changed: TimestampMicrosecondBuilder::with_capacity(rows),
            data_seq: UInt64Builder::with_capacity(rows),
            log_offset: UInt64Builder::with_capacity(rows),
            log_len: UInt32Builder::with_capacity(rows),
        }
    }

    /// Document bytes pushed since the last [`EventColumns::finish`].
    pub fn data_bytes(&self) -> usize {
        self.data.values_slice().len()
    }

    pub fn push(&mut self, r: EventRow<'_>) {
        self.seq.append_value(r.seq);
        self.recorded_at.append_value(micros(r.recorded_at));
        self.observed_at.append_value(micros(r.observed_at));
        self.ty.append_value(r.ty.short());
        self.asset_key.append_option(r.asset_key);
        self.provider.append_option(r.provider);
        self.kind.append_option(r.kind);
        self.source.append_value(r.source);
        self.subject.append_value(r.subject);
        self.event_id.append_value(r.event_id);
        self.contenthash.append_option(r.contenthash);
        self.prevseq.append_option(r.prevseq);
        self.chainhash.append_option(r.chainhash);
        self.data.append_value(r.data);
        self.name.append_option(r.state.map(|s| s.name.as_str()));
        self.status
            .append_option(r.state.map(|s| s.status.as_str()));
        self.first_seen
            .append_option(r.state.map(|s| micros(s.first_seen)));
        self.last_changed
            .append_option(r.state.map(|s| micros(s.last_changed)));
        self.data_seq
            .append_option(r.state.and_then(|s| s.data_seq));
        self.log_offset.append_option(r.log.map(|l| l.0));
        self.log_len.append_option(r.log.map(|l| l.1));
    }

    /// The rows pushed since the last call, as a record batch (`None`: no rows).
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, duckdb::arrow::error::ArrowError> {
        if self.seq.len() == 0 {
            return Ok(None);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.seq.finish()),
            Arc::new(self.recorded_at.finish()),
            Arc::new(self.observed_at.finish()),
            Arc::new(self.ty.finish()),
            Arc::new(self.asset_key.finish()),
            Arc::new(self.provider.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.subject.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.contenthash.finish()),
            Arc::new(self.prevseq.finish()),
            Arc::new(self.chainhash.finish()),
            Arc::new(self.data.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.first_seen.finish()),
            Arc::new(self.last_changed.finish()),
            Arc::new(self.data_seq.finish()),
            Arc::new(self.log_offset.finish()),
            Arc::new(self.log_len.finish()),
        ];
        let schema = schema(&[
            ("seq", DataType::UInt64, false),
            ("recorded_at", timestamp(), false),
            ("observed_at", timestamp(), false),
            ("type", DataType::Utf8, false),
            ("asset_key", DataType::Utf8, true),
            ("provider", DataType::Utf8, true),
            ("kind", DataType::Utf8, true),
            ("source", DataType::Utf8, false),
            ("subject", DataType::Utf8, false),
            ("event_id", DataType::Utf8, false),
            ("contenthash", DataType::Utf8, true),
            ("prevseq", DataType::UInt64, true),
            ("chainhash", DataType::Utf8, true),
            ("data", DataType::Utf8, false),
            ("name", DataType::Utf8, true),
            ("status", DataType::Utf8, true),
            ("first_seen", timestamp(), true),
            ("last_changed", timestamp(), true),
            ("data_seq", DataType::UInt64, true),
            ("log_offset", DataType::UInt64, true),
            ("log_len", DataType::UInt32, true),
        ]);
        RecordBatch::try_new(schema, columns).map(Some)
    }
}
