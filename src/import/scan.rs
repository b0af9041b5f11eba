//! Reading an imported file once: every record checked and copied into the
//! access copy, the package (for a WACZ) checked against its own listing
//! and signature, and what was found written down.
//!
//! Runs on a blocking thread; nothing here touches the index or the store.
//! The same code, with no access copy, re-derives the content digest from
//! the stored original for `verify`.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use sha2::Digest;

use crate::model::{ImportProblem, RecordEntry, Resource, Sha256};
use crate::wacz::unzip;
use crate::warc::foreign::{ForeignHead, ForeignReader};
use crate::warc::http::Sha1Pair;
use crate::warc::{records, Deflate, DigestCheck, ScannedRecord, WarcError};

/// Most records one import may hold by default (`import.max_records`):
/// every record is in the capture's log leaf, so a file with more is
/// refused (split it into parts).
pub const MAX_RECORDS: usize = 250_000;
/// Most a gzip stream may expand beyond 64 MiB: more is refused as a
/// likely gzip bomb.
pub const MAX_GZIP_RATIO: u64 = 200;
const RATIO_ALLOWANCE: u64 = 64 << 20;
/// Largest `warcinfo` block read for its `software` and `operator`.
const MAX_WARCINFO: usize = 64 * 1024;
/// Largest package member read whole (datapackage.json, pages).
const MAX_SMALL_MEMBER: u64 = 16 << 20;

/// The kinds of file custody imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Warc,
    WarcGz,
    Wacz,
}

impl Kind {
    pub fn ext(self) -> &'static str {
        match self {
            Kind::Warc => "warc",
            Kind::WarcGz => "warc.gz",
            Kind::Wacz => "wacz",
        }
    }

    /// The kind an import's `format` names (`warc.gz` for anything else).
    pub fn from_ext(ext: &str) -> Kind {
        match ext {
            "warc" => Kind::Warc,
            "wacz" => Kind::Wacz,
            _ => Kind::WarcGz,
        }
    }

    /// What a file is, from its first bytes; `Err` says, in one line, why
    /// it is not something custody imports.
    pub fn sniff(first: &[u8]) -> Result<Kind, String> {
        if first.is_empty() {
            return Err("is empty".into());
        }
        if first.starts_with(&[0x1f, 0x8b]) {
            return Ok(Kind::WarcGz);
        }
        if first.starts_with(b"WARC/") {
            return Ok(Kind::Warc);
        }
        if first.starts_with(b"PK\x03\x04") {
            return Ok(Kind::Wacz);
        }
        let shown: String = first
            .iter()
            .take(8)
            .map(|&b| {
                if b.is_ascii_graphic() {
                    (b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect();
        Err(format!(
            "is not a WARC or WACZ file (it begins with {shown:?}; custody imports .warc, .warc.gz and .wacz)"
        ))
    }
}

/// A revisit record found in the file, to resolve once the whole file
/// (and then the archive) can be searched.
#[derive(Clone, Debug)]
pub struct Revisit {
    pub record: String,
    pub refers_to: Option<String>,
    pub target: Option<String>,
    pub declared: Option<String>,
    pub at: String,
}

/// A response or resource of the file, for resolving revisits to it.
#[derive(Clone, Debug)]
pub struct Original {
    pub record: String,
    pub payload_sha256: Sha256,
    pub sha1: Option<Sha1Pair>,
}

/// What reading the file found.
#[derive(Default)]
pub struct Scan {
    /// The imported records, as the index will hold them (offsets in the
    /// access copy).
    pub entries: Vec<RecordEntry>,
    pub resources: Vec<Resource>,
    pub revisits: Vec<Revisit>,
    /// Responses and resources by target, then by record id.
    pub by_target: HashMap<String, Vec<Original>>,
    pub by_id: HashMap<String, Sha256>,
    pub problems: Vec<ImportProblem>,
    pub verified: Vec<String>,
    pub software: Vec<String>,
    pub operator: Vec<String>,
    pub signer: Option<String>,
    pub main_page: Option<String>,
    pub content_sha256: Option<Sha256>,
    counts: Counts,
    max_records: usize,
}

#[derive(Default)]
struct Counts {
    block_ok: u64,
    payload_ok: u64,
    framed: u64,
    sha1: u64,
    no_digest: u64,
}

/// Where imported records go: custody's access copy (one gzip member
/// each), or nowhere (re-deriving the content digest).
pub trait Copy {
    /// Writes one record, deflated as `deflate` says; `fill` copies its
    /// bytes in. On an error the copy is as it was before the record.
    fn record(
        &mut self,
        deflate: Deflate,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<ScannedRecord, WarcError>,
    ) -> Result<(u64, u64, ScannedRecord), WarcError>;
}

/// Discards the records (their bytes are still hashed).
pub struct NoCopy;

impl Copy for NoCopy {
    fn record(
        &mut self,
        _: Deflate,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<ScannedRecord, WarcError>,
    ) -> Result<(u64, u64, ScannedRecord), WarcError> {
        Ok((0, 0, fill(&mut io::sink())?))
    }
}

/// A reader that counts the bytes it passes (the compressed side of a
/// gzip stream, for the bomb guard).
struct Counting<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.set(self.n.get() + n as u64);
        Ok(n)
    }
}

/// The uncompressed side: refuses to go on once it has given out more
/// than [`MAX_GZIP_RATIO`] times what was read, past an allowance.
struct BombGuard<R> {
    inner: R,
    compressed: Rc<Cell<u64>>,
    out: u64,
}

impl<R: Read> Read for BombGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        if self.out > self.compressed.get().saturating_mul(MAX_GZIP_RATIO) + RATIO_ALLOWANCE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the gzip data expands more than {MAX_GZIP_RATIO} times: refused as a gzip bomb"
                ),
            ));
        }
        Ok(n)
    }
}

