//! `verify FILE`: an exported WARC checked offline, with nothing but the
//! file.

use std::io::BufReader;
use std::path::Path;

use serde::Serialize;

use super::Check;
use crate::tlog;
use crate::warc::{ScannedRecord, WarcFileReader};

/// Why a package could not be checked at all (as opposed to a check that
/// failed, which [`PackageVerification`] reports).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the scratch files to check {path}: {source}")]
    Scratch {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What `verify PACKAGE` found.
#[derive(Clone, Debug, Serialize)]
pub struct PackageVerification {
    pub package: String,
    pub capture_id: Option<String>,
    pub ok: bool,
    pub checks: Vec<Check>,
    /// What a verdict of `ok` rests on that the file itself supplied: a key
    /// that was not pinned, a time no TSA vouches for.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub caveats: Vec<String>,
}

/// The caveat of a proof checked with the log key the file carries.
pub const UNPINNED_LOG_KEY: &str =
    "against the key inside the file: pin the published key with --key";
/// The caveat of a proof without any RFC 3161 token.
pub const NO_TIMESTAMP: &str =
    "no RFC 3161 timestamp: the time rests on custody's own signature alone";

/// Records a verification reads at most; a custody export of a capture
/// with its originals holds a few thousand.
const MAX_RECORDS: u64 = 10_000_000;
/// Inflated bytes per compressed byte (beyond the first GiB) a verification
/// decodes at most: media is stored at deflate level 0, text compresses
/// perhaps tenfold; a gzip bomb does not get to run for days.
const MAX_INFLATION: u64 = 64;
/// Failures listed one by one; the rest are counted.
const MAX_LISTED_FAILURES: usize = 200;
/// The proof record's block is read into memory, up to this.
const MAX_PROOF_BYTES: u64 = 64 << 20;

/// Checks, with the failures beyond [`MAX_LISTED_FAILURES`] counted rather
/// than kept (a file of a million bad records costs no more than a few).
#[derive(Default)]
struct Checks {
    list: Vec<Check>,
    failures: usize,
}

impl Checks {
    fn push(&mut self, c: Check) {
        if !c.ok {
            self.failures += 1;
            if self.failures > MAX_LISTED_FAILURES {
                return;
            }
        }
        self.list.push(c);
    }

    fn ok(&mut self, item: impl Into<String>, detail: Option<String>) {
        self.push(Check::ok(item, detail));
    }

    fn failed(&mut self, item: impl Into<String>, detail: impl Into<String>) {
        self.push(Check::failed(item, detail));
    }

    fn done(mut self, path: &Path, capture_id: Option<String>) -> PackageVerification {
        if self.failures > MAX_LISTED_FAILURES {
            let more = self.failures - MAX_LISTED_FAILURES;
            self.list.push(Check::failed(
                "further failures",
                format!("{more} more, not listed"),
            ));
        }
        PackageVerification {
            package: path.display().to_string(),
            capture_id,
            ok: self.failures == 0 && !self.list.is_empty(),
            checks: self.list,
            caveats: Vec::new(),
        }
    }
}

/// `record <id> (<type> <target>)`, as every check names a record.
fn record_item(rec: &ScannedRecord) -> String {
    format!(
        "record {} ({} {})",
        rec.head.record_id(),
        rec.head.warc_type(),
        rec.head.get("WARC-Target-URI").unwrap_or("-")
    )
}

fn is_proof(rec: &ScannedRecord) -> bool {
    rec.head.warc_type() == "metadata"
        && rec
            .head
            .get("WARC-Target-URI")
            .is_some_and(|t| t.starts_with("urn:custody:proof:"))
}

/// The file opened for one pass, and its errors as [`PackageError`]s.
struct Package<'a> {
    path: &'a Path,
}

