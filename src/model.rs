//! Plain data shared by every module: identifiers, digests, captures, records.
//!
//! Nothing here does I/O. Types are serialisable because they travel into the
//! capture manifest (inside the WARC) and out through `--json`; their field
//! names are part of the CLI contract in DESIGN.md, so rename with care.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

/// A SHA-256 digest. Displays as lowercase hex; parses from hex or
/// `sha256:<hex>` (the WARC labelled form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    pub fn of(data: &[u8]) -> Self {
        Sha256(sha2::Sha256::digest(data).into())
    }

    pub fn from_hasher(hasher: sha2::Sha256) -> Self {
        Sha256(hasher.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The labelled form used in `WARC-Block-Digest` and `WARC-Payload-Digest`.
    pub fn labelled(&self) -> String {
        format!("sha256:{}", self.hex())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a sha256 digest (want 64 hex digits, optionally prefixed by `sha256:`): {0:?}")]
pub struct ParseDigestError(String);

impl FromStr for Sha256 {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        let mut out = [0u8; 32];
        if hex_part.len() != 64
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ParseDigestError(s.to_string()));
        }
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| ParseDigestError(s.to_string()))?;
        Ok(Sha256(out))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A capture's identifier: a UUIDv7, so identifiers sort by creation time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaptureId(String);

impl CaptureId {
    pub fn new() -> Self {
        CaptureId(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for CaptureId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for CaptureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a capture id (want a UUID such as 0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b): {0:?}")]
pub struct ParseCaptureIdError(String);

impl FromStr for CaptureId {
    type Err = ParseCaptureIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s.trim())
            .map(|u| CaptureId(u.hyphenated().to_string()))
            .map_err(|_| ParseCaptureIdError(s.to_string()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureStatus {
    Ok,
    Failed,
}

impl CaptureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureStatus::Ok => "ok",
            CaptureStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(CaptureStatus::Ok),
            "failed" => Some(CaptureStatus::Failed),
            _ => None,
        }
    }
}

/// The WARC file holding a capture, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarcRef {
    pub key: String,
    pub sha256: Sha256,
    pub bytes: u64,
}

/// One fetched URL of a capture (the seed, a redirect hop or a requisite).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub url: String,
    /// HTTP status, absent when no response arrived.
    pub status: Option<u16>,
    pub mime: Option<String>,
    pub payload_sha256: Option<Sha256>,
    /// Payload bytes (transfer-encoding removed, content-encoding kept).
    pub bytes: u64,
    /// `length`, `time` or `disconnect` when the body was cut short.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub truncated: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// A capture as the index knows it. Serialises to the `--json` shape that
/// DESIGN.md fixes for `capture`, `captures` and `show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capture {
    pub id: CaptureId,
    pub seed_url: String,
    pub status: CaptureStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    #[serde(with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub finished_at: DateTime<Utc>,
    pub warc: Option<WarcRef>,
    /// Number of WARC records in the capture's file.
    pub records: u64,
    pub resources: Vec<Resource>,
    /// The schedule that made this capture, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default, with = "opt_rfc3339")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// How the page compares with the previous capture of the same seed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub change: Option<PageChange>,
    /// Set when the capture was not made by custody but imported from a
    /// WARC or WACZ file another tool wrote: where it came from and what
    /// checking it found.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub import: Option<ImportInfo>,
    /// Set when the capture ran the media step (`--media`): what yt-dlp
    /// produced from the page, or why it produced nothing.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media: Option<MediaInfo>,
    /// Set when the capture was made in browser mode: the browser, what it
    /// did with the page and the pictures and text it kept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub browser: Option<BrowserInfo>,
}

impl Capture {
    /// How custody read the page, as `--json`, the API and the manifest
    /// say it: `browser` or `http` (`None` for an import).
    pub fn mode(&self) -> Option<&'static str> {
        match (&self.import, &self.browser) {
            (Some(_), _) => None,
            (None, Some(_)) => Some("browser"),
            (None, None) => Some("http"),
        }
    }
}

/// Browser mode: the page as Chromium rendered it, every request it made
/// one of the capture's exchanges (through custody's recording proxy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserInfo {
    /// `ok`, `timed out` (the budget ended it; what arrived is kept),
    /// `failed` or `unavailable` (no Chromium: the page was read in http
    /// mode only).
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
    /// `Browser.getVersion`'s product, e.g. `Chrome/131.0.6778.85`.
    pub version: Option<String>,
    pub user_agent: Option<String>,
    /// `WIDTHxHEIGHT` of the window, CSS pixels.
    pub window: String,
    /// Where the page ended up (after redirects and script navigation).
    pub final_url: Option<String>,
    /// What ran, one line each (`load`, `network idle`, `scrolled ...`).
    pub behaviours: Vec<String>,
    /// The screenshot, thumbnail, PDF, rendered DOM and text kept.
    pub records: Vec<BrowserRecord>,
}