/// A writer that hashes what passes (the content digest).
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hasher: &'a mut sha2::Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[allow(
            clippy::disallowed_methods,
            reason = "a Write that forwards: it hashes what the inner writer took"
        )]
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads the whole file at `path` of kind `kind` into `copy`.
pub fn scan(
    path: &Path,
    kind: Kind,
    max_records: usize,
    copy: &mut dyn Copy,
) -> Result<Scan, String> {
    let open = || std::fs::File::open(path).map_err(|e| format!("cannot read the file: {e}"));
    let mut s = Scan {
        max_records,
        ..Scan::default()
    };
    let mut content = sha2::Sha256::new();
    match kind {
        Kind::Warc | Kind::WarcGz => {
            let file = BufReader::with_capacity(1 << 20, open()?);
            s.stream(file, None, copy, &mut content)?;
        }
        Kind::Wacz => {
            let mut file = open()?;
            s.package(&mut file, copy, &mut content)?;
        }
    }
    if s.entries.is_empty() {
        return Err(match s.problems.first() {
            Some(p) => format!("holds no WARC record custody could read ({})", p.problem),
            None => "holds no WARC record custody could read".into(),
        });
    }
    s.sum_up();
    s.content_sha256 = Some(Sha256::from_hasher(content));
    Ok(s)
}

impl Scan {
    fn problem(&mut self, record: Option<&str>, at: String, problem: impl Into<String>) {
        self.problems.push(ImportProblem {
            record: record.map(str::to_string),
            at: Some(at),
            problem: problem.into(),
        });
    }

