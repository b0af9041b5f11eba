//! `schedule validate|list|next`.

use std::process::ExitCode;

use super::output::print_json;
use super::{Failure, ScheduleCommand};
use custody::config::Config;

pub fn schedule_command(command: &ScheduleCommand, config: &Config) -> Result<ExitCode, Failure> {
    use custody::scheduler::load_dir;
    let dir = match command {
        ScheduleCommand::Validate { dir }
        | ScheduleCommand::List { dir, .. }
        | ScheduleCommand::Next { dir, .. } => dir
            .clone()
            .unwrap_or_else(|| config.daemon.schedules_dir.clone()),
    };
    let (files, problems) = load_dir(&dir, &config.capture);
    for p in &problems {
        println!("{p}");
    }
    if matches!(command, ScheduleCommand::Validate { .. }) {
        for s in files.iter().flat_map(|f| &f.schedules) {
            for u in &s.urls {
                if let Err(e) = custody::capture::check_seed(u.as_str(), s.capture.allow_private) {
                    eprintln!(
                        "warning: {}:{}: schedule {}: {e} (the daemon refuses it; set capture.allow_private_networks = true or run it with --allow-private)",
                        s.file.display(),
                        s.line,
                        s.name
                    );
                }
            }
        }
    }
    let count: usize = files.iter().map(|f| f.schedules.len()).sum();
    let now = chrono::Utc::now();
    match command {
        ScheduleCommand::Validate { .. } => {
            if problems.is_empty() {
                eprintln!("{count} schedules in {} files: all valid", files.len());
            } else {
                eprintln!("{} problems in {}", problems.len(), dir.display());
            }
        }
        ScheduleCommand::List { json, .. } | ScheduleCommand::Next { json, .. } => {
            let times = match command {
                ScheduleCommand::Next { count, .. } => *count,
                _ => 1,
            };
            for file in &files {
                for s in &file.schedules {
                    let mut next = Vec::new();
                    let mut t = now;
                    while next.len() < times {
                        let Some(n) = s.next_after(t) else { break };
                        next.push(n);
                        t = n;
                    }
                    if *json {
                        let value = serde_json::json!({
                            "name": s.name,
                            "file": s.file.display().to_string(),
                            "line": s.line,
                            "cron": s.cron_text,
                            "timezone": s.timezone.name(),
                            "enabled": s.enabled,
                            "urls": s.urls.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                            "next": next.iter().map(|n| serde_json::json!({
                                "local": n.with_timezone(&s.timezone).to_rfc3339(),
                                "utc": custody::model::rfc3339_utc(n),
                            })).collect::<Vec<_>>(),
                        });
                        print_json(&value)?;
                    } else {
                        let state = if s.enabled {
                            ""
                        } else {
                            "  (paused: enabled = false)"
                        };
                        println!(
                            "{}  {:?} {}  {} URL(s){state}",
                            s.name,
                            s.cron_text,
                            s.timezone.name(),
                            s.urls.len()
                        );
                        for n in &next {
                            println!(
                                "    {}  ({})",
                                n.with_timezone(&s.timezone).format("%Y-%m-%d %H:%M:%S %Z"),
                                custody::model::rfc3339_utc(n)
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