impl Package<'_> {
    fn open(&self) -> Result<std::fs::File, PackageError> {
        std::fs::File::open(self.path).map_err(|source| PackageError::Open {
            path: self.path.to_path_buf(),
            source,
        })
    }

    fn read_err(&self, source: std::io::Error) -> PackageError {
        PackageError::Read {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// The records, one pass. HTTP bytes that cannot be parsed come back
    /// as the record's `http_error` (an import's records may hold them,
    /// recorded on arrival); every other record is failed for it.
    fn records(&self) -> Result<WarcFileReader<BufReader<std::fs::File>>, PackageError> {
        Ok(WarcFileReader::new(BufReader::with_capacity(256 * 1024, self.open()?)).lenient_http())
    }
}

/// What the first pass found: how many records, and where the proof is.
struct Scan {
    records: u64,
    proof_offset: Option<u64>,
    /// Where the last proof-like record before the proof ends (0: none).
    earlier_proofs_end: u64,
}

/// Verifies an exported WARC offline, with nothing but the file, and
/// accepts only what it can account for:
/// - every record's block and payload digests;
/// - the stored WARC (the file's first `warc_bytes` bytes) against the
///   digest the log holds, its records exactly those the logged manifest
///   names, at their offsets, ending on a record boundary;
/// - after it, exactly the original record of every revisit (each once,
///   with the revisit's payload digest, `WARC-Refers-To-Target-URI` and
///   `WARC-Refers-To-Date`) and one proof record, last; any other record
///   fails, named;
/// - the inclusion proof and its signed checkpoint, against `pinned_key`
///   when given (else the key the package carries);
/// - the timestamp tokens against `tsa_roots`.
///
/// Memory stays bounded whatever the file holds: records and inflated bytes
/// are capped, and per-record state is kept only for revisits.
pub fn verify_package(
    path: &Path,
    pinned_key: Option<&str>,
    tsa_roots: &[std::path::PathBuf],
) -> Result<PackageVerification, PackageError> {
    let file = Package { path };
    let size = file.open()?.metadata().map_err(|e| file.read_err(e))?.len();
    let mut checks = Checks::default();
    let Some(scan) = scan(&file, size, &mut checks)? else {
        return Ok(checks.done(path, None));
    };
    let Some(proof_offset) = scan.proof_offset else {
        checks.failed(
            "custody proof",
            "no custody proof record at the end of the file (packages come from `custody export`)",
        );
        return Ok(checks.done(path, None));
    };
    let Some(proof) = read_proof(&file, proof_offset, &mut checks)? else {
        return Ok(checks.done(path, None));
    };
    let capture_id = proof["capture_id"].as_str().unwrap_or_default().to_string();
    let warc_sha = proof["warc_sha256"].as_str().unwrap_or_default();
    let warc_bytes = proof["warc_bytes"].as_u64().unwrap_or(0);
    if scan.earlier_proofs_end > warc_bytes {
        checks.failed(
            "custody proof",
            "more than one proof record outside the logged WARC; an export has exactly one, last",
        );
        return Ok(checks.done(path, None));
    }
    stored_warc(&file, warc_sha, warc_bytes, &mut checks)?;
    let inclusion: Option<tlog::InclusionProof> =
        serde_json::from_value(proof["inclusion"].clone()).ok();
    let Some(inclusion) = inclusion else {
        checks.failed("inclusion proof", "missing or malformed");
        return Ok(checks.done(path, Some(capture_id)));
    };
    let leaf: serde_json::Value = serde_json::from_str(&inclusion.leaf_data).unwrap_or_default();
    if leaf["capture_id"] != capture_id.as_str() || leaf["warc_sha256"] != warc_sha {
        checks.failed("logged manifest", "it names another capture or WARC");
    }
    account_for_records(
        &file,
        &leaf,
        warc_bytes,
        proof_offset,
        scan.records,
        &mut checks,
    )?;
    let tokens = proof_and_timestamps(&inclusion, &proof, pinned_key, tsa_roots, &mut checks);
    let mut v = checks.done(path, Some(capture_id));
    if pinned_key.is_none() {
        v.caveats.push(UNPINNED_LOG_KEY.into());
    }
    if tokens == 0 {
        v.caveats.push(NO_TIMESTAMP.into());
    }
    Ok(v)
}

/// The first pass: every record read (its gzip member, head and block),
/// within the caps; the proof must be the only one and the last record.
/// `None` when the file cannot be read through.
fn scan(file: &Package, size: u64, checks: &mut Checks) -> Result<Option<Scan>, PackageError> {
    let mut reader = file.records()?;
    let inflation_cap = (1 << 30) + size.saturating_mul(MAX_INFLATION);
    let (mut records, mut inflated) = (0u64, 0u64);
    // How many proof records, and where the last began (an attacker may
    // make every record one: nothing per record is kept).
    let (mut proofs, mut proof_at, mut proof_end, mut earlier_end) = (0u64, 0u64, 0u64, 0u64);
    let mut last: Option<(u64, String)> = None;
    loop {
        let rec = match reader.next_record(&mut |_| {}) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(crate::warc::WarcError::Io(e)) => return Err(file.read_err(e)),
            Err(e) => {
                let after = last.map(|(_, id)| id).unwrap_or_else(|| "the start".into());
                checks.failed(format!("record after {after}"), format!("unreadable: {e}"));
                return Ok(None);
            }
        };
        records += 1;
        inflated = inflated.saturating_add(rec.block_len);
        if records > MAX_RECORDS || inflated > inflation_cap {
            checks.failed(
                "records",
                format!(
                    "more than {MAX_RECORDS} records or {inflation_cap} inflated bytes: not a custody export; nothing further is read"
                ),
            );
            return Ok(None);
        }
        if is_proof(&rec) {
            if proofs > 0 {
                earlier_end = earlier_end.max(proof_end);
            }
            proofs += 1;
            proof_at = rec.offset;
            proof_end = rec.offset + rec.length;
        }
        last = Some((rec.offset, record_item(&rec)));
    }
    // The proof is the last record; proof-like records before it are
    // allowed only inside the logged WARC (an imported custody export
    // holds the proof it was exported with, as one of its logged
    // records), which is checked once the proof says where that ends.
    let proof_offset = match (proofs, &last) {
        (0, _) => None,
        (_, Some((last_offset, _))) if proof_at == *last_offset => Some(proof_at),
        (_, Some((_, item))) => {
            checks.failed(
                "custody proof",
                format!("the proof record is not the last record: {item} follows it"),
            );
            return Ok(None);
        }
        (_, None) => None,
    };
    Ok(Some(Scan {
        records,
        proof_offset,
        earlier_proofs_end: earlier_end,
    }))
}

