//! Reading WARC files written one gzip member per record.
//!
//! Layered like warcio's: a buffered stream (a file, or an object read from
//! the store as it arrives: nothing needs to seek); a gzip member decoder; a
//! header parser; a block limited to `Content-Length`; hashers over the block
//! and (through [`ResponseScanner`]) over the HTTP payload. Every record's
//! offset and compressed length are reported, and every declared digest can
//! be checked against the bytes actually there.

use std::io::{self, BufRead, Read};

use flate2::bufread::GzDecoder;
use sha2::Digest;

use super::http::{ResponseScanner, ScanResult};
use super::WarcError;
use crate::model::Sha256;

/// Longest record header accepted (all fields together).
const MAX_RECORD_HEAD: usize = 1024 * 1024;
/// Longest HTTP head accepted inside a stored response.
const MAX_HTTP_HEAD: usize = 1024 * 1024;
const MAX_HTTP_HEADERS: usize = 10_000;

/// The version line and header fields of a record, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHead {
    pub version: String,
    pub fields: Vec<(String, String)>,
}

impl RecordHead {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn warc_type(&self) -> &str {
        self.get("WARC-Type").unwrap_or("")
    }

    pub fn record_id(&self) -> &str {
        self.get("WARC-Record-ID").unwrap_or("")
    }

    fn is_http_response(&self) -> bool {
        matches!(self.warc_type(), "response" | "revisit")
            && self
                .get("Content-Type")
                .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/http"))
    }
}

/// One record as read, with digests computed from its bytes.
#[derive(Clone, Debug)]
pub struct ScannedRecord {
    pub head: RecordHead,
    pub offset: u64,
    pub length: u64,
    pub block_len: u64,
    pub block_sha256: Sha256,
    /// For HTTP responses: the parsed head and payload digest.
    pub http: Option<ScanResult>,
}

impl ScannedRecord {
    /// The payload digest as computed: the HTTP entity body for responses,
    /// the whole block for `resource` records.
    pub fn payload_sha256(&self) -> Option<Sha256> {
        match self.head.warc_type() {
            "response" => self.http.as_ref().map(|h| h.payload_sha256),
            "resource" => Some(self.block_sha256),
            _ => None,
        }
    }

    /// How the index's entry for this record differs from the record
    /// itself (its id, type, target, time, HTTP status, type of payload,
    /// digests, and the timestamp and SURT key that follow from them);
    /// `None` when every field agrees. The record's place is the caller's
    /// to check.
    pub fn differs_from_index(&self, r: &crate::model::RecordEntry) -> Option<String> {
        let head = &self.head;
        let date = head
            .get("WARC-Date")
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc));
        let http = self.http.as_ref().and_then(|h| h.head.as_ref());
        let differs = |field: &str, index: String, bytes: String| {
            Some(format!(
                "its {field} is {index} in the index, {bytes} in the WARC"
            ))
        };
        if head.record_id() != r.record_id {
            return differs(
                "WARC-Record-ID",
                r.record_id.clone(),
                head.record_id().into(),
            );
        }
        if head.warc_type() != r.warc_type {
            return differs("type", r.warc_type.clone(), head.warc_type().into());
        }
        if head.get("WARC-Target-URI") != r.target_uri.as_deref() {
            return differs(
                "target",
                format!("{:?}", r.target_uri),
                format!("{:?}", head.get("WARC-Target-URI")),
            );
        }
        if date != Some(r.date) {
            return differs("time", super::warc_date(&r.date), format!("{date:?}"));
        }
        if r.timestamp != crate::model::timestamp14(&r.date)
            || r.surt != crate::model::surt_of_target(r.target_uri.as_deref())
        {
            return Some(format!(
                "its timestamp {} or SURT key {:?} does not follow from its time and target",
                r.timestamp, r.surt
            ));
        }
        if http.map(|h| h.status) != r.status {
            return differs(
                "HTTP status",
                format!("{:?}", r.status),
                format!("{:?}", http.map(|h| h.status)),
            );
        }
        if http.and_then(|h| h.mime()) != r.mime {
            return differs(
                "type of payload",
                format!("{:?}", r.mime),
                format!("{:?}", http.and_then(|h| h.mime())),
            );
        }
        if self.block_sha256 != r.block_digest {
            return differs(
                "block digest",
                r.block_digest.hex(),
                self.block_sha256.hex(),
            );
        }
        let payload = match head.warc_type() {
            // A revisit's payload is its original's, named in a header.
            "revisit" => head
                .get("WARC-Payload-Digest")
                .and_then(|d| d.parse::<Sha256>().ok()),
            _ => self.payload_sha256(),
        };
        if payload.is_some() && payload != r.payload_digest {
            return differs(
                "payload digest",
                format!("{:?}", r.payload_digest),
                format!("{payload:?}"),
            );
        }
        None
    }

    /// For a chunked response whose payload digest matches: that both
    /// readings of its payload digest were computed and which one the
    /// WARC standard defines (a reader comparing with warcio check needs
    /// to know why that tool disagrees).
    pub fn chunked_note(&self) -> Option<String> {
        if self.head.warc_type() != "response" {
            return None;
        }
        let http = self.http.as_ref()?;
        let framed = http.framed_sha256?;
        Some(format!(
            "chunked: both readings of its payload digest computed: {} of the de-chunked \
             body, which WARC 1.1 section 6.3.2 defines and this record declares; {} of the \
             body with its chunk framing, which warcio check 1.8 expects and so reports as failed",
            http.payload_sha256.labelled(),
            framed.labelled()
        ))
    }

    /// Checks `WARC-Block-Digest` and `WARC-Payload-Digest` against the bytes.
    pub fn verify_digests(&self) -> Result<(), WarcError> {
        let id = self.head.record_id().to_string();
        let Some(declared) = self.head.get("WARC-Block-Digest") else {
            return Err(WarcError::MissingField {
                record_id: id,
                field: "WARC-Block-Digest",
            });
        };
        check_digest(&id, "block", declared, self.block_sha256)?;
        if let (Some(declared), Some(actual)) =
            (self.head.get("WARC-Payload-Digest"), self.payload_sha256())
        {
            check_digest(&id, "payload", declared, actual)?;
        }
        Ok(())
    }
}

