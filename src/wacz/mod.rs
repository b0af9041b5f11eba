//! Evidence packages: WACZ 1.1.1, signed, carrying custody's proofs.
//!
//! `custody export CAPTURE --format wacz` and `custody claim export CLAIM`
//! write one ZIP ([`zip`]) holding:
//!
//! - `archive/<capture>.warc.gz`: each capture's export (the stored WARC,
//!   the originals its revisits refer to, and the proof record), so the
//!   package replays alone;
//! - `indexes/index.cdx`: CDXJ lines for those WARCs;
//! - `pages/pages.jsonl`: one page per capture;
//! - `custody/`: the capture manifests, inclusion proofs with their signed
//!   checkpoints, the log's public key, RFC 3161 tokens (`.tsr`, DER), the
//!   claims as JSON-LD and the custody events, each a listed resource;
//! - `datapackage.json` listing every member with its SHA-256, and
//!   `datapackage-digest.json` signed in the WACZ signing spec's anonymous
//!   form ([`sign`]).
//!
//! [`verify`] checks a package offline: every byte of the ZIP structure,
//! every member against the data package, the signature, and each WARC as
//! `custody verify FILE` does (records, stored-WARC digest, inclusion proof,
//! checkpoint signature, timestamps).

pub mod sign;
pub mod unzip;
pub mod zip;

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde_json::{json, Value};

use crate::archive::{Archive, ArchiveError};
use crate::cdxj::CdxLine;
use crate::integrity::{Check, PackageError, PackageVerification};
use crate::model::{rfc3339_utc, CaptureId, Sha256};

/// What a package holds: one capture, or all of a claim's evidence.
#[derive(Clone, Debug)]
pub enum Scope {
    Capture(CaptureId),
    Claim(String),
}

/// What [`export`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WaczExported {
    pub path: String,
    pub sha256: Sha256,
    pub bytes: u64,
    pub captures: Vec<CaptureId>,
    /// The signing key's public half (base64 SPKI DER).
    pub public_key: String,
}

const SOFTWARE: &str = concat!("custody ", env!("CARGO_PKG_VERSION"));

