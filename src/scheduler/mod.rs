//! Schedules and their runs: which captures are due, and when.
//!
//! This module decides; it never fetches. [`schedule`] parses and validates
//! the schedule files. [`plan()`] turns schedules and the clock into run
//! records: every due run is written to the index before it starts, unique
//! per (schedule, URL, scheduled instant), so a restart neither loses nor
//! repeats one; instants that fell due while the daemon was down are handled
//! by the schedule's `on_missed` policy. Runs are claimed with leases
//! (`Index::claim_run`), so a run whose worker died is taken up again once
//! its lease expires.

pub mod edit;
pub mod plan;
pub mod schedule;

pub use edit::{edit_text, file_version, EditError, ScheduleEdit};
pub use plan::{plan, Planned};
pub use schedule::{load_dir, parse_file, OnMissed, Overlap, Problem, Schedule, ScheduleFile};
