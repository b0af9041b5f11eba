//! Editing one schedule in its file (the UI's and the API's edit, pause and
//! resume).
//!
//! Schedules stay files, so an edit is a change to the file the archivist
//! wrote: only the values that change are rewritten, in place, and every
//! comment, every other schedule, `[schedule.capture]` table and claim stay
//! as they were. A key the schedule does not have yet (`enabled = false`
//! on a first pause) is added on the line after its `name`. The new text is
//! accepted only when it validates as `custody schedule validate` checks a
//! file and reads back with exactly the values asked for, the same
//! schedules in the same order; anything else (a schedule written as an
//! inline table, say) is refused and the file is left alone.

use std::ops::Range;
use std::path::Path;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::schedule::{parse_file, RawFile, RawSchedule};
use crate::capture::CaptureSettings;

/// What to change in one schedule; `None` keeps a value as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleEdit {
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub urls: Option<Vec<String>>,
    pub on_missed: Option<String>,
    pub overlap: Option<String>,
    /// `false` pauses the schedule, `true` resumes it.
    pub enabled: Option<bool>,
}

impl ScheduleEdit {
    /// The changes as (key, TOML value) pairs, in the order they are
    /// written when added.
    fn values(&self) -> Vec<(&'static str, String)> {
        let q = |s: &str| toml::Value::String(s.trim().to_string()).to_string();
        let mut v = Vec::new();
        if let Some(c) = &self.cron {
            v.push(("cron", q(c)));
        }
        if let Some(t) = &self.timezone {
            v.push(("timezone", q(t)));
        }
        if let Some(urls) = &self.urls {
            let list: Vec<String> = urls.iter().map(|u| q(u)).collect();
            v.push(("urls", format!("[{}]", list.join(", "))));
        }
        if let Some(m) = &self.on_missed {
            v.push(("on_missed", q(m)));
        }
        if let Some(o) = &self.overlap {
            v.push(("overlap", q(o)));
        }
        if let Some(e) = self.enabled {
            v.push(("enabled", e.to_string()));
        }
        v
    }
}

/// The version of a schedule file an editor read: the SHA-256 of its text.
/// An edit made against an older version is refused, so two archivists
/// editing at once cannot overwrite each other's change unseen.
pub fn file_version(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Why an edit was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// The file has no schedule of that name.
    NoSuchSchedule,
    /// What the archivist asked for does not validate, or the file cannot
    /// be edited in place; one line.
    Refused(String),
}

/// The text of the file at `path` with schedule `name` changed as `edit`
/// says and nothing else changed.
pub fn edit_text(
    path: &Path,
    text: &str,
    name: &str,
    edit: &ScheduleEdit,
    base: &CaptureSettings,
) -> Result<String, EditError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        EditError::Refused(format!(
            "{} does not parse ({}); run `custody schedule validate`",
            path.display(),
            e.message().trim()
        ))
    })?;
    let entry = raw
        .schedule
        .iter()
        .map(|e| e.get_ref())
        .find(|s| s.name.get_ref().trim() == name)
        .ok_or(EditError::NoSuchSchedule)?;
    let mut changes: Vec<(Range<usize>, String)> = Vec::new();
    let name_end = entry.name.span().end;
    let after_name = text[name_end..]
        .find('\n')
        .map_or(text.len(), |i| name_end + i + 1);
    // A key is added on a line of its own, which only a table written with
    // one key a line (`[[schedule]]`) takes.
    let line_start = text[..entry.name.span().start]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let own_line = text[line_start..entry.name.span().start]
        .trim()
        .strip_prefix("name")
        .is_some_and(|rest| rest.trim() == "=");
    for (key, value) in edit.values() {
        match value_span(entry, key) {
            Some(span) => changes.push((span, value)),
            None if !own_line => return Err(in_place(name)),
            None if after_name == text.len() && !text.ends_with('\n') => {
                changes.push((after_name..after_name, format!("\n{key} = {value}")))
            }
            None => changes.push((after_name..after_name, format!("{key} = {value}\n"))),
        }
    }
    // From the end backwards, so each span still points at its text; keys
    // added at one place keep their order.
    changes.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    let mut edited = text.to_string();
    let mut inserted_at: Option<usize> = None;
    let mut pending = String::new();
    for (span, value) in changes {
        if span.is_empty() {
            inserted_at = Some(span.start);
            pending.push_str(&value);
            continue;
        }
        edited.replace_range(span, &value);
    }
    if let Some(at) = inserted_at {
        edited.insert_str(at, &pending);
    }
    parse_file(path, &edited, base)
        .map_err(|problems| EditError::Refused(super::schedule::one_line(&problems)))?;
    reads_back(text, &edited, name, edit)?;
    Ok(edited)
}