/// One thing the browser made of the page, in a `resource` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserRecord {
    /// `screenshot`, `thumbnail`, `pdf`, `view` (the DOM) or `text`.
    pub kind: String,
    pub record_id: String,
    /// `urn:<kind>:<page URL>`.
    pub target_uri: String,
    pub mime: String,
    pub bytes: u64,
    pub sha256: Sha256,
}

/// The media step of a capture: yt-dlp run on the page through custody's
/// recording proxy (every request it made is one of the capture's
/// exchanges), and the files it produced, each a `resource` record of the
/// capture's WARC. A step that produced nothing says why; the page's
/// capture stands either way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// `yt-dlp`.
    pub tool: String,
    /// What `yt-dlp --version` printed; absent when it could not be run.
    pub version: Option<String>,
    /// `ok` (files produced), `none` (no media found), `failed` (an error,
    /// a limit or the time budget ended it) or `unavailable` (no yt-dlp).
    pub status: String,
    /// Why the step produced nothing or less than it was asked for (one
    /// line).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub problem: Option<String>,
    /// The format asked for (`capture.media_format`).
    pub format: String,
    pub files: Vec<MediaFile>,
}

/// One file yt-dlp produced, as stored in the capture's WARC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFile {
    /// The `resource` record holding the file's bytes.
    pub record_id: String,
    /// Its `WARC-Target-URI`: `urn:media:<format>:<page URL>`.
    pub target_uri: String,
    pub mime: String,
    pub bytes: u64,
    pub sha256: Sha256,
    /// yt-dlp's format id (`hls-1`, `dash-v1`, `137+140`).
    pub format_id: String,
    /// The `metadata` record holding yt-dlp's info JSON for the file.
    pub info_record_id: Option<String>,
    /// From the info JSON.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uploader: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upload_date: Option<String>,
    /// Milliseconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub extractor: Option<String>,
}

/// An imported file: the file as received (stored under its own digest,
/// never rewritten), who brought it in, when, from where, and what was
/// found when its records and package were checked on the way in. The
/// capture's WARC is custody's access copy: the same record bytes, one
/// gzip member each, between custody's own `warcinfo` and manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportInfo {
    /// The file as received.
    pub file: WarcRef,
    /// Its name as given (the last path segment).
    pub name: String,
    /// `warc`, `warc.gz` or `wacz`.
    pub format: String,
    /// What the importer said of its origin (`--source`).
    pub source: Option<String>,
    /// Who imported it (`token:<id>`, or the local user).
    pub imported_by: Option<String>,
    /// When its last byte arrived.
    #[serde(with = "rfc3339")]
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the imported records' bytes, uncompressed and in order:
    /// the same whether read from the file or from the access copy.
    pub content_sha256: Sha256,
    /// `software` and `operator` of the file's own `warcinfo` records.
    pub software: Vec<String>,
    pub operator: Vec<String>,
    /// The WACZ signer's public key (base64 SPKI) or domain, when signed.
    pub signer: Option<String>,
    /// What was checked and held (one line each).
    pub verified: Vec<String>,
    /// What was checked and did not hold, or could not be checked.
    pub problems: Vec<ImportProblem>,
    /// Each revisit record resolved on the way in, with the payload digest
    /// (SHA-256) of the original it refers to.
    pub revisits: Vec<ResolvedRevisit>,
}

/// One problem found in an imported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProblem {
    /// The record's `WARC-Record-ID`, when the problem is one record's.
    pub record: Option<String>,
    /// Where in the file: the WARC (for a WACZ, its member) and the offset
    /// in its uncompressed bytes.
    pub at: Option<String>,
    pub problem: String,
}

/// A revisit record of an import and the original it resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedRevisit {
    pub record: String,
    pub original: String,
    pub payload_sha256: Sha256,
}

/// Whether a capture's page (the seed's final response) differs, byte for
/// byte in its payload, from the previous capture of the same seed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageChange {
    pub previous_capture: CaptureId,
    pub changed: bool,
}

