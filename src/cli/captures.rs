//! `capture`, `import`, `captures`, `show`, `diff`, `export`, `get`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::output::{event_line, print_capture, print_diff, print_json, summary_line, ProgressBar};
use super::{exit, open_capturer, ExportFormat, Failure};
use custody::archive::{normalize_url, Archive, ArchiveError};
use custody::capture::check_seed;
use custody::config::Config;
use custody::model::{CaptureId, CaptureStatus};

/// Captures each URL in turn (seeds are checked before anything is opened,
/// so bad input fetches nothing).
pub async fn capture(config: Config, urls: &[String], json: bool) -> Result<ExitCode, Failure> {
    let allow_private = config.capture.allow_private;
    let mut seeds = Vec::new();
    for u in urls {
        seeds.push(check_seed(u, allow_private).map_err(|e| Failure::Usage(e.into()))?);
    }
    if let Some(note) = &config.capture.browser.mode_note {
        eprintln!("note: {note}");
    }
    let capturer = open_capturer(config).await?;
    let mut all_ok = true;
    for seed in seeds {
        let bar = ProgressBar::new(seed.as_str());
        let result = capturer.capture(seed, &bar).await;
        bar.clear();
        let capture = result?;
        // Earlier links to this page: is their passage still there?
        if let Err(e) =
            custody::provenance::after_capture(capturer.archive(), &capture, None, &[]).await
        {
            eprintln!("warning: re-checking linked passages failed: {e}");
        }
        if json {
            print_capture(&capture, &capture)?;
        }
        if capture.status == CaptureStatus::Failed {
            all_ok = false;
            let reason = capture.error.as_deref().unwrap_or("unknown error");
            eprintln!("error: capture of {} failed: {reason}", capture.seed_url);
            continue;
        }
        eprintln!("{}", summary_line(&capture));
        if let Some(c) = &capture.change {
            let how = if c.changed { "changed" } else { "unchanged" };
            eprintln!("  page {how} since capture {}", c.previous_capture);
        }
        for r in capture.resources.iter().filter(|r| r.error.is_some()) {
            eprintln!("  warning: {}: {}", r.url, r.error.as_deref().unwrap_or(""));
        }
        if let Some(b) = &capture.browser {
            for line in browser_lines(b) {
                eprintln!("{line}");
            }
        }
        if let Some(m) = &capture.media {
            for line in media_lines(m) {
                eprintln!("{line}");
            }
        }
    }
    Ok(exit(all_ok))
}

/// Browser mode: the browser's outcome, what ran and what was kept.
fn browser_lines(b: &custody::model::BrowserInfo) -> Vec<String> {
    let mut out = vec![format!(
        "  browser  {} ({}, window {}){}",
        b.status,
        b.version.as_deref().unwrap_or("no browser"),
        b.window,
        b.problem
            .as_deref()
            .map(|p| format!(": {p}"))
            .unwrap_or_default()
    )];
    if !b.behaviours.is_empty() {
        out.push(format!("  behaviours  {}", b.behaviours.join("; ")));
    }
    for r in &b.records {
        out.push(format!(
            "  {}  {} bytes, sha256 {}  {}",
            r.kind, r.bytes, r.sha256, r.target_uri
        ));
    }
    out
}

/// The media step, a line each for its outcome and its files.
fn media_lines(m: &custody::model::MediaInfo) -> Vec<String> {
    let tool = match &m.version {
        Some(v) => format!("{} {v}", m.tool),
        None => m.tool.clone(),
    };
    let mut out = vec![match (m.status.as_str(), &m.problem) {
        ("ok", None) => format!("  media  {} file(s) from {tool}", m.files.len()),
        ("ok", Some(p)) => format!("  media  {} file(s) from {tool}; {p}", m.files.len()),
        (status, Some(p)) => format!("  media  {status}: {p}"),
        (status, None) => format!("  media  {status}"),
    }];
    for f in &m.files {
        let title = f
            .title
            .as_deref()
            .map(|t| format!("  \"{t}\""))
            .unwrap_or_default();
        let duration = f
            .duration_ms
            .map(|d| format!(" {:.1} s", d as f64 / 1000.0))
            .unwrap_or_default();
        out.push(format!(
            "  media file  {} {} {} bytes{duration}, sha256 {}{title}",
            f.format_id, f.mime, f.bytes, f.sha256
        ));
    }
    out
}