/// The proof record's JSON, read at its offset.
fn read_proof(
    file: &Package,
    offset: u64,
    checks: &mut Checks,
) -> Result<Option<serde_json::Value>, PackageError> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.open()?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| file.read_err(e))?;
    let mut reader = WarcFileReader::starting_at(BufReader::new(f), offset);
    let mut block = Vec::new();
    let mut too_large = false;
    let read = reader.next_record(&mut |piece| {
        if block.len() as u64 + piece.len() as u64 > MAX_PROOF_BYTES {
            too_large = true;
        } else {
            block.extend_from_slice(piece);
        }
    });
    let proof = match read {
        Ok(Some(_)) if !too_large => serde_json::from_slice::<serde_json::Value>(&block).ok(),
        Ok(_) => None,
        Err(crate::warc::WarcError::Io(e)) => return Err(file.read_err(e)),
        Err(_) => None,
    };
    if proof.is_none() {
        checks.failed("custody proof", "the proof record is not readable JSON");
    }
    Ok(proof)
}

/// The stored WARC is the file's beginning: its first `warc_bytes` bytes
/// hash to the digest the log holds.
fn stored_warc(
    file: &Package,
    warc_sha: &str,
    warc_bytes: u64,
    checks: &mut Checks,
) -> Result<(), PackageError> {
    use sha2::Digest;
    let item = format!("capture WARC (the first {warc_bytes} bytes)");
    let mut hasher = sha2::Sha256::new();
    let mut f = file.open()?;
    let copied = std::io::copy(
        &mut std::io::Read::take(&mut f, warc_bytes),
        &mut HashWrite(&mut hasher),
    )
    .map_err(|e| file.read_err(e))?;
    let actual = hex::encode(hasher.finalize());
    if copied == warc_bytes && actual == warc_sha {
        checks.ok(item, Some(format!("sha256 {actual}")));
    } else {
        checks.failed(item, format!("hashes to {actual}, the log says {warc_sha}"));
    }
    Ok(())
}

/// What a revisit says its original is.
struct Refers {
    revisit: String,
    payload: Option<String>,
    target: Option<String>,
    date: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// An import's revisit, resolved when the file arrived (the log holds
    /// its original): its `WARC-Refers-To-Date` is what the other tool
    /// wrote, not checked.
    date_optional: bool,
    found: bool,
}