fn in_place(name: &str) -> EditError {
    EditError::Refused(format!(
        "schedule {name:?} cannot be edited in place (is it written as an inline table?); edit its file by hand"
    ))
}

/// The place of `key`'s value in the schedule's table, when it has one.
fn value_span(s: &RawSchedule, key: &str) -> Option<Range<usize>> {
    fn span<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
        v.as_ref().map(Spanned::span)
    }
    match key {
        "cron" => Some(s.cron.span()),
        "timezone" => span(&s.timezone),
        "urls" => Some(s.urls.span()),
        "on_missed" => span(&s.on_missed),
        "overlap" => span(&s.overlap),
        "enabled" => span(&s.enabled),
        _ => None,
    }
}

/// The edited text holds the same schedules as before, in the same order,
/// and the edited one has exactly the values asked for.
fn reads_back(before: &str, after: &str, name: &str, edit: &ScheduleEdit) -> Result<(), EditError> {
    let cannot = || in_place(name);
    let names = |text: &str| -> Option<Vec<String>> {
        let raw: RawFile = toml::from_str(text).ok()?;
        Some(
            raw.schedule
                .iter()
                .map(|s| s.get_ref().name.get_ref().trim().to_string())
                .collect(),
        )
    };
    if names(before) != names(after) {
        return Err(cannot());
    }
    let raw: RawFile = toml::from_str(after).map_err(|_| cannot())?;
    let s = raw
        .schedule
        .iter()
        .map(|e| e.get_ref())
        .find(|s| s.name.get_ref().trim() == name)
        .ok_or_else(cannot)?;
    let same = |wanted: &Option<String>, found: &Option<Spanned<String>>| {
        wanted.is_none()
            || wanted.as_deref().map(str::trim) == found.as_ref().map(|v| v.get_ref().trim())
    };
    let urls: Vec<&str> = s
        .urls
        .get_ref()
        .iter()
        .map(|u| u.get_ref().trim())
        .collect();
    let holds = same(&edit.cron, &Some(s.cron.clone()))
        && same(&edit.timezone, &s.timezone)
        && same(&edit.on_missed, &s.on_missed)
        && same(&edit.overlap, &s.overlap)
        && edit
            .urls
            .as_ref()
            .is_none_or(|want| want.iter().map(|u| u.trim()).eq(urls.iter().copied()))
        && edit
            .enabled
            .is_none_or(|e| s.enabled.as_ref().map(|v| *v.get_ref()) == Some(e));
    if holds {
        Ok(())
    } else {
        Err(cannot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two schedules written by hand, with comments, capture limits and a
    /// claim (the HTTP tests edit the same file).
    const FILE: &str = include_str!("../../tests/fixtures/schedules-by-hand.toml");

    fn edit(name: &str, e: &ScheduleEdit) -> Result<String, EditError> {
        edit_text(
            Path::new("s.toml"),
            FILE,
            name,
            e,
            &CaptureSettings::default(),
        )
    }

    #[test]
    fn a_pause_adds_one_line_and_keeps_everything_else() {
        let paused = edit(
            "aleppo",
            &ScheduleEdit {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            paused,
            FILE.replace("# the news blog\n", "# the news blog\nenabled = false\n")
        );
        let file = parse_file(Path::new("s.toml"), &paused, &CaptureSettings::default()).unwrap();
        assert!(!file.schedules[0].enabled);
        assert!(file.schedules[1].enabled);
        assert_eq!(file.schedules[0].claims.len(), 1);
        // Resumed, the key is rewritten where it is.
        let resumed = edit_text(
            Path::new("s.toml"),
            &paused,
            "aleppo",
            &ScheduleEdit {
                enabled: Some(true),
                ..Default::default()
            },
            &CaptureSettings::default(),
        )
        .unwrap();
        assert_eq!(resumed, paused.replace("enabled = false", "enabled = true"));
    }

    #[test]
    fn an_edit_rewrites_values_in_place() {
        let e = ScheduleEdit {
            cron: Some(" */30 * * * * ".into()),
            timezone: Some("Europe/Berlin".into()),
            urls: Some(vec![
                "https://reliefweb.int/".into(),
                "https://a.example/\"x".into(),
            ]),
            enabled: Some(false),
            ..Default::default()
        };
        let out = edit("reliefweb", &e).unwrap();
        let expected = FILE
            .replace("\"30 7 * * *\"", "\"*/30 * * * *\"")
            .replace("\"Asia/Damascus\"", "\"Europe/Berlin\"")
            .replace(
                "[\"https://reliefweb.int/country/syr\"]",
                "[\"https://reliefweb.int/\", 'https://a.example/\"x']",
            )
            .replace("enabled = true", "enabled = false");
        assert_eq!(out, expected);
        // The first schedule is untouched; several added keys keep their
        // order.
        let out = edit(
            "aleppo",
            &ScheduleEdit {
                timezone: Some("UTC".into()),
                overlap: Some("queue".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            out.contains("# the news blog\ntimezone = \"UTC\"\noverlap = \"queue\"\ncron"),
            "{out}"
        );
    }

    #[test]
    fn what_would_not_validate_is_refused() {
        let bad = |e: ScheduleEdit| match edit("aleppo", &e) {
            Err(EditError::Refused(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(bad(ScheduleEdit {
            cron: Some("61 * * * *".into()),
            ..Default::default()
        })
        .contains("invalid cron expression"));
        assert!(bad(ScheduleEdit {
            timezone: Some("Mars/Olympus".into()),
            ..Default::default()
        })
        .contains("unknown time zone"));
        assert!(bad(ScheduleEdit {
            urls: Some(vec![]),
            ..Default::default()
        })
        .contains("urls is empty"));
        assert!(bad(ScheduleEdit {
            urls: Some(vec!["file:///etc/passwd".into()]),
            ..Default::default()
        })
        .contains("only http and https"));
        assert_eq!(
            edit("nobody", &ScheduleEdit::default()),
            Err(EditError::NoSuchSchedule)
        );
    }

    #[test]
    fn an_inline_table_or_an_unterminated_file_is_handled() {
        let inline = "schedule = [{ name = \"a\", cron = \"0 6 * * *\", urls = [\"https://a.example/\"] }]\n";
        let e = ScheduleEdit {
            enabled: Some(false),
            ..Default::default()
        };
        let base = CaptureSettings::default();
        match edit_text(Path::new("i.toml"), inline, "a", &e, &base) {
            Err(EditError::Refused(why)) => assert!(why.contains("edit"), "{why}"),
            other => panic!("{other:?}"),
        }
        // In an inline table, values are still rewritten in place.
        let e = ScheduleEdit {
            cron: Some("0 7 * * *".into()),
            ..Default::default()
        };
        let out = edit_text(Path::new("i.toml"), inline, "a", &e, &base).unwrap();
        assert_eq!(out, inline.replace("0 6", "0 7"));
        let bare =
            "[[schedule]]\nurls = [\"https://a.example/\"]\ncron = \"0 6 * * *\"\nname = \"a\"";
        let e = ScheduleEdit {
            enabled: Some(false),
            ..Default::default()
        };
        let out = edit_text(Path::new("b.toml"), bare, "a", &e, &base).unwrap();
        assert_eq!(out, format!("{bare}\nenabled = false"));
    }
}
