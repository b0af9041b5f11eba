//! The streaming WARC/1.1 writer.
//!
//! Each record is its own gzip member, so any record can be read from its
//! offset alone (CDXJ, replay, range reads). Blocks are streamed from a reader
//! or a spooled file; nothing is held whole in memory. The writer hashes
//! every byte it emits, so the finished file's SHA-256 (its object key) is
//! known the moment the last record is written, before anything reaches the
//! store.

use std::io::{self, Read, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use flate2::write::GzEncoder;
use sha2::Digest;

use super::WarcError;
use crate::model::Sha256;

/// How a record's gzip member is deflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deflate {
    /// Text and other compressible data: normal compression.
    Compress,
    /// Already-compressed media: level 0 (stored blocks), near copy speed.
    Store,
}

/// The header fields of one record, in the order they are written.
/// `Content-Length` and `WARC-Block-Digest` are added by the writer.
#[derive(Clone, Debug)]
pub struct RecordHeader {
    fields: Vec<(String, String)>,
}

impl RecordHeader {
    pub fn new(warc_type: &str, record_id: &str, date: &DateTime<Utc>) -> Self {
        RecordHeader {
            fields: vec![
                ("WARC-Type".into(), warc_type.into()),
                ("WARC-Record-ID".into(), record_id.into()),
                ("WARC-Date".into(), warc_date(date)),
            ],
        }
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.fields.push((name.to_string(), value.into()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `WARC-Date` with microseconds, as WARC/1.1 allows.
pub fn warc_date(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A new `<urn:uuid:...>` record identifier.
pub fn new_record_id() -> String {
    format!("<urn:uuid:{}>", uuid::Uuid::new_v4())
}

/// Where a record landed in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    pub offset: u64,
    pub length: u64,
    pub block_digest: Sha256,
}

/// A finished WARC file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarcSummary {
    pub sha256: Sha256,
    pub bytes: u64,
    pub records: u64,
}

struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[allow(
            clippy::disallowed_methods,
            reason = "a Write that forwards: it counts what the inner writer took"
        )]
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub struct WarcWriter<W: Write> {
    out: HashingWriter<W>,
    records: u64,
}

const COPY_BUF: usize = 256 * 1024;

impl<W: Write> WarcWriter<W> {
    pub fn new(inner: W) -> Self {
        WarcWriter {
            out: HashingWriter {
                inner,
                hasher: sha2::Sha256::new(),
                written: 0,
            },
            records: 0,
        }
    }

    /// Writes a record whose block is in memory (warcinfo, request, metadata).
    pub fn write_bytes(
        &mut self,
        header: &RecordHeader,
        block: &[u8],
        deflate: Deflate,
    ) -> Result<RecordSpan, WarcError> {
        let digest = Sha256::of(block);
        self.write_stream(header, block.len() as u64, digest, &mut &block[..], deflate)
    }

    /// Writes a record whose block is streamed from `block`, which must yield
    /// exactly `len` bytes hashing to `block_digest` (computed when the bytes
    /// were received). The copy is hashed again; a difference is an error,
    /// because the spool changed under us.
    pub fn write_stream(
        &mut self,
        header: &RecordHeader,
        len: u64,
        block_digest: Sha256,
        block: &mut dyn Read,
        deflate: Deflate,
    ) -> Result<RecordSpan, WarcError> {
        let mut head = String::with_capacity(512);
        head.push_str("WARC/1.1\r\n");
        for (name, value) in &header.fields {
            check_field(name, value)?;
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str(&format!(
            "WARC-Block-Digest: {}\r\n",
            block_digest.labelled()
        ));
        head.push_str(&format!("Content-Length: {len}\r\n\r\n"));

        let offset = self.out.written;
        let level = match deflate {
            Deflate::Compress => flate2::Compression::new(6),
            Deflate::Store => flate2::Compression::new(0),
        };
        let mut gz = GzEncoder::new(&mut self.out, level);
        gz.write_all(head.as_bytes())?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; COPY_BUF.min(len.max(1) as usize)];
        let mut copied = 0u64;
        loop {
            let n = block.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if copied + n as u64 > len {
                return Err(WarcError::BlockLengthChanged {
                    expected: len,
                    actual: copied + n as u64,
                });
            }
            hasher.update(&buf[..n]);
            gz.write_all(&buf[..n])?;
            copied += n as u64;
        }
        if copied != len {
            return Err(WarcError::BlockLengthChanged {
                expected: len,
                actual: copied,
            });
        }
        let actual = Sha256::from_hasher(hasher);
        if actual != block_digest {
            return Err(WarcError::BlockChanged {
                expected: block_digest,
                actual,
            });
        }
        gz.write_all(b"\r\n\r\n")?;
        gz.finish()?;
        self.records += 1;
        Ok(RecordSpan {
            offset,
            length: self.out.written - offset,
            block_digest,
        })
    }

    pub fn bytes_written(&self) -> u64 {
        self.out.written
    }

    /// Flushes and returns the inner writer with the file's digest and size.
    pub fn finish(mut self) -> Result<(W, WarcSummary), WarcError> {
        self.out.flush()?;
        let summary = WarcSummary {
            sha256: Sha256::from_hasher(self.out.hasher),
            bytes: self.out.written,
            records: self.records,
        };
        Ok((self.out.inner, summary))
    }
}

fn check_field(name: &str, value: &str) -> Result<(), WarcError> {
    let bad_name = name.is_empty() || name.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f);
    if bad_name || value.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(WarcError::BadHeaderField(name.to_string()));
    }
    Ok(())
}