fn check_digest(
    record_id: &str,
    which: &'static str,
    declared: &str,
    actual: Sha256,
) -> Result<(), WarcError> {
    let expected: Sha256 = declared.parse().map_err(|_| WarcError::UnsupportedDigest {
        record_id: record_id.to_string(),
        value: declared.to_string(),
    })?;
    if expected != actual {
        return Err(WarcError::DigestMismatch {
            record_id: record_id.to_string(),
            which,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Iterates over the records of a `.warc.gz` file.
pub struct WarcFileReader<R> {
    inner: Counted<R>,
}

/// A buffered reader that knows how far into its stream it is.
struct Counted<R> {
    inner: R,
    position: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.position += amt as u64;
        self.inner.consume(amt);
    }
}

impl<R: BufRead> WarcFileReader<R> {
    /// Records from the start of `inner`; offsets count from there.
    pub fn new(inner: R) -> Self {
        Self::starting_at(inner, 0)
    }

    /// Records from `inner`, whose first byte is at `offset` in the file
    /// (so reported offsets are the file's).
    pub fn starting_at(inner: R, offset: u64) -> Self {
        WarcFileReader {
            inner: Counted {
                inner,
                position: offset,
            },
        }
    }

    /// Moves on to `offset` (past a damaged record, to the next one the
    /// index names); false when the stream is already past it or ends
    /// first.
    pub fn skip_to(&mut self, offset: u64) -> io::Result<bool> {
        while self.inner.position < offset {
            let available = self.inner.fill_buf()?.len() as u64;
            if available == 0 {
                return Ok(false);
            }
            let n = available.min(offset - self.inner.position) as usize;
            self.inner.consume(n);
        }
        Ok(self.inner.position == offset)
    }

    /// Reads the next record, passing each piece of its payload (HTTP body
    /// with transfer-encoding removed, or the block of a `resource`,
    /// `metadata` or `warcinfo` record) to `payload_sink`. `Ok(None)` at the
    /// end of the file.
    pub fn next_record(
        &mut self,
        payload_sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Option<ScannedRecord>, WarcError> {
        let offset = self.inner.position;
        if self.inner.fill_buf()?.is_empty() {
            return Ok(None);
        }
        let at = |e: WarcError| WarcError::AtOffset {
            offset,
            source: Box::new(e),
        };
        let mut gz = GzDecoder::new(&mut self.inner);
        let record = read_one(&mut gz, payload_sink)
            .map_err(damaged_gzip)
            .map_err(at)?;
        // Drain what is left of the member (nothing, for a well-formed record)
        // so the next read starts at the next member.
        let extra = io::copy(&mut gz, &mut io::sink()).map_err(|e| at(damaged_gzip(e.into())))?;
        if extra > 0 {
            return Err(at(WarcError::Malformed(format!(
                "{extra} bytes after the record inside its gzip member"
            ))));
        }
        drop(gz);
        let end = self.inner.position;
        let (head, block_len, block_sha256, http) = record;
        Ok(Some(ScannedRecord {
            head,
            offset,
            length: end - offset,
            block_len,
            block_sha256,
            http,
        }))
    }
}

/// Decoder failures mean the compressed bytes are damaged, not that the disk
/// failed; say so.
fn damaged_gzip(e: WarcError) -> WarcError {
    match e {
        WarcError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::InvalidInput
                    | io::ErrorKind::InvalidData
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            WarcError::Malformed(format!("damaged or truncated gzip data ({io})"))
        }
        e => e,
    }
}

type OneRecord = (RecordHead, u64, Sha256, Option<ScanResult>);

fn read_one(
    gz: &mut dyn Read,
    payload_sink: &mut dyn FnMut(&[u8]),
) -> Result<OneRecord, WarcError> {
    let mut reader = io::BufReader::with_capacity(64 * 1024, gz);
    let head = read_head(&mut reader)?;
    let len: u64 = head
        .get("Content-Length")
        .ok_or_else(|| WarcError::MissingField {
            record_id: head.record_id().to_string(),
            field: "Content-Length",
        })?
        .trim()
        .parse()
        .map_err(|_| WarcError::Malformed("Content-Length is not a number".into()))?;

    let mut scanner = head
        .is_http_response()
        .then(|| ResponseScanner::new(MAX_HTTP_HEAD, MAX_HTTP_HEADERS, false));
    // Content records hand their block to the sink (for `resource` it is
    // also the payload; for `metadata` and `warcinfo` it is the content).
    let is_resource = matches!(head.warc_type(), "resource" | "metadata" | "warcinfo");
    let mut hasher = sha2::Sha256::new();
    let mut block = (&mut reader).take(len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut http_error = None;
    loop {
        let n = block.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
        hasher.update(&buf[..n]);
        if let Some(s) = scanner.as_mut() {
            if http_error.is_none() {
                if let Err(e) = s.feed(&buf[..n], payload_sink) {
                    http_error = Some(e);
                }
            }
        } else if is_resource {
            payload_sink(&buf[..n]);
        }
    }
    if got != len {
        return Err(WarcError::Truncated {
            expected: len,
            actual: got,
        });
    }
    let mut end = [0u8; 4];
    reader
        .read_exact(&mut end)
        .map_err(|_| WarcError::Malformed("record not followed by CRLF CRLF".into()))?;
    if &end != b"\r\n\r\n" {
        return Err(WarcError::Malformed(
            "record not followed by CRLF CRLF".into(),
        ));
    }
    let mut rest = [0u8; 1];
    if reader.read(&mut rest)? != 0 {
        return Err(WarcError::Malformed(
            "more than one record in a gzip member".into(),
        ));
    }
    if let Some(e) = http_error {
        return Err(WarcError::Http {
            record_id: head.record_id().to_string(),
            source: e,
        });
    }
    let http = scanner.map(|s| s.finish());
    Ok((head, len, Sha256::from_hasher(hasher), http))
}

/// Parses the version line and fields up to the empty line.
pub fn read_head<R: BufRead>(reader: &mut R) -> Result<RecordHead, WarcError> {
    let mut total = 0usize;
    let mut next_line = |reader: &mut R| -> Result<String, WarcError> {
        let mut line = Vec::new();
        let n = reader
            .take((MAX_RECORD_HEAD - total) as u64 + 1)
            .read_until(b'\n', &mut line)?;
        total += n;
        if total > MAX_RECORD_HEAD {
            return Err(WarcError::Malformed(
                "record header longer than 1 MiB".into(),
            ));
        }
        if n == 0 || !line.ends_with(b"\n") {
            return Err(WarcError::Malformed("record header ends early".into()));
        }
        let text = String::from_utf8(line)
            .map_err(|_| WarcError::Malformed("record header is not UTF-8".into()))?;
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    };
    let version = next_line(reader)?;
    if version != "WARC/1.1" && version != "WARC/1.0" {
        return Err(WarcError::Malformed(format!(
            "not a WARC record (first line {:?})",
            truncate(&version)
        )));
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    loop {
        let line = next_line(reader)?;
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            // A continuation line folds into the previous field.
            let Some(last) = fields.last_mut() else {
                return Err(WarcError::Malformed(
                    "continuation line before any field".into(),
                ));
            };
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(WarcError::Malformed(format!(
                "header line without a colon: {:?}",
                truncate(&line)
            )));
        };
        fields.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(RecordHead { version, fields })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}
