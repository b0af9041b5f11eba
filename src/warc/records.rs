//! The records of a capture's WARC, built from plain inputs: `warcinfo`
//! first, then per exchange a `response` (or `revisit`, or `resource` for
//! bytes that are not HTTP) and its `request`, then the `metadata` record
//! with the capture manifest; and the standalone `metadata` record that
//! ends an export.
//!
//! Every record is described by a [`RecordEntry`] (what the index keeps),
//! made here from the header as written, so the index and the file cannot
//! disagree. The inputs name what was exchanged (URL, addresses, protocol
//! strings, spooled bytes and their scan), never a client: this module
//! knows nothing of how the bytes were fetched.

use std::io::{Read, Seek, SeekFrom, Write};

use chrono::{DateTime, Utc};

use super::{
    new_record_id, warc_date, Deflate, RecordHeader, RecordSpan, ScanResult, WarcError, WarcWriter,
};
use crate::model::{self, RecordEntry, Sha256};

/// The WARC 1.1 revisit profile custody writes.
pub const REVISIT_PROFILE: &str =
    "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest";

/// One exchange to record.
pub struct Exchange<'a> {
    pub url: &'a str,
    pub date: DateTime<Utc>,
    pub warcinfo_id: &'a str,
    pub remote_ip: Option<String>,
    /// `WARC-Protocol` values, in order (e.g. `http/1.1`, `tls/1.3`).
    pub protocols: Vec<String>,
    pub cipher_suite: Option<&'a str>,
    /// The request bytes as sent (empty when none were).
    pub request: &'a [u8],
    pub response: Option<Response<'a>>,
    /// An earlier record of the same URL and payload: the response becomes
    /// a `revisit` of it (unless the body was cut short).
    pub revisit_of: Option<&'a RecordEntry>,
}

/// A response as received: the spooled bytes and what scanning them found.
pub struct Response<'a> {
    /// The exact bytes received, positioned at their start.
    pub raw: &'a mut std::fs::File,
    pub raw_len: u64,
    pub raw_sha256: Sha256,
    /// `scan.head` is absent when the bytes are not HTTP.
    pub scan: &'a ScanResult,
    /// `WARC-Truncated` (`length`, `time`, `disconnect`).
    pub truncated: Option<&'a str>,
}

/// What one exchange put in the WARC.
#[derive(Debug, Default)]
pub struct Written {
    pub response_id: Option<String>,
    pub request_id: Option<String>,
    /// The response (or revisit, or resource) record first, then the
    /// request.
    pub entries: Vec<RecordEntry>,
    /// The response record's block digest.
    pub block_digest: Option<Sha256>,
    /// The record a `revisit` refers to, when one was written.
    pub revisit_of: Option<String>,
}

/// The `warcinfo` record: `fields` as `name: value` lines.
pub fn write_warcinfo<W: Write>(
    writer: &mut WarcWriter<W>,
    record_id: &str,
    date: &DateTime<Utc>,
    fields: &[(&str, String)],
) -> Result<RecordEntry, WarcError> {
    let block: String = fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {}\r\n", v.replace(['\r', '\n'], " ")))
        .collect();
    let mut header = RecordHeader::new("warcinfo", record_id, date);
    header.push("Content-Type", "application/warc-fields");
    let span = writer.write_bytes(&header, block.as_bytes(), Deflate::Compress)?;
    Ok(entry(&header, None, None, span))
}

/// A `metadata` record holding JSON (the capture manifest), targeted at
/// `target` (a `urn:custody:...` name, never the page's URL: replay tools
/// index metadata records by their target, and would serve the JSON in
/// place of the page).
pub fn write_json_metadata<W: Write>(
    writer: &mut WarcWriter<W>,
    target: &str,
    warcinfo_id: &str,
    date: &DateTime<Utc>,
    body: &[u8],
) -> Result<RecordEntry, WarcError> {
    let mut header = RecordHeader::new("metadata", &new_record_id(), date);
    header
        .push("WARC-Target-URI", target)
        .push("WARC-Warcinfo-ID", warcinfo_id)
        .push("Content-Type", "application/json");
    let span = writer.write_bytes(&header, body, Deflate::Compress)?;
    Ok(entry(&header, Some(target.to_string()), None, span))
}