/// The second pass: every record is accounted for. Before `warc_bytes`:
/// exactly the logged records, at their offsets. After: the originals the
/// revisits name, each once and matching, then the proof.
fn account_for_records(
    file: &Package,
    leaf: &serde_json::Value,
    warc_bytes: u64,
    proof_offset: u64,
    records: u64,
    checks: &mut Checks,
) -> Result<(), PackageError> {
    let logged = leaf["records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let failures_before = checks.failures;
    let mut next_logged = 0usize;
    let mut refers: std::collections::HashMap<String, Vec<Refers>> = Default::default();
    // An import's revisits were resolved when the file arrived (its own
    // revisits may name their original by URL and date only): the log
    // holds each one's original and payload.
    let resolved: std::collections::HashMap<&str, (&str, &str)> = leaf["import"]["revisits"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            Some((
                r["record"].as_str()?,
                (r["original"].as_str()?, r["payload_sha256"].as_str()?),
            ))
        })
        .collect();
    let known_damage: std::collections::HashSet<&str> = leaf["import"]["problems"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["record"].as_str())
        .collect();
    let mut reader = file.records()?;
    let mut boundary_seen = warc_bytes == proof_offset;
    let mut digests_ok = 0u64;
    while let Some(rec) = match reader.next_record(&mut |_| {}) {
        Ok(r) => r,
        Err(crate::warc::WarcError::Io(e)) => return Err(file.read_err(e)),
        Err(e) => {
            checks.failed(
                "records",
                format!("the file changed while it was read: {e}"),
            );
            return Ok(());
        }
    } {
        let item = record_item(&rec);
        let checked = match &rec.http_error {
            Some(e) => Err(e.clone()),
            None => rec.verify_digests().map_err(|e| e.to_string()),
        };
        match checked {
            Ok(()) => {
                digests_ok += 1;
                if let Some(note) = rec.chunked_note() {
                    checks.ok(&item, Some(note));
                }
            }
            // An imported record whose problem the log recorded when the
            // file arrived: its bytes are still checked against the leaf.
            Err(e) if rec.offset < warc_bytes && known_damage.contains(rec.head.record_id()) => {
                digests_ok += 1;
                checks.ok(
                    &item,
                    Some(format!(
                        "as imported: {e}, recorded in the logged import when the file arrived"
                    )),
                );
            }
            Err(e) => checks.failed(&item, e),
        }
        if rec.offset < warc_bytes {
            logged_record(&rec, &item, logged.get(next_logged), warc_bytes, checks);
            next_logged += 1;
            if rec.head.warc_type() == "revisit" {
                let logged = resolved.get(rec.head.record_id()).copied();
                note_revisit(&rec, &item, logged, &mut refers, checks);
            }
            continue;
        }
        if rec.offset == warc_bytes {
            boundary_seen = true;
        }
        if rec.offset == proof_offset {
            continue;
        }
        original_record(&rec, &item, &mut refers, checks);
    }
    if !boundary_seen {
        checks.failed(
            "capture WARC",
            format!("no record begins at byte {warc_bytes}, where the logged WARC ends"),
        );
    }
    for missing in logged.iter().skip(next_logged) {
        checks.failed(
            format!("record {}", missing["id"].as_str().unwrap_or("?")),
            "the log names it, but it is not in the file",
        );
    }
    if checks.failures == failures_before {
        checks.ok(
            "logged manifest",
            Some(format!("{next_logged} records, as logged")),
        );
    }
    if digests_ok == records {
        checks.ok(
            format!("{records} records"),
            Some("every block and payload digest matches".into()),
        );
    }
    let revisits: usize = refers.values().map(Vec::len).sum();
    let mut all_found = true;
    for r in refers.values().flatten().filter(|r| !r.found) {
        all_found = false;
        checks.failed(
            format!("revisit {}", r.revisit),
            "the record it refers to is not in the package",
        );
    }
    if all_found {
        checks.ok(format!("originals of {revisits} revisits"), None);
    }
    Ok(())
}

/// A record inside the logged WARC must be the one the log names at that
/// offset, and must end inside it.
fn logged_record(
    rec: &ScannedRecord,
    item: &str,
    logged: Option<&serde_json::Value>,
    warc_bytes: u64,
    checks: &mut Checks,
) {
    let as_logged = logged.is_some_and(|l| {
        l["offset"].as_u64() == Some(rec.offset)
            && l["id"] == rec.head.record_id()
            && l["block"] == rec.block_sha256.hex().as_str()
            && l["type"] == rec.head.warc_type()
    });
    if !as_logged {
        checks.failed(
            item,
            format!("not the record the log names at offset {}", rec.offset),
        );
    }
    if rec.offset + rec.length > warc_bytes {
        checks.failed(
            item,
            format!("the logged WARC ends at byte {warc_bytes}, inside this record"),
        );
    }
}

