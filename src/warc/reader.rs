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

    /// A URI field (`WARC-Target-URI`, `WARC-Refers-To-Target-URI`), with
    /// the angle brackets WARC/1.0's examples put around it (and wget
    /// writes) taken off, as warcio and pywb read it.
    pub fn uri(&self, name: &str) -> Option<&str> {
        self.get(name).map(|v| {
            v.strip_prefix('<')
                .and_then(|v| v.strip_suffix('>'))
                .unwrap_or(v)
        })
    }

    pub fn target_uri(&self) -> Option<&str> {
        self.uri("WARC-Target-URI")
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
    /// The block's SHA-1, when a digest the record declares is SHA-1.
    pub block_sha1: Option<[u8; 20]>,
    /// For HTTP responses: the parsed head and payload digest.
    pub http: Option<ScanResult>,
    /// Why an HTTP response's bytes could not be parsed (only from a
    /// lenient reader: [`WarcFileReader::lenient_http`]).
    pub http_error: Option<String>,
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
        if head.target_uri() != r.target_uri.as_deref() {
            return differs(
                "target",
                format!("{:?}", r.target_uri),
                format!("{:?}", head.target_uri()),
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

    /// `WARC-Block-Digest` against the block's bytes.
    pub fn block_check(&self) -> DigestCheck {
        match self.head.get("WARC-Block-Digest") {
            None => DigestCheck::Absent,
            Some(declared) => {
                check_declared(declared, &[(Some(self.block_sha256), self.block_sha1, "")])
            }
        }
    }

    /// `WARC-Payload-Digest` against the payload: for a chunked response
    /// both readings (de-chunked, as WARC 1.1 defines it, and as framed,
    /// as warcio and wget hash it) are accepted, and the check says which
    /// one matched. Revisits name their original's payload: not checked.
    pub fn payload_check(&self) -> DigestCheck {
        let Some(declared) = self.head.get("WARC-Payload-Digest") else {
            return DigestCheck::Absent;
        };
        match (self.head.warc_type(), &self.http) {
            ("response", Some(h)) => {
                let sha1 = h.sha1;
                let mut readings = vec![(Some(h.payload_sha256), sha1.map(|s| s.payload), "")];
                if h.framed_sha256.is_some() {
                    readings.push((
                        h.framed_sha256,
                        sha1.map(|s| s.framed),
                        "the chunked body with its framing",
                    ));
                }
                check_declared(declared, &readings)
            }
            ("resource", _) => {
                check_declared(declared, &[(Some(self.block_sha256), self.block_sha1, "")])
            }
            _ => DigestCheck::Absent,
        }
    }

    /// Checks `WARC-Block-Digest` and `WARC-Payload-Digest` (SHA-256 or
    /// SHA-1, hex or base32) against the bytes. Both are optional in WARC
    /// 1.1: a record without them is checked by its reader against the
    /// digests the index committed to.
    pub fn verify_digests(&self) -> Result<(), WarcError> {
        let id = self.head.record_id().to_string();
        for (which, check) in [
            ("block", self.block_check()),
            ("payload", self.payload_check()),
        ] {
            match check {
                DigestCheck::Absent | DigestCheck::Matches(_) => {}
                DigestCheck::Mismatch { declared, computed } => {
                    return Err(WarcError::DigestMismatch {
                        record_id: id,
                        which,
                        expected: declared,
                        actual: computed,
                    })
                }
                DigestCheck::Unsupported(value) => {
                    return Err(WarcError::UnsupportedDigest {
                        record_id: id,
                        value,
                    })
                }
            }
        }
        Ok(())
    }
}

/// A declared digest against the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestCheck {
    /// The record declares none.
    Absent,
    /// It matches; the reading that matched when not the standard one.
    Matches(&'static str),
    /// It does not match: declared and computed, labelled as declared.
    Mismatch { declared: String, computed: String },
    /// An algorithm or encoding custody cannot check.
    Unsupported(String),
}

/// A declared digest's algorithm (true for SHA-256) and bytes: `sha256:`
/// or `sha1:`, in hex or base32 (RFC 4648; wget, warcio and Heritrix write
/// base32 SHA-1).
fn parse_declared(value: &str) -> Option<(bool, Vec<u8>)> {
    let (label, digits) = value.trim().split_once(':')?;
    let sha256 = match label.to_ascii_lowercase().as_str() {
        "sha256" | "sha-256" => true,
        "sha1" | "sha-1" => false,
        _ => return None,
    };
    let len = if sha256 { 32 } else { 20 };
    let bytes = if digits.len() == len * 2 {
        hex::decode(digits.to_ascii_lowercase()).ok()?
    } else {
        base32_decode(digits.trim_end_matches('='))?
    };
    (bytes.len() == len).then_some((sha256, bytes))
}

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.bytes() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Base32 (RFC 4648, no padding), as SHA-1 digests are written.
fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A reading of a digest: its SHA-256, its SHA-1 and what the reading is
/// called ("" for the standard one).
type Reading = (Option<Sha256>, Option<[u8; 20]>, &'static str);

/// Whether `declared` matches one of the readings.
fn check_declared(declared: &str, readings: &[Reading]) -> DigestCheck {
    let Some((is_sha256, want)) = parse_declared(declared) else {
        return DigestCheck::Unsupported(declared.to_string());
    };
    let mut computed = None;
    for (sha256, sha1, reading) in readings {
        let got: Option<Vec<u8>> = match is_sha256 {
            true => sha256.map(|d| d.as_bytes().to_vec()),
            false => sha1.map(|d| d.to_vec()),
        };
        let Some(got) = got else { continue };
        if got == want {
            return DigestCheck::Matches(reading);
        }
        computed.get_or_insert(got);
    }
    match computed {
        None => DigestCheck::Unsupported(declared.to_string()),
        Some(got) => DigestCheck::Mismatch {
            declared: declared.to_string(),
            computed: match is_sha256 {
                true => format!("sha256:{}", hex::encode(got)),
                false => format!("sha1:{}", base32_encode(&got)),
            },
        },
    }
}

/// Whether `declared` (SHA-256 or SHA-1, hex or base32) names a payload
/// whose SHA-256 is `sha256` and whose SHA-1, in either reading, is one
/// of `sha1` (what resolves an imported revisit to its original).
pub fn names_payload(declared: &str, sha256: Sha256, sha1: Option<super::http::Sha1Pair>) -> bool {
    let readings = [
        (Some(sha256), sha1.map(|s| s.payload), ""),
        (None, sha1.map(|s| s.framed), ""),
    ];
    matches!(check_declared(declared, &readings), DigestCheck::Matches(_))
}

/// Whether a digest field of `head` is SHA-1 (so the bytes need a SHA-1
/// too).
pub(crate) fn declares_sha1(head: &RecordHead, field: &str) -> bool {
    head.get(field).is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        v.starts_with("sha1:") || v.starts_with("sha-1:")
    })
}

/// Iterates over the records of a `.warc.gz` file.
pub struct WarcFileReader<R> {
    inner: Counted<R>,
    lenient_http: bool,
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
            lenient_http: false,
        }
    }

    /// A response whose HTTP bytes cannot be parsed is returned (with
    /// `http_error` set and no `http`) rather than an error: for the
    /// records of an import, whose problems were recorded when the file
    /// arrived.
    pub fn lenient_http(mut self) -> Self {
        self.lenient_http = true;
        self
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
        let (head, mut block) = record;
        if let Some(e) = block.http_error.take() {
            if !self.lenient_http {
                return Err(at(e));
            }
            block.http_error = Some(e);
        }
        Ok(Some(ScannedRecord {
            head,
            offset,
            length: end - offset,
            block_len: block.len,
            block_sha256: block.sha256,
            block_sha1: block.sha1,
            http: block.http,
            http_error: block.http_error.map(|e| e.to_string()),
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

/// A record's block as read: its length, digests and (for an HTTP
/// response) what scanning it found.
pub(crate) struct BlockScan {
    pub len: u64,
    pub sha256: Sha256,
    pub sha1: Option<[u8; 20]>,
    /// Absent when the block is not an HTTP response, or cannot be
    /// parsed as one (`http_error` says why).
    pub http: Option<ScanResult>,
    pub http_error: Option<WarcError>,
}

fn read_one(
    gz: &mut dyn Read,
    payload_sink: &mut dyn FnMut(&[u8]),
) -> Result<(RecordHead, BlockScan), WarcError> {
    let mut reader = io::BufReader::with_capacity(64 * 1024, gz);
    let head = read_head(&mut reader)?;
    let block = scan_block(&mut reader, &head, payload_sink, &mut |_| Ok(()))?;
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
    Ok((head, block))
}

/// The record's `Content-Length`.
pub(crate) fn content_length(head: &RecordHead) -> Result<u64, WarcError> {
    head.get("Content-Length")
        .ok_or_else(|| WarcError::MissingField {
            record_id: head.record_id().to_string(),
            field: "Content-Length",
        })?
        .trim()
        .parse()
        .map_err(|_| WarcError::Malformed("Content-Length is not a number".into()))
}

/// Reads the block `head` announces (exactly `Content-Length` bytes) from
/// `reader`, hashing it (SHA-1 too when a declared digest is SHA-1) and
/// scanning an HTTP response's payload, which goes to `payload_sink`; the
/// block's bytes go to `block_sink` as they are read.
pub(crate) fn scan_block(
    reader: &mut dyn Read,
    head: &RecordHead,
    payload_sink: &mut dyn FnMut(&[u8]),
    block_sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<BlockScan, WarcError> {
    use sha1::Digest as _;
    let len = content_length(head)?;
    let payload_sha1 = declares_sha1(head, "WARC-Payload-Digest");
    let mut scanner = head.is_http_response().then(|| {
        let s = ResponseScanner::new(MAX_HTTP_HEAD, MAX_HTTP_HEADERS, false);
        if payload_sha1 {
            s.with_sha1()
        } else {
            s
        }
    });
    let mut sha1 = (declares_sha1(head, "WARC-Block-Digest") || payload_sha1).then(sha1::Sha1::new);
    // Content records hand their block to the sink (for `resource` it is
    // also the payload; for `metadata` and `warcinfo` it is the content).
    let is_resource = matches!(head.warc_type(), "resource" | "metadata" | "warcinfo");
    let mut hasher = sha2::Sha256::new();
    let mut block = reader.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    let mut http_error = None;
    loop {
        let n = block.read(&mut buf)?;
        if n == 0 {
            break;
        }
        got += n as u64;
        sha2::Digest::update(&mut hasher, &buf[..n]);
        if let Some(s) = sha1.as_mut() {
            s.update(&buf[..n]);
        }
        block_sink(&buf[..n])?;
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
    let http_error = http_error.map(|e| WarcError::Http {
        record_id: head.record_id().to_string(),
        source: e,
    });
    Ok(BlockScan {
        len,
        sha256: Sha256::from_hasher(hasher),
        sha1: sha1.map(|s| s.finalize().into()),
        http: scanner.filter(|_| http_error.is_none()).map(|s| s.finish()),
        http_error,
    })
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