/// One WARC record in the index: the CDXJ fields plus where the record lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    pub record_id: String,
    pub warc_type: String,
    pub target_uri: Option<String>,
    /// SURT form of the target URI (CDXJ sort key).
    pub surt: Option<String>,
    /// `WARC-Date` of the record.
    #[serde(with = "rfc3339")]
    pub date: DateTime<Utc>,
    /// 14-digit `YYYYMMDDhhmmss` capture time.
    pub timestamp: String,
    pub mime: Option<String>,
    pub status: Option<u16>,
    pub payload_digest: Option<Sha256>,
    pub block_digest: Sha256,
    /// Offset and length of the record's gzip member in the WARC file.
    pub offset: u64,
    pub length: u64,
}

/// Replaces the password in `scheme://user:password@host` with `***`, so a
/// store or index URL can be logged and shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user = authority[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// Formats an instant as RFC 3339 UTC with second precision, e.g.
/// `2016-11-29T10:04:00Z`.
pub fn rfc3339_utc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The 14-digit timestamp used by CDXJ, Wayback URLs and `--at`.
pub fn timestamp14(t: &DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

pub mod opt_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339_utc(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339_utc(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_parses_both_forms_and_rejects_uppercase_and_short() {
        let d = Sha256::of(b"nearly 25 civilians were killed");
        assert_eq!(d.hex().parse::<Sha256>().unwrap(), d);
        assert_eq!(d.labelled().parse::<Sha256>().unwrap(), d);
        assert!(d.hex().to_uppercase().parse::<Sha256>().is_err());
        assert!("sha256:abcd".parse::<Sha256>().is_err());
        assert!("sha1:FNXWBUS7VMY4GF4WOZKRYFDT4FUWIZD4"
            .parse::<Sha256>()
            .is_err());
    }

    #[test]
    fn capture_ids_sort_by_creation() {
        let a = CaptureId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = CaptureId::new();
        assert!(a < b);
        assert_eq!(a.as_str().parse::<CaptureId>().unwrap(), a);
        assert!("../../etc/passwd".parse::<CaptureId>().is_err());
    }
}

/// The SURT form of a URL used as the CDXJ sort key, as pywb writes it:
/// `http://www.Example.org:8080/News?b=2&a=1` becomes
/// `org,example:8080)/news?a=1&b=2`.
pub fn surt(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let reversed = if url
        .host()
        .is_some_and(|h| !matches!(h, url::Host::Domain(_)))
    {
        host.to_string()
    } else {
        host.split('.').rev().collect::<Vec<_>>().join(",")
    };
    let mut out = reversed;
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push(')');
    out.push_str(url.path());
    push_sorted_query(&mut out, url);
    out.to_ascii_lowercase()
}

/// `?` and the query's arguments in sorted order, as SURT keys write it.
fn push_sorted_query(out: &mut String, url: &url::Url) {
    if let Some(q) = url.query() {
        let mut args: Vec<&str> = q.split('&').collect();
        args.sort_unstable();
        out.push('?');
        out.push_str(&args.join("&"));
    }
}

/// The SURT key pywb (and the Python `surt` package it uses) writes in CDX
/// lines: like [`surt`], but with IPv4 addresses reversed too, a default
/// port dropped, and a trailing slash dropped from paths other than `/`.
/// `/cdx` and WACZ indexes present this form; the index sorts on [`surt`].
pub fn pywb_urlkey(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let host = match url.host() {
        Some(url::Host::Domain(_)) => {
            let trimmed = host
                .strip_prefix("www")
                .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
                .and_then(|r| r.strip_prefix('.'))
                .unwrap_or(&host);
            trimmed.split('.').rev().collect::<Vec<_>>().join(",")
        }
        Some(url::Host::Ipv4(_)) => host.split('.').rev().collect::<Vec<_>>().join(","),
        _ => host.clone(),
    };
    let mut out = host;
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push(')');
    let path = url.path();
    out.push_str(if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    });
    push_sorted_query(&mut out, url);
    out.to_ascii_lowercase()
}

#[cfg(test)]
mod surt_tests {
    #[test]
    fn pywb_urlkeys_reverse_addresses_and_drop_trailing_slashes() {
        let u = url::Url::parse("http://127.0.0.1:39727/2016/11/aleppo/").unwrap();
        assert_eq!(super::pywb_urlkey(&u), "1,0,0,127:39727)/2016/11/aleppo");
        let u = url::Url::parse("https://www2.Example.org/").unwrap();
        assert_eq!(super::pywb_urlkey(&u), "org,example)/");
        let u = url::Url::parse("http://example.org:80/News?b=2&a=1").unwrap();
        assert_eq!(super::pywb_urlkey(&u), "org,example)/news?a=1&b=2");
    }

    #[test]
    fn surt_matches_pywb_form() {
        let u = url::Url::parse("http://www.Example.org:8080/News/Item?b=2&a=1#frag").unwrap();
        assert_eq!(super::surt(&u), "org,example:8080)/news/item?a=1&b=2");
        let u = url::Url::parse("https://127.0.0.1/a").unwrap();
        assert_eq!(super::surt(&u), "127.0.0.1)/a");
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Recorded, waiting for `not_before` and a free worker.
    Due,
    /// Claimed by a worker holding a lease.
    Running,
    /// Captured (the capture may still hold HTTP errors: they are evidence).
    Done,
    /// Every attempt failed.
    Failed,
    /// Not run: the previous run of the same URL was still going.
    Skipped,
    /// Stopped by a shutdown; taken up again when the daemon starts.
    Interrupted,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Due,
        RunState::Running,
        RunState::Done,
        RunState::Failed,
        RunState::Skipped,
        RunState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Due => "due",
            RunState::Running => "running",
            RunState::Done => "done",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
            RunState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One scheduled capture of one URL at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: i64,
    pub schedule: String,
    pub url: String,
    #[serde(with = "rfc3339")]
    pub scheduled_for: DateTime<Utc>,
    pub state: RunState,
    /// Not started before this instant (jitter, retry backoff).
    #[serde(with = "rfc3339")]
    pub not_before: DateTime<Utc>,
    pub attempts: u32,
    /// True for a run made up for instants missed while the daemon was down.
    pub catch_up: bool,
    pub lease_owner: Option<String>,
    pub capture_id: Option<CaptureId>,
    pub error: Option<String>,
}

/// A run about to be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    pub scheduled_for: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub catch_up: bool,
    /// `Due`, or `Skipped` when the previous run is still going.
    pub state: RunState,
    pub error: Option<String>,
}

/// How a run attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunFinish {
    Done {
        capture_id: CaptureId,
    },
    /// A transient failure: run again at `at`.
    Retry {
        capture_id: Option<CaptureId>,
        error: String,
        at: DateTime<Utc>,
    },
    Failed {
        capture_id: Option<CaptureId>,
        error: String,
    },
    Interrupted {
        error: String,
    },
}