fn note_revisit(
    rec: &ScannedRecord,
    item: &str,
    logged: Option<(&str, &str)>,
    refers: &mut std::collections::HashMap<String, Vec<Refers>>,
    checks: &mut Checks,
) {
    let head = &rec.head;
    let date = head
        .get("WARC-Refers-To-Date")
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok());
    let (original, payload, target) = match logged {
        // An import's revisit: the original and payload the log holds;
        // the URL (and date, when it names one) from the revisit.
        Some((original, payload)) => (
            original.to_string(),
            Some(format!("sha256:{payload}")),
            head.uri("WARC-Refers-To-Target-URI")
                .or(head.target_uri())
                .map(str::to_string),
        ),
        None => {
            let Some(original) = head.get("WARC-Refers-To") else {
                checks.failed(item, "a revisit without WARC-Refers-To");
                return;
            };
            (
                original.to_string(),
                head.get("WARC-Payload-Digest").map(str::to_string),
                head.get("WARC-Refers-To-Target-URI").map(str::to_string),
            )
        }
    };
    refers.entry(original).or_default().push(Refers {
        revisit: head.record_id().to_string(),
        payload,
        target,
        date_optional: logged.is_some(),
        date,
        found: false,
    });
}

/// A record after the logged WARC must be the original a revisit names:
/// a `response` with its id, payload digest, target and date, not seen
/// before.
fn original_record(
    rec: &ScannedRecord,
    item: &str,
    refers: &mut std::collections::HashMap<String, Vec<Refers>>,
    checks: &mut Checks,
) {
    let named = refers.get_mut(rec.head.record_id());
    let Some(revisits) = named.filter(|_| rec.head.warc_type() == "response") else {
        checks.failed(
            item,
            "after the logged WARC, but neither the original a revisit refers to nor custody's proof",
        );
        return;
    };
    if revisits.iter().any(|r| r.found) {
        checks.failed(item, "an original that appears twice");
        return;
    }
    let payload = rec.payload_sha256().map(|d| d.labelled());
    let date = rec
        .head
        .get("WARC-Date")
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok());
    let target = rec.head.target_uri();
    for r in revisits.iter_mut() {
        let problem = if r.payload.is_none() || r.payload != payload {
            Some("its payload digest is not the one the revisit records")
        } else if r.target.is_none() || r.target.as_deref() != target {
            Some("its WARC-Target-URI is not the revisit's WARC-Refers-To-Target-URI")
        } else if !r.date_optional && (r.date.is_none() || r.date != date) {
            Some("its WARC-Date is not the revisit's WARC-Refers-To-Date")
        } else {
            None
        };
        match problem {
            Some(p) => checks.failed(item, format!("{p} (revisit {})", r.revisit)),
            None => r.found = true,
        }
    }
}

/// The inclusion proof against the pinned key (or the one the package
/// carries, with a warning), and the timestamp tokens; how many tokens
/// there were.
fn proof_and_timestamps(
    inclusion: &tlog::InclusionProof,
    proof: &serde_json::Value,
    pinned_key: Option<&str>,
    tsa_roots: &[std::path::PathBuf],
    checks: &mut Checks,
) -> usize {
    let (key, pinned) = match pinned_key {
        Some(k) => (k.to_string(), true),
        None => (inclusion.verifier_key.clone(), false),
    };
    let item = format!("inclusion in checkpoint {}", inclusion.tree_size);
    match tlog::verify_inclusion_proof(inclusion, &key) {
        Ok(()) => checks.ok(
            item,
            (!pinned).then(|| {
                "checked with the key the package carries; pin the published key with --key"
                    .to_string()
            }),
        ),
        Err(e) => checks.failed(item, e.to_string()),
    }
    let tokens: Vec<crate::model::TimestampToken> =
        serde_json::from_value(proof["timestamps"].clone()).unwrap_or_default();
    let count = tokens.len();
    for t in tokens {
        let item = format!(
            "timestamp from {} on {} {}",
            t.tsa_url, t.subject_kind, t.subject_id
        );
        let imprint = match t.subject_kind.as_str() {
            "checkpoint" => crate::model::Sha256::of(inclusion.checkpoint.as_bytes()),
            _ => crate::model::Sha256::of(inclusion.leaf_data.as_bytes()),
        };
        if t.imprint != imprint {
            checks.failed(item, "the token timestamps other bytes");
        } else if tsa_roots.is_empty() {
            checks.ok(
                item,
                Some("not checked: pass --tsa-roots with the TSA's root certificates".into()),
            );
        } else {
            // Offline, from the file alone: the system's temporary directory.
            match tlog::tsa::verify_token(&t, tsa_roots, &std::env::temp_dir()) {
                Ok(()) => checks.ok(item, t.gen_time.clone()),
                Err(e) => checks.failed(item, e.to_string()),
            }
        }
    }
    count
}

struct HashWrite<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
