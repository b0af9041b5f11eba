//! Schedule files: `schedules/*.toml`, each with one or more `[[schedule]]`
//! tables.
//!
//! Parsing keeps the position of every value, so each problem is reported as
//! `file:line: message` (an unknown key, a cron expression croner rejects, a
//! time zone that is not an IANA name, a URL that is not http or https). A
//! file is valid as a whole or not at all; the daemon keeps running the last
//! good version of a file that stops validating.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::capture::CaptureSettings;
use crate::config::{self, RawCapture};
use crate::model::Relation;
use crate::provenance::ScheduleClaim;

/// A problem in a schedule file, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Problems as one line, without their places (for an answer to a request
/// that wrote the text itself).
pub fn one_line(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What happens to runs that fell due while the daemon was not running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnMissed {
    /// One catch-up run for all the missed instants (the latest of them).
    RunOnce,
    /// None: the schedule resumes at its next instant.
    Skip,
    /// Every missed instant, the most recent `cap` of them.
    RunAll { cap: usize },
}

/// What happens when a run falls due while the previous run of the same
/// schedule and URL is still going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlap {
    /// The new run is recorded as skipped.
    Skip,
    /// The new run waits its turn.
    Queue,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: String,
    pub cron_text: String,
    cron: croner::Cron,
    pub timezone: Tz,
    pub urls: Vec<Url>,
    pub on_missed: OnMissed,
    pub overlap: Overlap,
    /// Each run starts at a random delay up to this after its instant.
    pub jitter: Duration,
    pub enabled: bool,
    /// Capture settings: the configuration's, with this schedule's overrides.
    pub capture: CaptureSettings,
    /// Claims whose quotes every capture of these pages is checked for.
    pub claims: Vec<ScheduleClaim>,
    pub file: PathBuf,
    pub line: usize,
}

impl Schedule {
    /// The first fire time strictly after `t`, in UTC.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// Fire times in `(after, until]`, oldest first, at most `limit`.
    pub fn fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = after;
        while out.len() < limit {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    out.push(next);
                    t = next;
                }
                _ => break,
            }
        }
        out
    }

    /// The latest `keep` fire times in `(after, until]` and how many there
    /// were in all (bounded by `scan_limit`).
    pub fn latest_fires_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
        scan_limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let mut kept = std::collections::VecDeque::new();
        let mut count = 0;
        let mut t = after;
        while count < scan_limit {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    count += 1;
                    kept.push_back(next);
                    if kept.len() > keep {
                        kept.pop_front();
                    }
                    t = next;
                }
                _ => break,
            }
        }
        (kept.into_iter().collect(), count)
    }
}

/// A schedule file as written, every value with its place in the text (the
/// editor in [`super::edit`] rewrites values in place).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) schedule: Vec<Spanned<RawSchedule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    pub(super) name: Spanned<String>,
    pub(super) cron: Spanned<String>,
    pub(super) timezone: Option<Spanned<String>>,
    pub(super) urls: Spanned<Vec<Spanned<String>>>,
    pub(super) on_missed: Option<Spanned<String>>,
    max_catch_up: Option<Spanned<usize>>,
    pub(super) overlap: Option<Spanned<String>>,
    jitter_secs: Option<Spanned<f64>>,
    pub(super) enabled: Option<Spanned<bool>>,
    capture: Option<Spanned<RawCapture>>,
    claim: Option<Vec<Spanned<RawClaim>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    text: String,
    quote: String,
    prefix: Option<String>,
    suffix: Option<String>,
    relation: Option<String>,
}

/// One schedule file, parsed.
#[derive(Clone, Debug)]
pub struct ScheduleFile {
    pub path: PathBuf,
    pub schedules: Vec<Schedule>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Problems found in one file, each with its line.
struct Problems<'a> {
    path: &'a Path,
    text: &'a str,
    found: Vec<Problem>,
}

impl Problems<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        self.found.push(Problem {
            file: self.path.to_path_buf(),
            line: line_of(self.text, offset),
            message: message.into(),
        });
    }
}