/// `custody import FILE...`: each file in turn; a file that is refused
/// is said in one line and the others go on (exit 1 if any was refused).
pub async fn import(
    archive: &Archive,
    files: &[std::path::PathBuf],
    source: Option<String>,
    json: bool,
) -> Result<ExitCode, Failure> {
    // What a crash left (an import cut off before its commit) first.
    custody::recovery::recover(archive).await;
    let mut all_ok = true;
    for path in files {
        let name = path.display().to_string();
        let file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) => {
                all_ok = false;
                eprintln!("error: cannot read {name}: {e}");
                continue;
            }
        };
        let request = custody::import::ImportRequest {
            name: name.clone(),
            source: source.clone(),
            actor: std::env::var("USER").ok().map(|u| format!("user:{u}")),
        };
        let imported = match custody::import::receive(archive, file).await {
            Ok(received) => custody::import::import(archive, received, &request).await,
            Err(e) => Err(e),
        };
        let capture = match imported {
            Ok(c) => c,
            Err(
                e @ (ArchiveError::Invalid(_)
                | ArchiveError::Index(custody::index::IndexError::Conflict(_))),
            ) => {
                all_ok = false;
                eprintln!("error: {e}");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if json {
            print_capture(&capture, &capture)?;
        }
        eprintln!("{}", summary_line(&capture));
        if let Some(i) = &capture.import {
            for p in &i.problems {
                eprintln!("  problem: {}", problem_line(p));
            }
            if !i.problems.is_empty() {
                eprintln!(
                    "  {} problem(s) recorded against the import (see `custody show {}`); the file is kept as received",
                    i.problems.len(),
                    capture.id
                );
            }
        }
    }
    Ok(exit(all_ok))
}

/// One problem of an import, in one line.
pub fn problem_line(p: &custody::model::ImportProblem) -> String {
    let mut line = String::new();
    if let Some(r) = &p.record {
        line.push_str(&format!("record {r}"));
    }
    if let Some(at) = &p.at {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!("({at})"));
    }
    if !line.is_empty() {
        line.push_str(": ");
    }
    line.push_str(&p.problem);
    line
}

