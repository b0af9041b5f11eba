//! WARC/1.1 (ISO 28500:2017): record headers, the streaming writer, the reader
//! and digest checks.
//!
//! custody writes its own WARCs rather than use the `warc` crate, which cannot
//! stream a block, has no per-record gzip writer and keeps headers in a hash
//! map (losing order); the `warc` crate serves the tests as an independent
//! reader instead. This module knows nothing of HTTP clients, storage or SQL:
//! it turns blocks into records and records back into blocks and digests.

pub mod foreign;
pub mod http;
pub mod reader;
pub mod records;
pub mod writer;

use crate::model::Sha256;

pub use http::{HttpParseError, ResponseHead, ResponseScanner, ScanResult};
pub use reader::{DigestCheck, RecordHead, ScannedRecord, WarcFileReader};
pub use writer::{
    new_record_id, warc_date, Deflate, RecordHeader, RecordSpan, WarcSummary, WarcWriter,
};

#[derive(Debug, thiserror::Error)]
pub enum WarcError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("header field {0:?} has a bad name or a line break in its value")]
    BadHeaderField(String),
    #[error("spooled block changed while being written: {expected} bytes expected, {actual} read")]
    BlockLengthChanged { expected: u64, actual: u64 },
    #[error("spooled block changed while being written: digest {actual}, expected {expected}")]
    BlockChanged { expected: Sha256, actual: Sha256 },
    #[error("malformed WARC: {0}")]
    Malformed(String),
    #[error("record {record_id} has no {field}")]
    MissingField {
        record_id: String,
        field: &'static str,
    },
    #[error("record block is truncated: {actual} of {expected} bytes")]
    Truncated { expected: u64, actual: u64 },
    #[error("record {record_id}: unsupported digest {value:?} (custody checks sha256 and sha1)")]
    UnsupportedDigest { record_id: String, value: String },
    #[error("record {record_id}: {which} digest mismatch: declared {expected}, computed {actual}")]
    DigestMismatch {
        record_id: String,
        which: &'static str,
        expected: String,
        actual: String,
    },
    #[error("record {record_id}: stored HTTP response cannot be parsed: {source}")]
    Http {
        record_id: String,
        source: HttpParseError,
    },
    /// The record read back is not the one the index describes.
    #[error("record {record_id} is not as indexed: {detail}")]
    NotAsIndexed { record_id: String, detail: String },
    #[error("record at offset {offset}: {source}")]
    AtOffset { offset: u64, source: Box<WarcError> },
}