/// Parses one file. `base` is the configuration's capture settings, which
/// each schedule's `[schedule.capture]` table overrides.
pub fn parse_file(
    path: &Path,
    text: &str,
    base: &CaptureSettings,
) -> Result<ScheduleFile, Vec<Problem>> {
    let mut problems = Problems {
        path,
        text,
        found: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            problems.at(offset, e.message().trim());
            return Err(problems.found);
        }
    };
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build();
    let mut schedules = Vec::new();
    let mut names = std::collections::HashSet::new();
    for entry in raw.schedule {
        if let Some(s) = parse_schedule(entry, &parser, base, &mut names, &mut problems) {
            schedules.push(s);
        }
    }
    let mut problems = problems.found;
    if problems.is_empty() {
        Ok(ScheduleFile {
            path: path.to_path_buf(),
            schedules,
        })
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// One `[[schedule]]` table; `None` (with its problems noted) when it
/// does not validate.
fn parse_schedule(
    entry: Spanned<RawSchedule>,
    parser: &croner::parser::CronParser,
    base: &CaptureSettings,
    names: &mut std::collections::HashSet<String>,
    problems: &mut Problems<'_>,
) -> Option<Schedule> {
    let start = entry.span().start;
    let raw = entry.into_inner();
    let name = raw.name.get_ref().trim().to_string();
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !valid_name {
        problems.at(
            raw.name.span().start,
            format!("schedule name {name:?} must be letters, digits, '-', '_' or '.'"),
        );
    } else if !names.insert(name.clone()) {
        problems.at(
            raw.name.span().start,
            format!("schedule name {name:?} is used twice in this file"),
        );
    }
    let cron = match parser.parse(raw.cron.get_ref().trim()) {
        Ok(c) => Some(c),
        Err(e) => {
            problems.at(
                raw.cron.span().start,
                format!("invalid cron expression {:?}: {e}", raw.cron.get_ref()),
            );
            None
        }
    };
    let timezone = match &raw.timezone {
        None => Some(Tz::UTC),
        Some(tz) => match Tz::from_str(tz.get_ref().trim()) {
            Ok(z) => Some(z),
            Err(_) => {
                problems.at(tz.span().start, format!("unknown time zone {:?}; use an IANA name such as Europe/Berlin or Asia/Damascus", tz.get_ref()));
                None
            }
        },
    };
    let urls = parse_urls(&raw.urls, problems);
    let (on_missed, overlap, jitter) = parse_policies(&raw, problems);
    let capture = match raw.capture {
        None => Some(base.clone()),
        Some(c) => {
            let at = c.span().start;
            match config::apply_capture(base, c.into_inner()) {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.at(at, e.to_string());
                    None
                }
            }
        }
    };
    let claims = parse_claims(raw.claim.unwrap_or_default(), problems);
    let (cron, timezone, capture) = (cron?, timezone?, capture?);
    Some(Schedule {
        name,
        cron_text: raw.cron.get_ref().trim().to_string(),
        cron,
        timezone,
        urls,
        on_missed,
        overlap,
        jitter,
        enabled: raw.enabled.is_none_or(Spanned::into_inner),
        capture,
        claims,
        file: problems.path.to_path_buf(),
        line: line_of(problems.text, start),
    })
}

fn parse_urls(raw: &Spanned<Vec<Spanned<String>>>, problems: &mut Problems<'_>) -> Vec<Url> {
    let mut urls = Vec::new();
    if raw.get_ref().is_empty() {
        problems.at(
            raw.span().start,
            "urls is empty; list at least one page to capture",
        );
    }
    for u in raw.get_ref() {
        match Url::parse(u.get_ref().trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                urls.push(url)
            }
            Ok(url) => problems.at(
                u.span().start,
                format!(
                    "{:?}: only http and https URLs can be captured (got {:?})",
                    u.get_ref(),
                    url.scheme()
                ),
            ),
            Err(e) => problems.at(
                u.span().start,
                format!("{:?} is not a valid URL ({e})", u.get_ref()),
            ),
        }
    }
    urls
}

