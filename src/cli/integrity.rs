//! `audit`, `verify` (a capture, all of them, or a file offline) and
//! `reindex`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::output::{print_check, print_checks, print_json, print_verdict};
use super::{exit, Failure};
use custody::archive::{Archive, ArchiveError};
use custody::integrity::{self, AuditSummary, CaptureVerification};

/// `verify FILE`: an exported WARC or a WACZ, offline, with nothing but the
/// file.
pub fn verify_file(
    path: &Path,
    json: bool,
    key: Option<&str>,
    tsa_roots: &[PathBuf],
    package_key: Option<&str>,
) -> Result<ExitCode, Failure> {
    let v = if custody::wacz::looks_like_wacz(path) {
        custody::wacz::verify(path, package_key, key, tsa_roots)?
    } else {
        integrity::verify_package(path, key, tsa_roots)?
    };
    if json {
        print_json(&v)?;
    } else {
        print_verdict(&v.checks, &v.package, &v.caveats);
    }
    Ok(exit(v.ok))
}

pub async fn verify(
    archive: &Archive,
    capture_id: Option<String>,
    all: bool,
    json: bool,
) -> Result<ExitCode, Failure> {
    let key = custody::tlog::LogKey::for_config(archive.config())?;
    let print_capture = |v: &CaptureVerification| -> Result<(), Failure> {
        if json {
            return print_json(v);
        }
        print_checks(&v.checks, &format!("capture {}", v.capture_id));
        Ok(())
    };
    if all {
        let v = integrity::verify_all(archive, &key).await?;
        for c in &v.captures {
            print_capture(c)?;
        }
        if json {
            print_json(&serde_json::json!({"log": v.log, "ok": v.ok}))?;
        } else {
            for c in &v.log {
                print_check(c);
            }
            let log = if v.log_ok() { "ok" } else { "FAILED" };
            eprintln!(
                "{} capture(s), {} failed; log {log}",
                v.captures.len(),
                v.failed_captures()
            );
        }
        return Ok(exit(v.ok));
    }
    let arg = capture_id.unwrap_or_default();
    let id = archive
        .resolve_capture_id(&arg)
        .await
        .map_err(|e| match e {
            ArchiveError::Invalid(m) => Failure::Usage(anyhow::anyhow!(
                "{m}; or give the path of an exported file to verify it offline"
            )),
            e => e.into(),
        })?;
    let v = integrity::verify_capture(archive, &key, &id).await?;
    print_capture(&v)?;
    Ok(exit(v.ok))
}

pub async fn audit(archive: &Archive, json: bool) -> Result<ExitCode, Failure> {
    let checks = integrity::audit(archive).await?;
    for e in checks.iter().flat_map(|c| &c.events) {
        if json {
            print_json(e)?;
        } else if e.outcome == "ok" {
            eprintln!("ok       {} ({})", e.object_key, e.location);
        } else {
            eprintln!(
                "{:<8} {} ({})  {}",
                e.outcome.to_uppercase(),
                e.object_key,
                e.location,
                e.detail.as_deref().unwrap_or("")
            );
        }
    }
    // Objects nothing names are reported, not failed: they are no one's
    // evidence, and the write-once store keeps them.
    let unindexed = integrity::unindexed_objects(archive).await?;
    for key in &unindexed {
        let detail = "stored, but no capture names it (an attempt fenced out after uploading); it is no capture's evidence and is kept";
        if json {
            print_json(&serde_json::json!({
                "object_key": key,
                "location": "primary",
                "outcome": "unindexed",
                "detail": detail,
            }))?;
        } else {
            eprintln!("UNINDEXED {key} (primary)  {detail}");
        }
    }
    let summary = AuditSummary::of(&checks);
    if !json {
        eprintln!(
            "{} object(s) checked, {} failed, {} repaired from a good copy, {} not named by any capture",
            summary.checked,
            summary.failed,
            summary.repaired,
            unindexed.len()
        );
    }
    Ok(exit(summary.failed == 0))
}

pub async fn reindex(archive: &Archive, json: bool) -> Result<ExitCode, Failure> {
    let keys_dir = &archive.config().keys_dir;
    let key = custody::tlog::LogKey::load_existing(keys_dir)?;
    if key.is_none() {
        eprintln!(
            "warning: no log key in {}: checkpoints cannot be checked (restore {} from your backup first)",
            keys_dir.display(),
            custody::tlog::KEY_FILE
        );
    }
    let r = integrity::reindex(archive, key.as_ref())
        .await
        .map_err(|e| match e {
            ArchiveError::Invalid(_) => Failure::Usage(e.into()),
            e => Failure::Failed(e.into()),
        })?;
    if json {
        print_json(&r)?;
    } else {
        eprintln!(
            "restored {} log leaves and {} checkpoints; rebuilt {} captures from their WARCs and {} failed captures from the log; restored {} claim, link, event and fixity rows from the log; {} captures newer than the last checkpoint appended to the log; indexed the text of {} captures for search",
            r.leaves_restored,
            r.checkpoints_restored,
            r.captures_rebuilt,
            r.failed_captures_restored,
            r.rows_restored,
            r.leaves_appended,
            r.captures_searchable
        );
        for p in &r.problems {
            eprintln!("  problem: {p}");
        }
    }
    Ok(exit(r.problems.is_empty()))
}