/// A file a capture step produced (yt-dlp's media file), whole in a
/// `resource` record named `target` (`urn:media:...`). `file` yields `len`
/// bytes hashing to `sha256` (hashed when the step ended); the copy is
/// hashed again.
pub struct ProducedFile<'a> {
    pub target: &'a str,
    pub warcinfo_id: &'a str,
    pub date: &'a DateTime<Utc>,
    pub mime: &'a str,
    pub file: &'a mut std::fs::File,
    pub len: u64,
    pub sha256: Sha256,
    /// Extension fields (`Custody-Media-Format`, ...).
    pub fields: &'a [(&'a str, String)],
}

pub fn write_produced_file<W: Write>(
    writer: &mut WarcWriter<W>,
    f: ProducedFile<'_>,
) -> Result<RecordEntry, WarcError> {
    let header = produced_header(f.target, f.warcinfo_id, f.date, f.mime, f.sha256, f.fields);
    let deflate = choose_deflate(Some(f.mime), false, f.file);
    let span = writer.write_stream(&header, f.len, f.sha256, &mut *f.file, deflate)?;
    // As for any `resource` record, the index keeps no type of payload (it
    // has no HTTP head); the capture's media step names the file's type.
    let mut e = entry(&header, Some(f.target.to_string()), None, span);
    e.payload_digest = Some(f.sha256);
    Ok(e)
}

/// Bytes a capture step made (a screenshot, a PDF, the rendered DOM),
/// whole in a `resource` record named `target` (`urn:screenshot:...`).
pub fn write_produced_bytes<W: Write>(
    writer: &mut WarcWriter<W>,
    target: &str,
    warcinfo_id: &str,
    date: &DateTime<Utc>,
    mime: &str,
    body: &[u8],
    fields: &[(&str, String)],
) -> Result<RecordEntry, WarcError> {
    let sha256 = Sha256::of(body);
    let header = produced_header(target, warcinfo_id, date, mime, sha256, fields);
    let deflate = deflate_for(Some(mime), false, &body[..body.len().min(64 * 1024)]);
    let span = writer.write_bytes(&header, body, deflate)?;
    let mut e = entry(&header, Some(target.to_string()), None, span);
    e.payload_digest = Some(sha256);
    Ok(e)
}

/// The header of a `resource` record a capture step made.
fn produced_header(
    target: &str,
    warcinfo_id: &str,
    date: &DateTime<Utc>,
    mime: &str,
    sha256: Sha256,
    fields: &[(&str, String)],
) -> RecordHeader {
    let mut header = RecordHeader::new("resource", &new_record_id(), date);
    header
        .push("WARC-Target-URI", target)
        .push("WARC-Warcinfo-ID", warcinfo_id)
        .push("Content-Type", mime)
        .push("WARC-Payload-Digest", sha256.labelled());
    for (name, value) in fields {
        header.push(name, value.replace(['\r', '\n'], " "));
    }
    header
}

/// A `metadata` record holding JSON that describes the record `refers_to`
/// (yt-dlp's info JSON for a media file), as the tool wrote it.
pub fn write_describing_metadata<W: Write>(
    writer: &mut WarcWriter<W>,
    target: &str,
    warcinfo_id: &str,
    date: &DateTime<Utc>,
    refers_to: &str,
    body: &[u8],
) -> Result<RecordEntry, WarcError> {
    let mut header = RecordHeader::new("metadata", &new_record_id(), date);
    header
        .push("WARC-Target-URI", target)
        .push("WARC-Warcinfo-ID", warcinfo_id)
        .push("WARC-Refers-To", refers_to)
        .push("Content-Type", "application/json");
    let span = writer.write_bytes(&header, body, Deflate::Compress)?;
    Ok(entry(&header, Some(target.to_string()), None, span))
}