/// Counts for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub captures_ok: u64,
    pub captures_failed: u64,
    pub stored_bytes: u64,
    pub runs: Vec<(RunState, u64)>,
    /// Due runs whose `not_before` has passed.
    pub queue_depth: u64,
    /// The oldest such run's scheduled instant.
    pub oldest_waiting: Option<DateTime<Utc>>,
    /// Timestamp requests waiting for their TSA.
    pub timestamp_backlog: u64,
    /// Stored objects whose last fixity check failed.
    pub quarantined: u64,
}

/// A statement someone wants to establish or test. Append-only: an edit is a
/// new version with the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub version: u32,
    pub text: String,
    /// ISO 8601 date (or date-time) the event began, and ended when a range.
    pub event_start: Option<String>,
    pub event_end: Option<String>,
    pub place: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub tags: Vec<String>,
    pub language: Option<String>,
    pub author: Option<String>,
    /// Where the claim came from when not typed in: `schedule:<name>`.
    pub origin: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// How a piece of evidence bears on a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Supports,
    Refutes,
    Context,
    FirstAppearance,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Supports => "supports",
            Relation::Refutes => "refutes",
            Relation::Context => "context",
            Relation::FirstAppearance => "first_appearance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Relation::Supports,
            Relation::Refutes,
            Relation::Context,
            Relation::FirstAppearance,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A W3C Web Annotation selector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Selector {
    TextQuoteSelector {
        exact: String,
        prefix: String,
        suffix: String,
    },
    /// Code-point offsets in the document's readable text.
    TextPositionSelector { start: u64, end: u64 },
    /// A media fragment: `t=10,20` (audio, video) or `xywh=...` (images).
    FragmentSelector {
        value: String,
        #[serde(rename = "conformsTo")]
        conforms_to: String,
    },
}

/// A claim linked to one record of one capture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLink {
    pub id: String,
    pub claim_id: String,
    pub claim_version: u32,
    pub capture_id: CaptureId,
    pub record_id: String,
    pub target_uri: String,
    /// The payload digest of the record the selector was resolved against.
    pub payload_digest: Sha256,
    pub relation: Relation,
    pub selectors: Vec<Selector>,
    /// The quote as the user gave it (the selector holds the archived text).
    pub quote_given: Option<String>,
    pub rationale: Option<String>,
    pub author: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// Whether a link's passage was found in a later capture of its URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassageCheck {
    pub link_id: String,
    pub capture_id: CaptureId,
    #[serde(with = "rfc3339")]
    pub captured_at: DateTime<Utc>,
    pub present: bool,
}