    /// One WARC stream (the file, or a WACZ member): gzip-compressed
    /// (whole or per record) or not.
    fn stream(
        &mut self,
        mut input: impl BufRead,
        member: Option<&str>,
        copy: &mut dyn Copy,
        content: &mut sha2::Sha256,
    ) -> Result<(), String> {
        let gzipped = input
            .fill_buf()
            .map_err(|e| format!("cannot read the file: {e}"))?
            .starts_with(&[0x1f, 0x8b]);
        if gzipped {
            let compressed = Rc::new(Cell::new(0));
            let decoder = flate2::read::MultiGzDecoder::new(Counting {
                inner: input,
                n: compressed.clone(),
            });
            let guarded = BombGuard {
                inner: decoder,
                compressed,
                out: 0,
            };
            self.records(
                BufReader::with_capacity(1 << 20, guarded),
                member,
                copy,
                content,
            )
        } else {
            self.records(input, member, copy, content)
        }
    }

    fn records(
        &mut self,
        input: impl BufRead,
        member: Option<&str>,
        copy: &mut dyn Copy,
        content: &mut sha2::Sha256,
    ) -> Result<(), String> {
        let mut reader = ForeignReader::new(input);
        let place = |offset: u64| match member {
            Some(m) => format!("{m}, offset {offset}"),
            None => format!("offset {offset}"),
        };
        let mut seen: HashSet<String> = self.entries.iter().map(|e| e.record_id.clone()).collect();
        loop {
            let at = reader.position();
            let head = match reader.next_head() {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let e = plain(&e);
                    self.problem(
                        None,
                        place(at),
                        format!("the file cannot be read as WARC records from here on, which are not imported: {e}"),
                    );
                    return Ok(());
                }
            };
            if self.entries.len() >= self.max_records {
                return Err(format!(
                    "holds more than {} records, the most one import takes (import.max_records; every record is committed to the log with its import): split it into smaller files and import each",
                    self.max_records
                ));
            }
            let id = head.head.record_id().to_string();
            let date = head
                .head
                .get("WARC-Date")
                .and_then(|d| DateTime::parse_from_rfc3339(d.trim()).ok())
                .map(|d| d.with_timezone(&Utc));
            let skip = if id.is_empty() {
                Some("it has no WARC-Record-ID".to_string())
            } else if seen.contains(&id) {
                Some(format!(
                    "its WARC-Record-ID {id} is used by an earlier record"
                ))
            } else if date.is_none() {
                Some("it has no valid WARC-Date".to_string())
            } else {
                None
            };
            if let Some(why) = skip {
                let offset = head.offset;
                self.problem(
                    (!id.is_empty()).then_some(id.as_str()),
                    place(offset),
                    format!("not imported: {why}"),
                );
                if let Err(e) = reader.copy_block(head, &mut |_| {}, &mut io::sink()) {
                    self.problem(
                        None,
                        place(offset),
                        format!(
                            "the file ends inside this record ({}); nothing after it is imported",
                            plain(&e)
                        ),
                    );
                    return Ok(());
                }
                continue;
            }
            let date = date.expect("checked");
            seen.insert(id.clone());
            match self.one(&mut reader, head, copy, content) {
                Ok((offset, length, r)) => {
                    self.entry(r, offset, length, date, &place);
                }
                Err((offset, e)) => {
                    self.problem(
                        Some(&id),
                        place(offset),
                        format!(
                            "the file ends or breaks inside this record ({}): it and everything after it are not imported",
                            plain(&e)
                        ),
                    );
                    return Ok(());
                }
            }
        }
    }

    /// Copies one record, hashing its bytes into the content digest only
    /// when the whole record was copied.
    fn one(
        &mut self,
        reader: &mut ForeignReader<impl BufRead>,
        head: ForeignHead,
        copy: &mut dyn Copy,
        content: &mut sha2::Sha256,
    ) -> Result<(u64, u64, ForeignOut), (u64, WarcError)> {
        let offset = head.offset;
        let is_warcinfo = head.head.warc_type() == "warcinfo";
        let deflate = match reader.peek(64 * 1024) {
            Ok(start) => deflate_of(&head.head, start),
            Err(_) => Deflate::Compress,
        };
        let mut info = Vec::new();
        let mut hasher = content.clone();
        let mut head = Some(head);
        let mut terminated = true;
        let (at, len, scanned) = copy
            .record(deflate, &mut |out| {
                let head = head.take().expect("filled once");
                let mut hashing = Hashing {
                    inner: out,
                    hasher: &mut hasher,
                };
                let r = reader.copy_block(
                    head,
                    &mut |piece| {
                        if is_warcinfo && info.len() < MAX_WARCINFO {
                            info.extend_from_slice(piece);
                        }
                    },
                    &mut hashing,
                )?;
                terminated = r.terminated;
                Ok(r.record)
            })
            .map_err(|e| (offset, e))?;
        *content = hasher;
        if is_warcinfo {
            self.warcinfo(&info);
        }
        Ok((
            at,
            len,
            ForeignOut {
                record: scanned,
                terminated,
                source_offset: offset,
            },
        ))
    }

    fn warcinfo(&mut self, block: &[u8]) {
        for line in String::from_utf8_lossy(block).lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim().to_string();
            let list = match k.trim().to_ascii_lowercase().as_str() {
                "software" => &mut self.software,
                "operator" => &mut self.operator,
                _ => continue,
            };
            if !v.is_empty() && !list.contains(&v) && list.len() < 20 {
                list.push(v.chars().take(300).collect());
            }
        }
    }

    /// The record's index entry, its resource, its checks and what
    /// revisits may refer to.
    fn entry(
        &mut self,
        out: ForeignOut,
        offset: u64,
        length: u64,
        date: DateTime<Utc>,
        place: &dyn Fn(u64) -> String,
    ) {
        let r = &out.record;
        let id = r.head.record_id().to_string();
        let here = place(out.source_offset);
        if !out.terminated {
            self.problem(Some(&id), here.clone(), "the record is not followed by CRLF CRLF (the access copy ends it with one; the file is kept as received)");
        }
        if let Some(e) = &r.http_error {
            self.problem(
                Some(&id),
                here.clone(),
                format!("its HTTP response cannot be parsed: {e}"),
            );
        }
        for (which, check) in [("block", r.block_check()), ("payload", r.payload_check())] {
            match check {
                DigestCheck::Absent => {
                    if which == "block" {
                        self.counts.no_digest += 1;
                    }
                }
                DigestCheck::Matches(reading) => {
                    if which == "block" {
                        self.counts.block_ok += 1;
                    } else {
                        self.counts.payload_ok += 1;
                    }
                    if !reading.is_empty() {
                        self.counts.framed += 1;
                    }
                    let field = if which == "block" { "WARC-Block-Digest" } else { "WARC-Payload-Digest" };
                    if crate::warc::reader::declares_sha1(&r.head, field) {
                        self.counts.sha1 += 1;
                    }
                }
                DigestCheck::Mismatch { declared, computed } => self.problem(
                    Some(&id),
                    here.clone(),
                    format!("its {which} digest does not match: declared {declared}, computed {computed}"),
                ),
                DigestCheck::Unsupported(v) => self.problem(
                    Some(&id),
                    here.clone(),
                    format!("its {which} digest {v:?} cannot be checked (custody checks sha256 and sha1)"),
                ),
            }
        }
        let entry = crate::rebuild::entry_of(r, offset, length, date);
        let target = entry.target_uri.clone();
        match entry.warc_type.as_str() {
            "response" | "resource" => {
                if let (Some(t), Some(p)) = (&target, entry.payload_digest) {
                    self.by_target.entry(t.clone()).or_default().push(Original {
                        record: id.clone(),
                        payload_sha256: p,
                        sha1: r.http.as_ref().and_then(|h| h.sha1),
                    });
                    self.by_id.insert(id.clone(), p);
                }
            }
            "revisit" => self.revisits.push(Revisit {
                record: id.clone(),
                refers_to: r.head.get("WARC-Refers-To").map(str::to_string),
                target: r
                    .head
                    .uri("WARC-Refers-To-Target-URI")
                    .or(target.as_deref())
                    .map(str::to_string),
                declared: r.head.get("WARC-Payload-Digest").map(str::to_string),
                at: here.clone(),
            }),
            _ => {}
        }
        if matches!(
            entry.warc_type.as_str(),
            "response" | "resource" | "revisit"
        ) {
            if let Some(url) = &target {
                self.resources.push(Resource {
                    url: url.clone(),
                    status: entry.status,
                    mime: entry.mime.clone().or_else(|| {
                        (entry.warc_type == "resource")
                            .then(|| r.head.get("Content-Type").map(str::to_string))
                            .flatten()
                    }),
                    payload_sha256: entry.payload_digest,
                    bytes: match entry.warc_type.as_str() {
                        "resource" => r.block_len,
                        _ => r.http.as_ref().map(|h| h.payload_len).unwrap_or(0),
                    },
                    truncated: r.head.get("WARC-Truncated").map(str::to_string),
                    error: None,
                });
            }
        }
        self.entries.push(entry);
    }

    fn sum_up(&mut self) {
        let c = &self.counts;
        let n = self.entries.len();
        let mut line = format!(
            "{n} records read; {} block digests and {} payload digests match",
            c.block_ok, c.payload_ok
        );
        if c.sha1 > 0 {
            line.push_str(&format!(" ({} of them SHA-1)", c.sha1));
        }
        self.verified.push(line);
        if c.framed > 0 {
            self.verified.push(format!(
                "{} chunked responses declare the payload digest of the body with its chunk framing (as warcio and wget compute it); WARC 1.1 section 6.3.2 defines it over the de-chunked body, which custody indexes",
                c.framed
            ));
        }
        if c.no_digest > 0 {
            self.verified.push(format!(
                "{} records declare no block digest (optional in WARC 1.1): custody's SHA-256, computed on arrival, is what they are checked against from now on",
                c.no_digest
            ));
        }
    }

    /// A WACZ: the ZIP checked, its listing and signature checked, and
    /// every WARC under `archive/` read.
    fn package(
        &mut self,
        file: &mut std::fs::File,
        copy: &mut dyn Copy,
        content: &mut sha2::Sha256,
    ) -> Result<(), String> {
        let entries =
            unzip::entries(file).map_err(|e| format!("is not a WACZ custody can read: {e}"))?;
        self.verified.push(format!("ZIP structure: {} entries, every name a plain relative path, no entry overlapping another", entries.len()));
        let mut digests: BTreeMap<String, (Sha256, u64)> = BTreeMap::new();
        let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut warcs: Vec<&unzip::Entry> = entries
            .iter()
            .filter(|e| {
                e.name.starts_with("archive/")
                    && (e.name.ends_with(".warc") || e.name.ends_with(".warc.gz"))
            })
            .collect();
        warcs.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries.iter().filter(|e| !e.name.ends_with('/')) {
            let is_warc = warcs.iter().any(|w| w.name == e.name);
            let mut sha = sha2::Sha256::new();
            let mut kept = Vec::new();
            // Only the members read whole are kept (however many others a
            // package has, and however large).
            let keep = e.size <= MAX_SMALL_MEMBER
                && matches!(
                    e.name.as_str(),
                    "datapackage.json" | "datapackage-digest.json" | "pages/pages.jsonl"
                );
            let read = (|| -> Result<(), String> {
                let reader = unzip::open(file, e).map_err(|e| e.to_string())?;
                let mut tee = TeeRead {
                    inner: reader,
                    sha: &mut sha,
                    keep: keep.then_some(&mut kept),
                };
                if is_warc {
                    self.stream(
                        BufReader::with_capacity(1 << 20, &mut tee),
                        Some(&e.name),
                        copy,
                        content,
                    )?;
                }
                io::copy(&mut tee, &mut io::sink()).map_err(|e| e.to_string())?;
                Ok(())
            })();
            if let Err(why) = read {
                if why.starts_with("holds more than") {
                    return Err(why);
                }
                self.problem(
                    None,
                    e.name.clone(),
                    format!("the member cannot be read whole: {why}"),
                );
                continue;
            }
            digests.insert(e.name.clone(), (Sha256::from_hasher(sha), e.size));
            if keep {
                small.insert(e.name.clone(), kept);
            }
        }
        self.datapackage(&digests, &small);
        Ok(())
    }

    /// `datapackage.json` against the members, `datapackage-digest.json`
    /// against it, and its signature.
    fn datapackage(
        &mut self,
        digests: &BTreeMap<String, (Sha256, u64)>,
        small: &BTreeMap<String, Vec<u8>>,
    ) {
        let Some(bytes) = small.get("datapackage.json") else {
            self.problem(
                None,
                "datapackage.json".into(),
                "missing (or too large): the package's own listing cannot be checked",
            );
            return;
        };
        let package: serde_json::Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                self.problem(None, "datapackage.json".into(), format!("not JSON: {e}"));
                return;
            }
        };
        if let Some((url, _)) = crate::wacz::main_page(&package) {
            self.main_page = Some(url.to_string());
        } else if let Some(pages) = small.get("pages/pages.jsonl") {
            self.main_page = String::from_utf8_lossy(pages)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find_map(|v| v["url"].as_str().map(str::to_string));
        }
        let mut listed = Vec::new();
        let mut matched = 0;
        for r in package["resources"].as_array().cloned().unwrap_or_default() {
            let p = r["path"].as_str().unwrap_or_default().to_string();
            let want = r["hash"].as_str().unwrap_or_default();
            match digests.get(&p) {
                None => self.problem(
                    None,
                    p.clone(),
                    "listed in datapackage.json but not in the package",
                ),
                Some((sha, size)) => {
                    if want != sha.labelled() {
                        self.problem(
                            None,
                            p.clone(),
                            format!(
                                "its SHA-256 is {}, datapackage.json says {want:?}",
                                sha.labelled()
                            ),
                        );
                    } else if r["bytes"].as_u64().is_some_and(|b| b != *size) {
                        self.problem(
                            None,
                            p.clone(),
                            format!("{size} bytes, datapackage.json says {}", r["bytes"]),
                        );
                    } else {
                        matched += 1;
                    }
                }
            }
            listed.push(p);
        }
        self.verified.push(format!(
            "datapackage.json: {matched} of {} listed members match their hash and size",
            listed.len()
        ));
        for name in digests.keys() {
            if name != "datapackage.json"
                && name != "datapackage-digest.json"
                && !listed.contains(name)
            {
                self.problem(
                    None,
                    name.clone(),
                    "in the package but not listed in datapackage.json",
                );
            }
        }
        let Some(digest) = small
            .get("datapackage-digest.json")
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        else {
            self.verified
                .push("not signed: the package has no datapackage-digest.json".into());
            return;
        };
        let hash = Sha256::of(bytes).labelled();
        if digest["hash"].as_str() != Some(hash.as_str()) {
            self.problem(
                None,
                "datapackage-digest.json".into(),
                format!("its hash is not datapackage.json's ({hash})"),
            );
            return;
        }
        let signed = &digest["signedData"];
        if signed.is_null() {
            self.verified.push(format!(
                "datapackage-digest.json names datapackage.json's hash ({hash}); not signed"
            ));
            return;
        }
        if signed["hash"].as_str() != Some(hash.as_str()) {
            self.problem(
                None,
                "datapackage-digest.json".into(),
                "signedData.hash is not datapackage.json's hash",
            );
            return;
        }
        let signature = signed["signature"].as_str().unwrap_or_default();
        if let Some(key) = signed["publicKey"].as_str() {
            match crate::wacz::sign::verify(&hash, signature, key) {
                Ok(()) => {
                    self.verified.push(format!(
                        "signature valid (WACZ anonymous form), by public key {key}"
                    ));
                    self.signer = Some(key.to_string());
                }
                Err(e) => self.problem(
                    None,
                    "datapackage-digest.json".into(),
                    format!("the signature does not hold: {e}"),
                ),
            }
        } else if let (Some(domain), Some(cert)) =
            (signed["domain"].as_str(), signed["domainCert"].as_str())
        {
            match domain_key(cert).and_then(|key| {
                crate::wacz::sign::verify(&hash, signature, &key).map_err(|e| e.to_string())?;
                Ok(key)
            }) {
                Ok(key) => {
                    self.verified.push(format!("signature valid (WACZ domain form) by the key of the certificate for {domain}, public key {key}; the certificate's chain to a trusted root is not checked here"));
                    self.signer = Some(format!("{domain} ({key})"));
                }
                Err(e) => self.problem(
                    None,
                    "datapackage-digest.json".into(),
                    format!("the domain signature for {domain} does not hold: {e}"),
                ),
            }
        } else {
            self.problem(
                None,
                "datapackage-digest.json".into(),
                "signedData names neither a publicKey nor a domain and domainCert",
            );
        }
    }
}