/// One standalone gzip member: a `metadata` record holding JSON (what
/// ends an export).
pub fn json_metadata_record(
    target: &str,
    date: &DateTime<Utc>,
    body: &[u8],
) -> Result<Vec<u8>, WarcError> {
    let mut header = RecordHeader::new("metadata", &new_record_id(), date);
    header
        .push("WARC-Target-URI", target)
        .push("Content-Type", "application/json");
    let mut writer = WarcWriter::new(Vec::new());
    writer.write_bytes(&header, body, Deflate::Compress)?;
    Ok(writer.finish()?.0)
}

/// Writes one exchange: the response (a `response`, a `revisit` of
/// `ex.revisit_of`, or, for bytes that are not HTTP, a `resource`), then
/// the request, linked by `WARC-Concurrent-To`.
pub fn write_exchange<W: Write>(
    writer: &mut WarcWriter<W>,
    ex: Exchange<'_>,
) -> Result<Written, WarcError> {
    let mut out = Written {
        response_id: ex.response.as_ref().map(|_| new_record_id()),
        request_id: (!ex.request.is_empty()).then(new_record_id),
        ..Written::default()
    };
    let common = |h: &mut RecordHeader| {
        h.push("WARC-Target-URI", ex.url);
        h.push("WARC-Warcinfo-ID", ex.warcinfo_id);
        if let Some(ip) = &ex.remote_ip {
            h.push("WARC-IP-Address", ip.as_str());
        }
        for p in &ex.protocols {
            h.push("WARC-Protocol", p.as_str());
        }
        if let Some(c) = ex.cipher_suite.filter(|c| !c.is_empty()) {
            h.push("WARC-Cipher-Suite", c);
        }
    };
    if let (Some(response), Some(rid)) = (ex.response, out.response_id.as_deref()) {
        let mut h;
        let span;
        let scan = response.scan;
        if scan.head.is_none() {
            // Not HTTP: the bytes as received, in a `resource` record.
            h = RecordHeader::new("resource", rid, &ex.date);
            common(&mut h);
            h.push("Content-Type", "application/octet-stream");
            h.push("WARC-Payload-Digest", response.raw_sha256.labelled());
            if let Some(t) = response.truncated {
                h.push("WARC-Truncated", t);
            }
            span = writer.write_stream(
                &h,
                response.raw_len,
                response.raw_sha256,
                &mut *response.raw,
                Deflate::Compress,
            )?;
            let mut e = entry(&h, Some(ex.url.to_string()), None, span);
            e.payload_digest = Some(response.raw_sha256);
            out.entries.push(e);
        } else {
            let revisit = ex.revisit_of.filter(|_| response.truncated.is_none());
            h = response_header(
                rid,
                &ex.date,
                &common,
                out.request_id.as_deref(),
                scan,
                response.truncated,
                revisit,
            );
            span = if revisit.is_some() {
                // The block is the response head as received; the payload
                // is the original's.
                let mut head_bytes = vec![0u8; scan.head_len as usize];
                response.raw.read_exact(&mut head_bytes)?;
                writer.write_bytes(&h, &head_bytes, Deflate::Compress)?
            } else {
                let head = scan.head.as_ref();
                let mime = head.and_then(|h| h.mime());
                let encoded = head.and_then(|h| h.content_encoding()).is_some();
                let deflate = choose_deflate(mime.as_deref(), encoded, &mut *response.raw);
                writer.write_stream(
                    &h,
                    response.raw_len,
                    response.raw_sha256,
                    &mut *response.raw,
                    deflate,
                )?
            };
            out.revisit_of = revisit.map(|o| o.record_id.clone());
            out.entries
                .push(entry(&h, Some(ex.url.to_string()), Some(scan), span));
        }
        out.block_digest = Some(span.block_digest);
    }
    if let Some(req_id) = &out.request_id {
        let mut h = RecordHeader::new("request", req_id, &ex.date);
        common(&mut h);
        if let Some(rid) = &out.response_id {
            h.push("WARC-Concurrent-To", rid.as_str());
        }
        h.push("Content-Type", "application/http;msgtype=request");
        let span = writer.write_bytes(&h, ex.request, Deflate::Compress)?;
        out.entries
            .push(entry(&h, Some(ex.url.to_string()), None, span));
    }
    Ok(out)
}