/// `on_missed` (with `max_catch_up`), `overlap` and `jitter_secs`.
fn parse_policies(raw: &RawSchedule, problems: &mut Problems<'_>) -> (OnMissed, Overlap, Duration) {
    let cap = raw
        .max_catch_up
        .as_ref()
        .map(|c| *c.get_ref())
        .unwrap_or(10);
    if let Some(c) = &raw.max_catch_up {
        if *c.get_ref() == 0 {
            problems.at(c.span().start, "max_catch_up must be at least 1");
        }
    }
    let on_missed = match raw
        .on_missed
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span().start))
    {
        None | Some(("run_once", _)) => OnMissed::RunOnce,
        Some(("skip", _)) => OnMissed::Skip,
        Some(("run_all", _)) => OnMissed::RunAll { cap },
        Some((other, at)) => {
            problems.at(
                at,
                format!("on_missed {other:?} must be run_once, skip or run_all"),
            );
            OnMissed::RunOnce
        }
    };
    let overlap = match raw
        .overlap
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span().start))
    {
        None | Some(("skip", _)) => Overlap::Skip,
        Some(("queue", _)) => Overlap::Queue,
        Some((other, at)) => {
            problems.at(at, format!("overlap {other:?} must be skip or queue"));
            Overlap::Skip
        }
    };
    let jitter = match &raw.jitter_secs {
        None => Duration::ZERO,
        Some(j) if j.get_ref().is_finite() && *j.get_ref() >= 0.0 && *j.get_ref() <= 3600.0 => {
            Duration::from_secs_f64(*j.get_ref())
        }
        Some(j) => {
            problems.at(
                j.span().start,
                format!("jitter_secs {} must be between 0 and 3600", j.get_ref()),
            );
            Duration::ZERO
        }
    };
    (on_missed, overlap, jitter)
}

fn parse_claims(raw: Vec<Spanned<RawClaim>>, problems: &mut Problems<'_>) -> Vec<ScheduleClaim> {
    let mut claims = Vec::new();
    for c in raw {
        let at = c.span().start;
        let c = c.into_inner();
        let relation = match c.relation.as_deref() {
            None => Some(Relation::Supports),
            Some(r) => Relation::parse(r),
        };
        match relation {
            _ if c.text.trim().is_empty() || c.quote.trim().is_empty() => {
                problems.at(at, "a claim needs text and quote")
            }
            None => problems.at(
                at,
                format!(
                    "relation {:?} must be supports, refutes, context or first_appearance",
                    c.relation.unwrap_or_default()
                ),
            ),
            Some(relation) => claims.push(ScheduleClaim {
                text: c.text.trim().to_string(),
                quote: c.quote,
                prefix: c.prefix,
                suffix: c.suffix,
                relation,
            }),
        }
    }
    claims
}

/// The `*.toml` files of a directory, sorted.
pub fn schedule_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