/// What copying one record gave.
pub struct ForeignOut {
    record: ScannedRecord,
    terminated: bool,
    source_offset: u64,
}

/// Hashes (and keeps, when asked) what is read through it.
struct TeeRead<'a, R> {
    inner: R,
    sha: &'a mut sha2::Sha256,
    keep: Option<&'a mut Vec<u8>>,
}

impl<R: Read> Read for TeeRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        if let Some(k) = self.keep.as_mut() {
            k.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

/// The public key (base64 SPKI) of the first certificate of a PEM chain,
/// read with `openssl x509` (the command custody's timestamp checks use).
fn domain_key(cert_pem: &str) -> Result<String, String> {
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-pubkey", "-noout"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("openssl cannot be run ({e})"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(cert_pem.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("domainCert is not a PEM certificate".into());
    }
    let pem = String::from_utf8_lossy(&out.stdout);
    Ok(pem.lines().filter(|l| !l.starts_with("-----")).collect())
}

/// How a record is deflated in the access copy, as custody's captures
/// are (DESIGN.md, Compression): by its payload's type and first bytes,
/// read from the start of its block.
fn deflate_of(head: &crate::warc::RecordHead, block_start: &[u8]) -> Deflate {
    let is_http = head
        .get("Content-Type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/http"));
    if !is_http {
        let mime = head.get("Content-Type").map(|t| t.to_ascii_lowercase());
        return records::deflate_for(mime.as_deref(), false, block_start);
    }
    // The start of an HTTP response, read by the scanner capture and
    // verification use.
    let mut scanner = crate::warc::ResponseScanner::new(block_start.len(), 1000, false);
    if scanner.feed(block_start, &mut |_| {}).is_err() {
        return Deflate::Compress;
    }
    let scan = scanner.finish();
    match &scan.head {
        Some(h) => records::deflate_for(
            h.mime().as_deref(),
            h.content_encoding().is_some(),
            &block_start[(scan.head_len as usize).min(block_start.len())..],
        ),
        None => Deflate::Compress,
    }
}

/// An error in one line, without the offset wrapper (the place is said
/// separately).
fn plain(e: &WarcError) -> String {
    match e {
        WarcError::AtOffset { source, .. } => plain(source),
        WarcError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::InvalidData
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            format!("damaged or truncated gzip data: {io}")
        }
        e => e.to_string(),
    }
}

/// Re-reads the stored original (no copy) for its content digest.
pub fn content_of(path: &Path, kind: Kind) -> Result<Sha256, String> {
    let s = scan(path, kind, usize::MAX, &mut NoCopy)?;
    Ok(s.content_sha256.expect("set by scan"))
}

/// The SHA-256 of the decompressed bytes of `path` from `from` to `to`
/// (the imported records of an access copy, between custody's own
/// records): what the content digest of an import is computed over.
pub fn access_content(path: &Path, from: u64, to: u64) -> io::Result<Sha256> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::new(f.take(to - from)));
    let mut sha = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = gz.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(Sha256::from_hasher(sha))
}
