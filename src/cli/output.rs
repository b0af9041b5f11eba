//! How results are shown: JSON lines on stdout, human lines on stderr,
//! the progress bar.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;

use super::Failure;
use custody::model::{Capture, CaptureStatus};
use custody::pipeline::Progress;

/// One custody event: `  event TIME EVENT OUTCOME by ACTOR`.
pub fn event_line(e: &custody::model::CustodyEvent) -> String {
    format!(
        "  event {} {} {} by {}",
        custody::model::rfc3339_utc(&e.at),
        e.event,
        e.outcome,
        e.actor.as_deref().unwrap_or("-")
    )
}

/// [`event_line`] on stdout (what `show` and `claim show` list).
pub fn print_event_to_stdout(e: &custody::model::CustodyEvent) {
    println!("{}", event_line(e));
}

/// One verification line: `  ok    item: detail` or `  FAIL  item: detail`.
pub fn print_check(c: &custody::integrity::Check) {
    let detail = c
        .detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let mark = if c.ok { "ok  " } else { "FAIL" };
    eprintln!("  {mark}  {}{detail}", c.item);
}

/// Every check, then `WHAT: verified` or `WHAT: N check(s) failed`.
pub fn print_checks(checks: &[custody::integrity::Check], what: &str) {
    print_verdict(checks, what, &[]);
}

/// Every check, then the verdict: `WHAT: verified`, `WHAT: verified, but
/// CAVEAT; CAVEAT` (what the verdict rests on that the file supplied), or
/// `WHAT: N check(s) failed`.
pub fn print_verdict(checks: &[custody::integrity::Check], what: &str, caveats: &[String]) {
    for c in checks {
        print_check(c);
    }
    match checks.iter().filter(|c| !c.ok).count() {
        0 if caveats.is_empty() => eprintln!("{what}: verified"),
        0 => eprintln!("{what}: verified, but {}", caveats.join("; ")),
        n => eprintln!("{what}: {n} check(s) failed"),
    }
}

pub fn print_diff(d: &custody::diff::CaptureDiff) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (label, s) in [("a", &d.a), ("b", &d.b)] {
        writeln!(
            out,
            "capture {label} {} {}  {}  page sha256 {}",
            s.capture_id,
            s.started_at,
            s.page_url.as_deref().unwrap_or(&s.seed_url),
            s.page_sha256
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into())
        )?;
    }
    writeln!(
        out,
        "page: {}",
        if d.page_changed {
            "changed"
        } else {
            "unchanged"
        }
    )?;
    if let Some(note) = &d.text_note {
        writeln!(out, "text: not compared ({note})")?;
    } else {
        let count = |k: custody::diff::Change| d.text.iter().filter(|c| c.change == k).count();
        writeln!(
            out,
            "text: {} edited, {} added, {} removed paragraph(s)",
            count(custody::diff::Change::Edited),
            count(custody::diff::Change::Added),
            count(custody::diff::Change::Removed)
        )?;
    }
    let number = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    for c in &d.text {
        writeln!(
            out,
            "  {} paragraph {} -> {}",
            c.change.as_str(),
            number(c.a_paragraph),
            number(c.b_paragraph)
        )?;
        if let Some(before) = &c.before {
            writeln!(out, "    - {before}")?;
        }
        if let Some(after) = &c.after {
            writeln!(out, "    + {after}")?;
        }
    }
    let count = |k: custody::diff::Change| d.resources.iter().filter(|c| c.change == k).count();
    writeln!(
        out,
        "resources: {} changed, {} added, {} removed, {} unchanged",
        count(custody::diff::Change::Changed),
        count(custody::diff::Change::Added),
        count(custody::diff::Change::Removed),
        d.unchanged_resources
    )?;
    let digest =
        |x: Option<custody::model::Sha256>| x.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for r in &d.resources {
        writeln!(
            out,
            "  {:<8} {}  {} -> {}",
            r.change.as_str(),
            r.url,
            digest(r.a_sha256),
            digest(r.b_sha256)
        )?;
    }
    Ok(())
}

pub fn summary_line(c: &Capture) -> String {
    let when = custody::model::rfc3339_utc(&c.started_at);
    match (&c.status, &c.warc) {
        (CaptureStatus::Ok, Some(w)) => format!(
            "{} {} {}  {} resources, {} records, {} bytes  {}  warc sha256 {}",
            c.id,
            when,
            custody::archive::outcome(c),
            c.resources.len(),
            c.records,
            w.bytes,
            c.seed_url,
            w.sha256
        ),
        _ => format!(
            "{} {} failed  {}  {}",
            c.id,
            when,
            c.seed_url,
            c.error.as_deref().unwrap_or("")
        ),
    }
}

pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let line = serde_json::to_string(value).context("serialising JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    Ok(())
}

/// A capture's `--json` line (`value` is the capture or its detail): its
/// fields with the mode it was made in.
pub fn print_capture<T: serde::Serialize>(value: &T, capture: &Capture) -> Result<(), Failure> {
    let mut v = serde_json::to_value(value).context("serialising JSON")?;
    if let (Some(mode), Some(fields)) = (capture.mode(), v.as_object_mut()) {
        fields.insert("mode".into(), mode.into());
    }
    print_json(&v)
}

/// A one-line progress display on stderr; silent when stderr is not a terminal.
pub struct ProgressBar {
    enabled: bool,
    started: Instant,
    seed: String,
    last: Mutex<Option<Instant>>,
}

impl ProgressBar {
    pub fn new(seed: &str) -> Self {
        ProgressBar {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            seed: seed.to_string(),
            last: Mutex::new(None),
        }
    }

    pub fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Progress for ProgressBar {
    fn exchange_done(&self, resources: usize, bytes: u64, url: &str) {
        if !self.enabled {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        *last = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64();
        let mib = bytes as f64 / (1024.0 * 1024.0);
        let shown: String = url.chars().take(60).collect();
        eprint!(
            "\r\x1b[2K[{}] {resources} resources, {mib:.1} MiB, {secs:.0}s  {shown}",
            self.seed.chars().take(40).collect::<String>()
        );
    }
}