pub async fn captures(
    archive: &Archive,
    url: Option<String>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let url = url
        .map(|u| normalize_url(&u))
        .transpose()
        .map_err(|e| Failure::Usage(e.into()))?;
    let captures = archive.index().captures(url.as_deref()).await?;
    for c in &captures {
        if json {
            print_capture(c, c)?;
        } else {
            println!("{}", summary_line(c));
        }
    }
    if !json && captures.is_empty() {
        match &url {
            Some(u) => {
                let near = archive.near_captured(u).await?;
                if near.is_empty() {
                    eprintln!("no captures of {u}; make one with `custody capture {u}`");
                } else {
                    eprintln!(
                        "no captures of {u}; captured nearby: {} (a trailing slash, scheme or www. differs)",
                        near.join(", ")
                    );
                }
            }
            None => eprintln!("no captures yet; make one with `custody capture URL`"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `show`: the capture's line first, then its WARC, page change,
/// timestamps, claims, custody events and resources; its WARC records
/// with `--records`. On stdout (it pipes: `custody show ID | grep`).
pub async fn show(
    archive: &Archive,
    id: &CaptureId,
    json: bool,
    records: bool,
) -> Result<ExitCode, Failure> {
    let detail = archive.capture_detail(id).await?;
    if json {
        print_capture(&detail, &detail.capture)?;
        return Ok(ExitCode::SUCCESS);
    }
    let capture = &detail.capture;
    let mut out = vec![summary_line(capture)];
    if let Some(w) = &capture.warc {
        out.push(format!(
            "  warc  {} ({} bytes, sha256 {})",
            w.key, w.bytes, w.sha256
        ));
    }
    if let Some(c) = &capture.change {
        let how = if c.changed { "changed" } else { "unchanged" };
        out.push(format!(
            "  page  {how} since capture {}",
            c.previous_capture
        ));
    }
    if let Some(i) = &capture.import {
        out.push(format!(
            "  imported  {} ({}, {} bytes, sha256 {}), received {} by {}; not captured by custody",
            i.name,
            i.format,
            i.file.bytes,
            i.file.sha256,
            custody::model::rfc3339_utc(&i.received_at),
            i.imported_by.as_deref().unwrap_or("an unnamed importer")
        ));
        out.push(format!("  kept as received  {}", i.file.key));
        if let Some(s) = &i.source {
            out.push(format!("  source  {s}"));
        }
        for s in &i.software {
            out.push(format!("  made by  {s}"));
        }
        for s in &i.operator {
            out.push(format!("  operator  {s}"));
        }
        for v in &i.verified {
            out.push(format!("  checked  {v}"));
        }
        for p in &i.problems {
            out.push(format!("  problem  {}", problem_line(p)));
        }
    }
    if capture.import.is_none() {
        let mode = if capture.browser.is_some() {
            "browser"
        } else {
            "http"
        };
        out.push(format!("  mode  {mode}"));
    }
    if let Some(b) = &capture.browser {
        out.extend(browser_lines(b));
    }
    if let Some(m) = &capture.media {
        out.extend(media_lines(m));
    }
    if capture.warc.is_some() {
        for t in archive.timestamp_status(&detail.timestamps) {
            out.push(format!("  rfc 3161 timestamp  {t}"));
        }
    }
    for l in &detail.links {
        out.push(format!(
            "  claim {} {} ({})",
            l.claim_id,
            l.relation.as_str(),
            l.target_uri
        ));
    }
    out.extend(detail.events.iter().map(event_line));
    for r in &capture.resources {
        let status = r
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "---".into());
        let note = r
            .error
            .as_deref()
            .map(|e| format!("  [{e}]"))
            .unwrap_or_default();
        out.push(format!("  {status} {:>10}  {}{note}", r.bytes, r.url));
    }
    if records {
        for r in &detail.records {
            out.push(format!(
                "  record {:<9} @{:<10} {:>8}  {}",
                r.warc_type,
                r.offset,
                r.length,
                r.target_uri.as_deref().unwrap_or("")
            ));
        }
    } else if !detail.records.is_empty() {
        out.push(format!(
            "  {} WARC records (list them with --records)",
            detail.records.len()
        ));
    }
    let mut stdout = std::io::stdout().lock();
    for line in out {
        writeln!(stdout, "{line}").context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn diff(
    archive: &Archive,
    a: &CaptureId,
    b: &CaptureId,
    json: bool,
) -> Result<ExitCode, Failure> {
    let d = custody::diff::diff(archive, a, b).await?;
    if d.a.seed_url != d.b.seed_url {
        eprintln!(
            "warning: the captures are of different URLs ({} and {}): this compares two pages, not two versions of one",
            d.a.seed_url, d.b.seed_url
        );
    }
    if json {
        print_json(&d)?;
    } else {
        print_diff(&d).context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(
    archive: &Archive,
    id: CaptureId,
    output: &Path,
    format: ExportFormat,
) -> Result<ExitCode, Failure> {
    if let ExportFormat::Wacz = format {
        return super::claims::export_wacz(
            archive,
            custody::wacz::Scope::Capture(id),
            output,
            false,
        )
        .await;
    }
    let exported = archive.export_warc(&id, output).await?;
    let originals = match exported.originals.len() {
        0 => String::new(),
        n => format!(
            "; the stored WARC (sha256 {}) plus the {n} original record(s) its revisits refer to",
            exported.stored.sha256
        ),
    };
    eprintln!(
        "wrote {} ({} bytes, sha256 {}{originals})",
        output.display(),
        exported.bytes,
        exported.sha256
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the archived body to `output` (appearing only when complete) or
/// stdout.
pub async fn get(
    archive: &Archive,
    url: &str,
    at: Option<DateTime<Utc>>,
    output: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    // A URL that is not one is bad input, said before anything is read.
    normalize_url(url).map_err(|e| Failure::Usage(e.into()))?;
    let retrieved = match &output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::Builder::new()
                .prefix(".custody-get-")
                .tempfile_in(dir)
                .with_context(|| format!("cannot write in {}", dir.display()))?;
            let r = archive.get(url, at, tmp.as_file_mut()).await?;
            tmp.persist(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            r
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let r = archive.get(url, at, &mut stdout).await?;
            stdout.flush().context("writing to stdout")?;
            r
        }
    };
    eprintln!(
        "{} as captured {} (capture {}, HTTP {}, {} bytes, WARC sha256 {})",
        retrieved.url,
        custody::model::rfc3339_utc(&retrieved.date),
        retrieved.capture_id,
        retrieved.status,
        retrieved.bytes,
        retrieved.warc_sha256
    );
    Ok(ExitCode::SUCCESS)
}

/// Full-text search: each result's time, capture and URL, then its passage
/// with the matched words in [brackets]; with `json`, one object per result.
pub async fn search(
    archive: &Archive,
    request: &custody::search::SearchRequest,
    json: bool,
) -> Result<ExitCode, Failure> {
    let page = custody::search::search(archive, request)
        .await
        .map_err(|e| match e {
            ArchiveError::Invalid(_) => Failure::Usage(e.into()),
            e => Failure::Failed(e.into()),
        })?;
    for r in &page.items {
        if json {
            print_json(r)?;
        } else {
            let title = r
                .title
                .as_deref()
                .map(|t| format!("  {t}"))
                .unwrap_or_default();
            println!(
                "{}  {}  {}{title}",
                custody::model::rfc3339_utc(&r.captured_at),
                r.capture_id,
                r.url
            );
            let passage: String = r
                .highlights
                .iter()
                .map(|s| match s.matched {
                    true => format!("[{}]", s.text),
                    false => s.text.clone(),
                })
                .collect();
            println!("    {passage}");
        }
    }
    if page.items.is_empty() && request.cursor.is_none() {
        eprintln!("nothing archived holds all of {:?}", request.q);
    }
    if let Some(next) = &page.next_cursor {
        eprintln!("more results: add --cursor {next}");
    }
    Ok(ExitCode::SUCCESS)
}