/// An entry of an object's append-only custody record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustodyEvent {
    pub object_kind: String,
    pub object_id: String,
    /// captured, linked, rechecked, passage_absent, passage_restored,
    /// exported, accessed, verified, claim_added, claim_edited.
    pub event: String,
    pub actor: Option<String>,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// ok, failed, present, absent...
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// The custody event a capture's row is written with, in the same
/// transaction (`captured`, or `imported` for an import: who brought the
/// file in, when it arrived, and its digest and stated source).
pub fn first_event(c: &Capture) -> CustodyEvent {
    let warc = c.warc.as_ref().map(|w| w.sha256.hex());
    if let Some(i) = &c.import {
        return CustodyEvent {
            object_kind: "capture".into(),
            object_id: c.id.to_string(),
            event: "imported".into(),
            actor: Some(i.imported_by.clone().unwrap_or_else(|| "custody".into())),
            at: i.received_at,
            outcome: c.status.as_str().into(),
            detail: serde_json::json!({
                "file": i.name,
                "file_sha256": i.file.sha256.hex(),
                "source": i.source,
                "warc_sha256": warc,
                "problems": i.problems.len(),
            }),
        };
    }
    CustodyEvent {
        object_kind: "capture".into(),
        object_id: c.id.to_string(),
        event: "captured".into(),
        actor: Some(
            c.schedule
                .as_ref()
                .map(|s| format!("schedule:{s}"))
                .unwrap_or_else(|| "custody".into()),
        ),
        at: c.finished_at,
        outcome: c.status.as_str().into(),
        detail: serde_json::json!({
            "seed_url": c.seed_url,
            "warc_sha256": warc,
            "error": c.error,
            "schedule": c.schedule,
        }),
    }
}

/// An object being uploaded for a capture that is not indexed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingObject {
    pub key: String,
    pub capture_id: CaptureId,
    pub seed_url: String,
    pub schedule: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The SURT of a WARC target, for http and https targets only (a
/// `urn:custody:...` target has none).
pub fn surt_of_target(target: Option<&str>) -> Option<String> {
    let url = url::Url::parse(target?).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| surt(&url))
}

/// One check of a stored object's digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixityEvent {
    pub object_key: String,
    /// `primary`, or `replica N` (N from 1, in `replica_urls` order).
    #[serde(default = "primary")]
    pub location: String,
    pub algorithm: String,
    pub expected: Sha256,
    pub observed: Option<Sha256>,
    /// `ok`, `corrupt`, `missing`, `repaired` (rewritten from a good copy),
    /// or `error` (the store could not be read; nothing is concluded).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// A stored WARC file as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarcFile {
    pub sha256: Sha256,
    pub key: String,
    pub bytes: u64,
    /// Why the object is quarantined (its last check failed), if it is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quarantined: Option<String>,
}

/// A timestamp to obtain from one TSA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampRequest {
    pub id: i64,
    /// `checkpoint` (id: the tree size) or `capture` (id: the capture id).
    pub subject_kind: String,
    pub subject_id: String,
    /// The SHA-256 that is timestamped.
    pub imprint: Sha256,
    pub tsa_url: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
}

/// A checked RFC 3161 response, kept as received (DER).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimestampToken {
    pub subject_kind: String,
    pub subject_id: String,
    pub imprint: Sha256,
    pub tsa_url: String,
    /// The whole `TimeStampResp`, base64.
    pub token_der: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gen_time: Option<String>,
    #[serde(with = "rfc3339")]
    pub received_at: DateTime<Utc>,
}

fn primary() -> String {
    "primary".into()
}

/// What an API token may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Investigators: read, replay, export, verify.
    Reader,
    /// Also capture, schedule and link claims.
    Archivist,
    /// Also manage tokens and settings.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Archivist => "archivist",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reader" => Some(Role::Reader),
            "archivist" => Some(Role::Archivist),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API token as the index keeps it: only the SHA-256 of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public identifier (also the token's visible prefix).
    pub id: String,
    #[serde(skip)]
    pub secret_sha256: Option<Sha256>,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<String>,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none", default, with = "opt_rfc3339")]
    pub revoked_at: Option<DateTime<Utc>>,
}
