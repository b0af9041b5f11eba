//! Turning schedules and the clock into recorded runs.
//!
//! Each (schedule, URL) has a planning mark in the index: the instant up to
//! which its fire times have been turned into runs. On every tick the fire
//! times after the mark are recorded and the mark moves to now, in one
//! transaction. Fire times older than `grace` are *missed* (the daemon was
//! down or stalled) and go through the schedule's `on_missed` policy; the
//! others are ordinary runs. A schedule seen for the first time starts from
//! now: it does not backfill its past.
//!
//! A paused schedule (`enabled = false`) records no runs, and its mark
//! still moves to now on every pass: the instants it was paused for were
//! not missed, so resuming it starts at its next instant instead of
//! catching up. Its runs that were due and never started are recorded as
//! skipped; one that has started, or waits for its retry, finishes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

use super::schedule::{OnMissed, Overlap, Schedule};
use crate::index::{IndexError, RunIndex};
use crate::model::{NewRun, RunState};

/// What one planning pass recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Planned {
    pub runs: u64,
    pub catch_up: u64,
    pub missed_skipped: u64,
    /// Waiting runs of paused schedules, recorded as skipped.
    pub paused_skipped: u64,
}

/// Why a paused schedule's waiting run was skipped.
pub const PAUSED: &str = "the schedule was paused (enabled = false) before this run started";

/// Most ordinary fire times recorded per URL in one pass (a schedule firing
/// every second, after a stall, must not flood the index).
const MAX_PER_PASS: usize = 1000;

pub async fn plan(
    index: &dyn RunIndex,
    schedules: &[Schedule],
    now: DateTime<Utc>,
    grace: Duration,
) -> Result<Planned, IndexError> {
    let mut planned = Planned::default();
    let missed_before =
        now - chrono::Duration::from_std(grace).unwrap_or_else(|_| chrono::Duration::seconds(5));
    for s in schedules.iter().filter(|s| !s.enabled) {
        for url in &s.urls {
            index.plan_runs(&s.name, url.as_str(), &[], now).await?;
        }
        planned.paused_skipped += index.skip_waiting_runs(&s.name, PAUSED, now).await?;
    }
    for s in schedules.iter().filter(|s| s.enabled) {
        for url in &s.urls {
            let url = url.as_str();
            let Some(from) = index.planned_until(&s.name, url).await? else {
                index.plan_runs(&s.name, url, &[], now).await?;
                continue;
            };
            if from >= now {
                continue;
            }
            let mut runs = Vec::new();
            if from < missed_before {
                let keep = match s.on_missed {
                    OnMissed::RunOnce => 1,
                    OnMissed::Skip => 0,
                    OnMissed::RunAll { cap } => cap,
                };
                let (latest, count) = s.latest_fires_between(from, missed_before, keep, 1_000_000);
                planned.missed_skipped += (count - latest.len()) as u64;
                for at in latest {
                    runs.push(new_run(s, at, now, true));
                }
            }
            for at in s.fires_between(from.max(missed_before), now, MAX_PER_PASS) {
                runs.push(new_run(s, at, now, false));
            }
            if runs.is_empty() {
                index.plan_runs(&s.name, url, &[], now).await?;
                continue;
            }
            if s.overlap == Overlap::Skip && index.has_active_run(&s.name, url).await? {
                for r in &mut runs {
                    r.state = RunState::Skipped;
                    r.error = Some(
                        "the previous run of this URL was still in progress (overlap = \"skip\")"
                            .into(),
                    );
                }
            }
            planned.catch_up += runs
                .iter()
                .filter(|r| r.catch_up && r.state == RunState::Due)
                .count() as u64;
            planned.runs += index.plan_runs(&s.name, url, &runs, now).await?;
        }
    }
    Ok(planned)
}

fn new_run(s: &Schedule, at: DateTime<Utc>, now: DateTime<Utc>, catch_up: bool) -> NewRun {
    let jitter = if s.jitter.is_zero() {
        chrono::Duration::zero()
    } else {
        let ms = rand::rng().random_range(0..=s.jitter.as_millis() as i64);
        chrono::Duration::milliseconds(ms)
    };
    let start = if catch_up { now } else { at };
    NewRun {
        scheduled_for: at,
        not_before: start + jitter,
        catch_up,
        state: RunState::Due,
        error: None,
    }
}