/// Every file of a directory: the good ones parsed, and every problem.
/// Schedule names must be unique across files.
pub fn load_dir(dir: &Path, base: &CaptureSettings) -> (Vec<ScheduleFile>, Vec<Problem>) {
    let paths = match schedule_paths(dir) {
        Ok(p) => p,
        Err(e) => {
            return (
                Vec::new(),
                vec![Problem {
                    file: dir.to_path_buf(),
                    line: 0,
                    message: format!("cannot read the schedules directory: {e}"),
                }],
            )
        }
    };
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(Problem {
                file: path.clone(),
                line: 0,
                message: format!("cannot read: {e}"),
            }),
            Ok(text) => match parse_file(&path, &text, base) {
                Ok(f) => files.push(f),
                Err(p) => problems.extend(p),
            },
        }
    }
    let mut seen: std::collections::HashMap<String, PathBuf> = Default::default();
    for f in &files {
        for s in &f.schedules {
            if let Some(other) = seen.insert(s.name.clone(), f.path.clone()) {
                problems.push(Problem {
                    file: f.path.clone(),
                    line: s.line,
                    message: format!(
                        "schedule name {:?} is also used in {}",
                        s.name,
                        other.display()
                    ),
                });
            }
        }
    }
    (files, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScheduleFile, Vec<Problem>> {
        parse_file(
            Path::new("schedules/news.toml"),
            text,
            &CaptureSettings::default(),
        )
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_full_schedule_parses_with_its_options() {
        let f = parse(
            r#"
# Syrian Coalition news, four times a day
[[schedule]]
name = "aleppo-reports"
cron = "0 */6 * * *"
timezone = "Asia/Damascus"
urls = ["https://aleppo-news.example/category/reports/"]
on_missed = "run_all"
max_catch_up = 3
overlap = "queue"
jitter_secs = 30
[schedule.capture]
max_resource_bytes = 1000000
"#,
        )
        .unwrap();
        let s = &f.schedules[0];
        assert_eq!(s.name, "aleppo-reports");
        assert_eq!(s.line, 3);
        assert_eq!(s.on_missed, OnMissed::RunAll { cap: 3 });
        assert_eq!(s.overlap, Overlap::Queue);
        assert_eq!(s.jitter, Duration::from_secs(30));
        assert_eq!(s.capture.limits.max_body_bytes, 1_000_000);
        // Damascus is UTC+3 (no DST since 2022): 06:00 local is 03:00 UTC.
        assert_eq!(
            s.next_after(utc("2026-11-24T01:00:00Z")),
            Some(utc("2026-11-24T03:00:00Z"))
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let problems = parse(
            "[[schedule]]\nname = \"a\"\ncron = \"61 * * * *\"\ntimezone = \"Mars/Olympus\"\nurls = [\"ftp://x.example/\", \"not a url\"]\non_missed = \"sometimes\"\n",
        )
        .unwrap_err();
        let shown: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert!(
            shown[0].starts_with("schedules/news.toml:3: invalid cron expression \"61 * * * *\""),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("schedules/news.toml:4: unknown time zone \"Mars/Olympus\""),
            "{shown:?}"
        );
        assert!(
            shown[2]
                .starts_with("schedules/news.toml:5: \"ftp://x.example/\": only http and https"),
            "{shown:?}"
        );
        assert!(
            shown[3].starts_with("schedules/news.toml:5: \"not a url\" is not a valid URL"),
            "{shown:?}"
        );
        assert!(
            shown[4].starts_with("schedules/news.toml:6: on_missed \"sometimes\""),
            "{shown:?}"
        );
        let unknown = parse("[[schedule]]\nname = \"a\"\ncron = \"* * * * *\"\nurls = [\"https://x.example/\"]\nevery = 5\n").unwrap_err();
        assert_eq!(unknown[0].line, 5, "{unknown:?}");
        assert!(
            unknown[0].message.contains("unknown field `every`"),
            "{unknown:?}"
        );
    }

    #[test]
    fn an_optional_leading_seconds_field_is_accepted() {
        let f = parse("[[schedule]]\nname = \"fast\"\ncron = \"*/5 * * * * *\"\nurls = [\"https://x.example/\"]\n").unwrap();
        let fires = f.schedules[0].fires_between(
            utc("2026-11-24T10:00:00Z"),
            utc("2026-11-24T10:00:30Z"),
            100,
        );
        assert_eq!(fires.len(), 6);
        assert_eq!(fires[0], utc("2026-11-24T10:00:05Z"));
    }

    /// Europe/Berlin springs forward on 2026-03-29 (02:00 → 03:00) and falls
    /// back on 2026-10-25 (03:00 → 02:00). The `cron` crate skips the first
    /// and fires twice in the second; croner must do neither.
    #[test]
    fn dst_gap_and_overlap_fire_exactly_once() {
        let f = parse("[[schedule]]\nname = \"nightly\"\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\nurls = [\"https://x.example/\"]\n").unwrap();
        let s = &f.schedules[0];
        // Gap: 02:30 does not exist on 29 March; the run happens at the first
        // real instant after the gap (03:00 CEST = 01:00 UTC), once.
        let gap = s.fires_between(utc("2026-03-28T12:00:00Z"), utc("2026-03-29T12:00:00Z"), 10);
        assert_eq!(gap, vec![utc("2026-03-29T01:00:00Z")]);
        // Overlap: 02:30 happens twice on 25 October; the run happens once,
        // at the first of them (02:30 CEST = 00:30 UTC).
        let overlap = s.fires_between(utc("2026-10-24T12:00:00Z"), utc("2026-10-25T12:00:00Z"), 10);
        assert_eq!(overlap, vec![utc("2026-10-25T00:30:00Z")]);
        // And the days around them are ordinary.
        let week = s.fires_between(utc("2026-10-22T00:00:00Z"), utc("2026-10-29T00:00:00Z"), 10);
        assert_eq!(week.len(), 7);
    }

    #[test]
    fn latest_fires_keeps_the_most_recent() {
        let f = parse(
            "[[schedule]]\nname = \"m\"\ncron = \"* * * * *\"\nurls = [\"https://x.example/\"]\n",
        )
        .unwrap();
        let (kept, count) = f.schedules[0].latest_fires_between(
            utc("2026-11-24T10:00:00Z"),
            utc("2026-11-24T11:00:00Z"),
            2,
            1000,
        );
        assert_eq!(count, 60);
        assert_eq!(
            kept,
            vec![utc("2026-11-24T10:59:00Z"), utc("2026-11-24T11:00:00Z")]
        );
    }
}