/// The header of a `response` record, or of a `revisit` of `revisit`.
fn response_header(
    rid: &str,
    date: &DateTime<Utc>,
    common: &dyn Fn(&mut RecordHeader),
    request_id: Option<&str>,
    scan: &ScanResult,
    truncated: Option<&str>,
    revisit: Option<&RecordEntry>,
) -> RecordHeader {
    let kind = if revisit.is_some() {
        "revisit"
    } else {
        "response"
    };
    let mut h = RecordHeader::new(kind, rid, date);
    common(&mut h);
    if let Some(req) = request_id {
        h.push("WARC-Concurrent-To", req);
    }
    h.push("Content-Type", "application/http;msgtype=response");
    if let Some(o) = revisit {
        h.push("WARC-Profile", REVISIT_PROFILE);
        h.push("WARC-Refers-To", o.record_id.as_str());
        if let Some(uri) = &o.target_uri {
            h.push("WARC-Refers-To-Target-URI", uri.as_str());
        }
        h.push("WARC-Refers-To-Date", warc_date(&o.date));
    }
    h.push("WARC-Payload-Digest", scan.payload_sha256.labelled());
    if let Some(m) = scan.head.as_ref().and_then(|h| h.mime()) {
        h.push("WARC-Identified-Payload-Type", m);
    }
    if let Some(t) = truncated {
        h.push("WARC-Truncated", t);
    }
    h
}

/// The index entry of a record as written.
fn entry(
    header: &RecordHeader,
    target: Option<String>,
    response: Option<&ScanResult>,
    span: RecordSpan,
) -> RecordEntry {
    let date = header
        .get("WARC-Date")
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let head = response.and_then(|r| r.head.as_ref());
    RecordEntry {
        record_id: header.get("WARC-Record-ID").unwrap_or_default().to_string(),
        warc_type: header.get("WARC-Type").unwrap_or_default().to_string(),
        surt: model::surt_of_target(target.as_deref()),
        target_uri: target,
        timestamp: model::timestamp14(&date),
        date,
        mime: head.and_then(|h| h.mime()),
        status: head.map(|h| h.status),
        payload_digest: response.map(|r| r.payload_sha256),
        block_digest: span.block_digest,
        offset: span.offset,
        length: span.length,
    }
}

/// Already-compressed payloads are stored at deflate level 0 (DESIGN.md,
/// Compression): media types known to be compressed, any content-encoded
/// body, and anything whose first 64 KiB do not shrink.
fn choose_deflate(mime: Option<&str>, content_encoded: bool, raw: &mut std::fs::File) -> Deflate {
    let mut sample = vec![0u8; 64 * 1024];
    let n = raw.read(&mut sample).unwrap_or(0);
    let _ = raw.seek(SeekFrom::Start(0));
    deflate_for(mime, content_encoded, &sample[..n])
}

/// How a payload of this type is deflated, judged by its type and, when
/// that says nothing, by whether `sample` (its first bytes) shrinks.
pub fn deflate_for(mime: Option<&str>, content_encoded: bool, sample: &[u8]) -> Deflate {
    if content_encoded {
        return Deflate::Store;
    }
    let m = mime.unwrap_or("");
    let text_like = m.starts_with("text/")
        || m.contains("json")
        || m.contains("xml")
        || m.contains("javascript")
        || m == "image/svg+xml"
        || m.contains("mpegurl")
        || m.contains("dash");
    if text_like {
        return Deflate::Compress;
    }
    let compressed_media = (m.starts_with("image/") && m != "image/bmp")
        || m.starts_with("video/")
        || m.starts_with("audio/")
        || m.starts_with("font/woff")
        || matches!(
            m,
            "application/zip"
                | "application/gzip"
                | "application/x-gzip"
                | "application/pdf"
                | "application/x-7z-compressed"
                | "application/x-xz"
                | "application/zstd"
                | "application/font-woff"
        );
    if compressed_media {
        return Deflate::Store;
    }
    // Unknown: try the sample.
    let n = sample.len().min(64 * 1024);
    if n < 1024 {
        return Deflate::Compress;
    }
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(&sample[..n]);
    let size = enc.finish().map(|v| v.len()).unwrap_or(n);
    if size * 10 > n * 9 {
        Deflate::Store
    } else {
        Deflate::Compress
    }
}