/// A member to be written: in memory, or a file on disk.
enum Content {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Writes the package for `scope` to `dest` (atomically: it appears only
/// when complete) and records an `exported` custody event for each capture
/// in it, by `actor`.
pub async fn export(
    archive: &Archive,
    scope: &Scope,
    dest: &Path,
    actor: Option<&str>,
) -> Result<WaczExported, ArchiveError> {
    let (capture_ids, claim_ids, title) = scope_of(archive, scope).await?;
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let work = tempfile::Builder::new()
        .prefix(".custody-wacz-")
        .tempdir_in(&dir)
        .map_err(|e| ArchiveError::Io {
            path: dir.clone(),
            source: e,
        })?;
    let key = crate::tlog::LogKey::for_config(archive.config())
        .map_err(|e| ArchiveError::Internal(e.to_string()))?;
    let mut parts = Parts {
        members: BTreeMap::new(),
        cdx_lines: Vec::new(),
        pages: vec![
            json!({"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}).to_string(),
        ],
        main_page: None,
    };
    for id in &capture_ids {
        parts.add_capture(archive, id, work.path()).await?;
    }
    let Parts {
        mut members,
        mut cdx_lines,
        pages,
        main_page,
    } = parts;
    members.insert(
        "custody/log-key.txt".into(),
        Content::Bytes(format!("{}\n", key.verifier_key()).into_bytes()),
    );
    for claim in &claim_ids {
        let ev = crate::provenance::evidence(archive, claim)
            .await
            .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        let doc = crate::provenance::jsonld::claim_document(&ev);
        members.insert(
            format!("custody/claim-{claim}.jsonld"),
            Content::Bytes(pretty(&doc)),
        );
    }
    cdx_lines.sort();
    let mut cdx = cdx_lines.join("\n");
    cdx.push('\n');
    members.insert("indexes/index.cdx".into(), Content::Bytes(cdx.into_bytes()));
    members.insert(
        "pages/pages.jsonl".into(),
        Content::Bytes((pages.join("\n") + "\n").into_bytes()),
    );

    let signing = sign::PackageKey::for_config(archive.config())
        .map_err(|e| ArchiveError::Internal(e.to_string()))?;
    let created = Utc::now();
    let dest_owned = dest.to_path_buf();
    let (sha256, bytes, public_key) = tokio::task::spawn_blocking(move || {
        write_package(&dest_owned, members, &signing, created, &title, main_page)
    })
    .await
    .map_err(|e| ArchiveError::Internal(e.to_string()))??;
    drop(work);

    for id in &capture_ids {
        let detail = json!({
            "format": "wacz",
            "path": dest.display().to_string(),
            "sha256": sha256,
            "scope": match scope { Scope::Capture(_) => "capture".to_string(), Scope::Claim(c) => format!("claim {c}") },
            "by": actor,
        });
        archive.event(id, "exported", detail).await;
    }
    Ok(WaczExported {
        path: dest.display().to_string(),
        sha256,
        bytes,
        captures: capture_ids,
        public_key,
    })
}

/// Which captures a package holds, which claims travel with them, and its
/// title.
async fn scope_of(
    archive: &Archive,
    scope: &Scope,
) -> Result<(Vec<CaptureId>, Vec<String>, String), ArchiveError> {
    let index = archive.index();
    match scope {
        Scope::Capture(id) => {
            let links = index
                .links(&crate::index::LinkFilter {
                    capture_id: Some(id.clone()),
                    ..Default::default()
                })
                .await?;
            let mut claims: Vec<String> = links.into_iter().map(|l| l.claim_id).collect();
            claims.sort_unstable();
            claims.dedup();
            Ok((vec![id.clone()], claims, format!("custody capture {id}")))
        }
        Scope::Claim(claim) => {
            let links = index
                .links(&crate::index::LinkFilter {
                    claim_id: Some(claim.clone()),
                    ..Default::default()
                })
                .await?;
            if index.claim_versions(claim).await?.is_empty() {
                return Err(ArchiveError::NotFound(format!(
                    "no claim {claim}; list them with `custody claims`"
                )));
            }
            let mut captures: Vec<CaptureId> = Vec::new();
            for l in links {
                if !captures.contains(&l.capture_id) {
                    captures.push(l.capture_id);
                }
            }
            if captures.is_empty() {
                return Err(ArchiveError::Invalid(format!(
                    "claim {claim} has no evidence yet; link a capture with `custody claim link`"
                )));
            }
            Ok((
                captures,
                vec![claim.clone()],
                format!("custody claim {claim}"),
            ))
        }
    }
}

/// A package's members as they are gathered.
struct Parts {
    members: BTreeMap<String, Content>,
    cdx_lines: Vec<String>,
    pages: Vec<String>,
    /// The first capture's page: its URL and time.
    main_page: Option<(String, String)>,
}

impl Parts {
    /// One capture's WARC (exported into `work`), index lines, page,
    /// manifest, proof, timestamps and custody events.
    async fn add_capture(
        &mut self,
        archive: &Archive,
        id: &CaptureId,
        work: &Path,
    ) -> Result<(), ArchiveError> {
        let index = archive.index();
        let capture = index.capture(id).await?.ok_or_else(|| {
            ArchiveError::NotFound(format!(
                "no capture {id}; list them with `custody captures`"
            ))
        })?;
        let warc_name = format!("{id}.warc.gz");
        let warc_path = work.join(&warc_name);
        let exported = archive.write_export(id, &warc_path).await?;
        self.members
            .insert(format!("archive/{warc_name}"), Content::File(warc_path));

        // Index lines: the stored WARC's records at their offsets, then the
        // originals appended after it.
        let records = index.records(id).await?;
        for r in &records {
            if let Some(line) = CdxLine::of(r, r.offset, &warc_name) {
                self.cdx_lines.push(line.cdxj());
            }
        }
        let mut offset = exported.stored.bytes;
        for o in &exported.originals {
            if let Some(line) = CdxLine::of(&o.record, offset, &warc_name) {
                self.cdx_lines.push(line.cdxj());
            }
            offset += o.record.length;
        }
        if let Some(page) = crate::archive::page_resource(&capture.resources) {
            let ts = rfc3339_utc(&capture.started_at);
            self.pages.push(
                json!({"id": id, "url": page.url, "ts": ts, "title": capture.seed_url}).to_string(),
            );
            self.main_page.get_or_insert((page.url.clone(), ts));
        }

        // Wrapped: a top-level "resources" key would make data-package
        // tools read the manifest as a descriptor of its own.
        let manifest = json!({"custody_capture": 1, "capture": capture, "records": records});
        self.members.insert(
            format!("custody/capture-{id}.json"),
            Content::Bytes(pretty(&manifest)),
        );
        let proof = archive.proof(id, &exported.stored).await?;
        let tree_size = proof["inclusion"]["tree_size"].as_u64().unwrap_or(0);
        self.members.insert(
            format!("custody/proof-{id}.json"),
            Content::Bytes(pretty(&proof)),
        );
        let mut tokens = index
            .timestamp_tokens("checkpoint", &tree_size.to_string())
            .await?;
        tokens.extend(index.timestamp_tokens("capture", id.as_str()).await?);
        for (n, t) in tokens.iter().enumerate() {
            use base64::Engine;
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&t.token_der) {
                self.members.insert(
                    format!(
                        "custody/timestamp-{}-{}-{}.tsr",
                        t.subject_kind,
                        t.subject_id,
                        n + 1
                    ),
                    Content::Bytes(der),
                );
            }
        }
        let events = index.events("capture", id.as_str()).await?;
        self.members.insert(
            format!("custody/events-{id}.json"),
            Content::Bytes(pretty(&events)),
        );
        Ok(())
    }
}

fn pretty<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Hashes a member (SHA-256 and CRC-32) without holding it in memory.
fn digest_member(content: &Content) -> std::io::Result<(Sha256, u32, u64)> {
    use sha2::Digest;
    let mut sha = sha2::Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    let mut n = 0u64;
    match content {
        Content::Bytes(b) => {
            sha.update(b);
            crc.update(b);
            n = b.len() as u64;
        }
        Content::File(p) => {
            let mut f = std::fs::File::open(p)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let k = f.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                sha.update(&buf[..k]);
                crc.update(&buf[..k]);
                n += k as u64;
            }
        }
    }
    Ok((Sha256::from_hasher(sha), crc.finalize(), n))
}

/// Writes the ZIP: every member, `datapackage.json`, and the signed
/// `datapackage-digest.json`. Returns the package's SHA-256, size and the
/// public key it was signed with.
fn write_package(
    dest: &Path,
    members: BTreeMap<String, Content>,
    key: &sign::PackageKey,
    created: chrono::DateTime<Utc>,
    title: &str,
    main_page: Option<(String, String)>,
) -> Result<(Sha256, u64, String), ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io {
        path: dest.to_path_buf(),
        source: e,
    };
    let (file, tmp_path) = crate::archive::temp_beside(dest)?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::new(file), created);
    let mut resources = Vec::new();
    // WACZ order: archives, indexes, pages, then custody's proofs.
    let order = |name: &str| match name.split('/').next() {
        Some("archive") => 0,
        Some("indexes") => 1,
        Some("pages") => 2,
        _ => 3,
    };
    let mut names: Vec<&String> = members.keys().collect();
    names.sort_by_key(|n| (order(n), n.to_string()));
    for name in names {
        let content = &members[name];
        let (sha, crc, size) = digest_member(content).map_err(io)?;
        match content {
            Content::Bytes(b) => writer.add(name, size, crc, &mut &b[..]).map_err(io)?,
            Content::File(p) => {
                let mut f = BufReader::new(std::fs::File::open(p).map_err(io)?);
                writer.add(name, size, crc, &mut f).map_err(io)?
            }
        }
        resources.push(json!({
            "name": name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase(),
            "path": name,
            "hash": sha.labelled(),
            "bytes": size,
        }));
    }
    let created_s = created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut package = json!({
        "profile": "data-package",
        "wacz_version": "1.1.1",
        "title": title,
        "created": created_s,
        "modified": created_s,
        "software": SOFTWARE,
        "resources": resources,
    });
    if let Some((url, ts)) = main_page {
        // The WACZ spec's spelling; `main_page` also reads `mainPageURL`.
        package["mainPageUrl"] = json!(url);
        package["mainPageDate"] = json!(ts);
    }
    let package_bytes = pretty(&package);
    let hash = Sha256::of(&package_bytes).labelled();
    let digest = json!({
        "path": "datapackage.json",
        "hash": hash,
        "signedData": {
            "hash": hash,
            "created": created_s,
            "software": SOFTWARE,
            "version": "0.1.0",
            "signature": key.sign(&hash),
            "publicKey": key.public_key(),
        },
    });
    writer
        .add_bytes("datapackage.json", &package_bytes)
        .map_err(io)?;
    writer
        .add_bytes("datapackage-digest.json", &pretty(&digest))
        .map_err(io)?;
    let (out, _) = writer.finish().map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    tmp_path.persist(dest).map_err(|e| io(e.error))?;
    let (sha, _, bytes) = digest_member(&Content::File(dest.to_path_buf())).map_err(io)?;
    Ok((sha, bytes, key.public_key()))
}

/// Whether a file is a ZIP (a WACZ) rather than a WARC.
pub fn looks_like_wacz(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x50, 0x4b, 0x03, 0x04]
}

/// Verifies a package offline. `pinned_package_key` (base64 SPKI) is the
/// signing key the investigator expects; `pinned_log_key` the log's
/// verifier key; `tsa_roots` the certificates timestamps must chain to.
pub fn verify(
    path: &Path,
    pinned_package_key: Option<&str>,
    pinned_log_key: Option<&str>,
    tsa_roots: &[PathBuf],
) -> Result<PackageVerification, PackageError> {
    let mut file = std::fs::File::open(path).map_err(|source| PackageError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let read_err = |source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut checks = Vec::new();
    let done = |checks: Vec<Check>| PackageVerification {
        package: path.display().to_string(),
        capture_id: None,
        ok: checks.iter().all(|c| c.ok),
        checks,
        caveats: Vec::new(),
    };
    let members = match zip::read_strict(&mut file) {
        Ok(m) => {
            checks.push(Check {
                item: "zip structure".into(),
                ok: true,
                detail: Some(format!(
                    "{} members, every header byte as custody writes it",
                    m.len()
                )),
            });
            m
        }
        Err(zip::ZipError::Io(e)) => return Err(read_err(e)),
        Err(e) => {
            checks.push(Check {
                item: "zip structure".into(),
                ok: false,
                detail: Some(e.to_string()),
            });
            return Ok(done(checks));
        }
    };
    // Each member: its CRC-32 and SHA-256.
    let mut digests: BTreeMap<String, (Sha256, u64)> = BTreeMap::new();
    for m in &members {
        use sha2::Digest;
        let mut sha = sha2::Sha256::new();
        let crc_ok = match zip::check_crc(&mut file, m, &mut |b| sha.update(b)) {
            Ok(ok) => ok,
            Err(zip::ZipError::Io(e)) => return Err(read_err(e)),
            Err(e) => {
                checks.push(Check::failed(format!("member {}", m.name), e.to_string()));
                false
            }
        };
        if !crc_ok {
            checks.push(Check {
                item: format!("member {}", m.name),
                ok: false,
                detail: Some("its bytes do not match the CRC-32 in the ZIP headers".into()),
            });
        }
        digests.insert(m.name.clone(), (Sha256::from_hasher(sha), m.size));
    }
    let read_member = |file: &mut std::fs::File, name: &str| -> Option<Vec<u8>> {
        let m = members.iter().find(|m| m.name == name)?;
        if m.size > 64 << 20 {
            return None;
        }
        let mut buf = vec![0u8; m.size as usize];
        file.seek(SeekFrom::Start(m.data_offset)).ok()?;
        file.read_exact(&mut buf).ok()?;
        Some(buf)
    };
    let Some(package_bytes) = read_member(&mut file, "datapackage.json") else {
        checks.push(Check {
            item: "datapackage.json".into(),
            ok: false,
            detail: Some("missing".into()),
        });
        return Ok(done(checks));
    };
    let package: Value = match serde_json::from_slice(&package_bytes) {
        Ok(v) => v,
        Err(e) => {
            checks.push(Check {
                item: "datapackage.json".into(),
                ok: false,
                detail: Some(format!("not JSON: {e}")),
            });
            return Ok(done(checks));
        }
    };
    check_listing(&package, &digests, &mut checks);
    if let Some((url, date)) = main_page(&package) {
        checks.push(Check {
            item: "main page".into(),
            ok: true,
            detail: Some(match date {
                Some(d) => format!("{url} ({d})"),
                None => url.to_string(),
            }),
        });
    }
    let digest: Value = read_member(&mut file, "datapackage-digest.json")
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    check_signature(
        &package_bytes,
        &package,
        &digest,
        pinned_package_key,
        &mut checks,
    );
    // Each WARC, as `custody verify FILE` checks an export.
    let mut caveats = Vec::new();
    if pinned_package_key.is_none() {
        caveats.push(UNPINNED_PACKAGE_KEY.to_string());
    }
    for m in members.iter().filter(|m| m.name.starts_with("archive/")) {
        for c in check_warc(path, &mut file, m, pinned_log_key, tsa_roots, &mut checks)? {
            if !caveats.contains(&c) {
                caveats.push(c);
            }
        }
    }
    let mut v = done(checks);
    v.caveats = caveats;
    Ok(v)
}

/// The package's main page and its date: `mainPageUrl`, as the WACZ spec
/// spells it, or `mainPageURL`, as custody wrote it before (and some
/// other tools write it).
pub fn main_page(package: &Value) -> Option<(&str, Option<&str>)> {
    let url = package["mainPageUrl"]
        .as_str()
        .or_else(|| package["mainPageURL"].as_str())?;
    Some((url, package["mainPageDate"].as_str()))
}

/// The caveat of a package signature checked with the key it carries.
pub const UNPINNED_PACKAGE_KEY: &str =
    "signed by the key inside the file: pin the published package key with --package-key";

/// The members against `datapackage.json`, both ways: each listed
/// resource present with its hash and size, each member listed.
fn check_listing(
    package: &Value,
    digests: &BTreeMap<String, (Sha256, u64)>,
    checks: &mut Vec<Check>,
) {
    let mut listed = Vec::new();
    for r in package["resources"].as_array().cloned().unwrap_or_default() {
        let p = r["path"].as_str().unwrap_or_default().to_string();
        let item = format!("resource {p}");
        match digests.get(&p) {
            None => checks.push(Check {
                item,
                ok: false,
                detail: Some("listed in datapackage.json but not in the package".into()),
            }),
            Some((sha, size)) => {
                let expected = r["hash"].as_str().unwrap_or_default();
                if expected != sha.labelled() {
                    checks.push(Check {
                        item,
                        ok: false,
                        detail: Some(format!(
                            "sha256 is {}, datapackage.json says {expected}",
                            sha.labelled()
                        )),
                    });
                } else if r["bytes"].as_u64() != Some(*size) {
                    checks.push(Check {
                        item,
                        ok: false,
                        detail: Some(format!(
                            "{size} bytes, datapackage.json says {}",
                            r["bytes"]
                        )),
                    });
                } else {
                    checks.push(Check {
                        item,
                        ok: true,
                        detail: Some(sha.labelled()),
                    });
                }
            }
        }
        listed.push(p);
    }
    for name in digests.keys() {
        if name != "datapackage.json" && name != "datapackage-digest.json" && !listed.contains(name)
        {
            checks.push(Check {
                item: format!("member {name}"),
                ok: false,
                detail: Some("in the package but not listed in datapackage.json".into()),
            });
        }
    }
}

/// The signed digest: `datapackage-digest.json` names `datapackage.json`'s
/// hash, its signature is valid, and (when pinned) by the expected key.
fn check_signature(
    package_bytes: &[u8],
    package: &Value,
    digest: &Value,
    pinned_package_key: Option<&str>,
    checks: &mut Vec<Check>,
) {
    let package_hash = Sha256::of(package_bytes).labelled();
    if digest["hash"].as_str() != Some(package_hash.as_str()) {
        checks.push(Check {
            item: "datapackage-digest.json".into(),
            ok: false,
            detail: Some(format!(
                "its hash is not datapackage.json's ({package_hash})"
            )),
        });
    } else {
        checks.push(Check {
            item: "datapackage-digest.json".into(),
            ok: true,
            detail: Some(package_hash.clone()),
        });
    }
    let signed = &digest["signedData"];
    let public_key = signed["publicKey"].as_str().unwrap_or_default();
    let sig_check = if signed["hash"].as_str() != Some(package_hash.as_str()) {
        Err("signedData.hash is not datapackage.json's hash".to_string())
    } else if signed["created"] != package["created"] {
        Err("signedData.created differs from datapackage.json's created".to_string())
    } else {
        sign::verify(
            &package_hash,
            signed["signature"].as_str().unwrap_or_default(),
            public_key,
        )
        .map_err(|e| e.to_string())
    };
    let curve = sign::curve_of(public_key).unwrap_or("of an unknown curve");
    checks.push(Check {
        item: format!("signature (ECDSA {curve}, WACZ anonymous form)"),
        ok: sig_check.is_ok(),
        detail: Some(match &sig_check {
            Ok(()) => format!("valid, by public key {public_key}"),
            Err(e) => e.clone(),
        }),
    });
    if let Some(pinned) = pinned_package_key {
        let same = pinned.trim() == public_key;
        checks.push(Check {
            item: "signing key".into(),
            ok: same,
            detail: Some(if same {
                "the pinned key".into()
            } else {
                format!("signed by {public_key}, not the pinned key")
            }),
        });
    }
}

/// One WARC member, checked as `custody verify FILE` checks an export
/// (from a scratch copy: the member is stored, not a file of its own);
/// its caveats.
fn check_warc(
    path: &Path,
    file: &mut std::fs::File,
    m: &zip::Member,
    pinned_log_key: Option<&str>,
    tsa_roots: &[PathBuf],
    checks: &mut Vec<Check>,
) -> Result<Vec<String>, PackageError> {
    let read_err = |source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let scratch = |source| PackageError::Scratch {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(scratch)?;
    file.seek(SeekFrom::Start(m.data_offset))
        .map_err(read_err)?;
    std::io::copy(&mut (&mut *file).take(m.size), tmp.as_file_mut()).map_err(read_err)?;
    tmp.as_file_mut().flush().map_err(scratch)?;
    let v = crate::integrity::verify_package(tmp.path(), pinned_log_key, tsa_roots)?;
    for c in v.checks {
        checks.push(Check {
            item: format!("{}: {}", m.name, c.item),
            ok: c.ok,
            detail: c.detail,
        });
    }
    Ok(v.caveats)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_main_page_is_read_in_either_spelling() {
        let spec = serde_json::json!({"mainPageUrl": "https://a.example/", "mainPageDate": "2016-11-29T10:04:00Z"});
        assert_eq!(
            super::main_page(&spec),
            Some(("https://a.example/", Some("2016-11-29T10:04:00Z")))
        );
        let older = serde_json::json!({"mainPageURL": "https://b.example/"});
        assert_eq!(super::main_page(&older), Some(("https://b.example/", None)));
        assert_eq!(super::main_page(&serde_json::json!({})), None);
    }
}
