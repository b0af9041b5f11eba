//! Every logged row against its leaf, for `verify --all`: evidence links,
//! claim versions, custody events, fixity checks (and the quarantine they
//! imply), passage checks, and the captures the log holds. A row edited,
//! added or deleted by hand is named; so is a leaf without its row.
//!
//! Leaves are read in pages and kept compactly (a hash per event, the data
//! only of links and claims), so memory grows with the number of objects,
//! not with the bytes of the log.

use std::collections::{BTreeMap, BTreeSet};

use super::Check;
use crate::archive::{Archive, ArchiveError};
use crate::index::LinkFilter;
use crate::model::{CaptureId, FixityEvent, Sha256};
use crate::tlog::leaf;

/// Leaves read at a time.
const PAGE: u64 = 10_000;

/// The custody event a capture's row is written with (`put_capture`).
pub use crate::model::first_event as captured_event;

/// What the log says, kept compactly.
#[derive(Default)]
struct Logged {
    captures: BTreeMap<String, u64>,
    links: BTreeMap<String, Vec<(u64, String)>>,
    claims: BTreeMap<String, Vec<(u64, String)>>,
    /// Per object (`kind:id`): each event's leaf index and hash.
    events: BTreeMap<String, Vec<(u64, Sha256)>>,
    /// Per link: the captures its passage was re-checked in, and whether
    /// it was there.
    rechecks: BTreeMap<String, Vec<(String, bool)>>,
    /// Per claim: the versions its `claim_added`/`claim_edited` events name.
    claim_events: BTreeMap<String, BTreeSet<u64>>,
    fixity: BTreeMap<String, Vec<(u64, Sha256)>>,
    event_leaves: u64,
}

async fn read_log(archive: &Archive) -> Result<Logged, ArchiveError> {
    let index = archive.index();
    let size = index.log_size().await?;
    let mut logged = Logged::default();
    let mut from = 0;
    while from < size {
        let to = (from + PAGE).min(size);
        for l in index.log_leaves(from, to).await? {
            match l.kind.as_str() {
                "capture" => {
                    logged.captures.insert(l.object_id, l.index);
                }
                "link" => logged
                    .links
                    .entry(l.object_id)
                    .or_default()
                    .push((l.index, l.data)),
                "claim" => logged
                    .claims
                    .entry(l.object_id)
                    .or_default()
                    .push((l.index, l.data)),
                "fixity" => logged
                    .fixity
                    .entry(l.object_id)
                    .or_default()
                    .push((l.index, l.leaf_hash)),
                "event" => {
                    logged.event_leaves += 1;
                    note_event(&mut logged, &l.object_id, &l.data);
                    logged
                        .events
                        .entry(l.object_id)
                        .or_default()
                        .push((l.index, l.leaf_hash));
                }
                _ => {}
            }
        }
        from = to;
    }
    Ok(logged)
}

/// Keeps what passage checks and legacy claims are checked against.
fn note_event(logged: &mut Logged, object: &str, data: &str) {
    let interesting = object.starts_with("link:") || object.starts_with("claim:");
    if !interesting {
        return;
    }
    let Ok(e) = serde_json::from_str::<serde_json::Value>(data) else {
        return;
    };
    if let Some(link) = object.strip_prefix("link:") {
        if e["event"] == "rechecked" {
            let capture = e["detail"]["capture"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let present = e["outcome"] == "present";
            logged
                .rechecks
                .entry(link.to_string())
                .or_default()
                .push((capture, present));
        }
    } else if let Some(claim) = object.strip_prefix("claim:") {
        if matches!(e["event"].as_str(), Some("claim_added" | "claim_edited")) {
            let version = e["detail"]["version"].as_u64().unwrap_or(1);
            logged
                .claim_events
                .entry(claim.to_string())
                .or_default()
                .insert(version);
        }
    }
}

/// Every logged row against its leaf (see the module documentation).
pub async fn check_rows(archive: &Archive) -> Result<Vec<Check>, ArchiveError> {
    let logged = read_log(archive).await?;
    let mut checks = Vec::new();
    let captures = check_captures(archive, &logged, &mut checks).await?;
    let links = check_links(archive, &logged, &mut checks).await?;
    let claims = check_claims(archive, &logged, &mut checks).await?;
    check_events(archive, &logged, &captures, &links, &claims, &mut checks).await?;
    check_fixity(archive, &logged, &mut checks).await?;
    check_passages(archive, &logged, &links, &mut checks).await?;
    check_counts(archive, &logged, &mut checks).await?;
    Ok(checks)
}

/// Captures the log holds but the index lacks (rows with no leaf are
/// found by `verify_capture`).
async fn check_captures(
    archive: &Archive,
    logged: &Logged,
    checks: &mut Vec<Check>,
) -> Result<Vec<CaptureId>, ArchiveError> {
    let ids: Vec<CaptureId> = archive
        .index()
        .captures(None)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    let indexed: BTreeSet<&str> = ids.iter().map(|c| c.as_str()).collect();
    let mut missing = 0;
    for (id, at) in &logged.captures {
        if !indexed.contains(id.as_str()) {
            missing += 1;
            checks.push(Check::failed(
                format!("log leaf {at}"),
                format!("the log holds capture {id} that the index lacks"),
            ));
        }
    }
    if missing == 0 {
        checks.push(Check::ok(
            "log against index",
            Some(format!(
                "every capture in the log ({}) is in the index",
                logged.captures.len()
            )),
        ));
    }
    Ok(ids)
}

async fn check_links(
    archive: &Archive,
    logged: &Logged,
    checks: &mut Vec<Check>,
) -> Result<Vec<String>, ArchiveError> {
    let rows = archive.index().links(&LinkFilter::default()).await?;
    let mut bad = 0;
    for l in &rows {
        let item = format!("link {}", l.id);
        let leaves = logged
            .links
            .get(&l.id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let expected = leaf::link_leaf(l).data;
        match leaves {
            [(_, data)] if *data == expected => {}
            [] => {
                bad += 1;
                checks.push(Check::failed(item, "in the index but not in the log"));
            }
            [(at, data)] => {
                bad += 1;
                checks.push(Check::failed(item, json_difference(&expected, data, *at)));
            }
            many => {
                bad += 1;
                checks.push(Check::failed(
                    item,
                    format!("in the log {} times", many.len()),
                ));
            }
        }
    }
    let ids: BTreeSet<&str> = rows.iter().map(|l| l.id.as_str()).collect();
    for (id, leaves) in &logged.links {
        if !ids.contains(id.as_str()) {
            bad += 1;
            let at = leaves[0].0;
            checks.push(Check::failed(
                format!("link {id}"),
                format!("in the log (leaf {at}) but not in the index: the row was removed"),
            ));
        }
    }
    if bad == 0 {
        checks.push(Check::ok(
            format!("{} evidence links", rows.len()),
            Some("as logged".into()),
        ));
    }
    Ok(rows.into_iter().map(|l| l.id).collect())
}

/// Both sides as JSON, and the first field where they part.
fn json_difference(index: &str, logged: &str, at: u64) -> String {
    let (a, b) = (
        serde_json::from_str(index).unwrap_or_default(),
        serde_json::from_str(logged).unwrap_or_default(),
    );
    match super::verify::first_difference(&a, &b, "") {
        Some((path, ours, theirs)) => {
            format!("its {path} is {ours} in the index, {theirs} in the log (leaf {at})")
        }
        None => format!("differs from its log leaf {at}"),
    }
}

async fn check_claims(
    archive: &Archive,
    logged: &Logged,
    checks: &mut Vec<Check>,
) -> Result<Vec<String>, ArchiveError> {
    let index = archive.index();
    let mut ids: BTreeSet<String> = index
        .claims(None)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.extend(logged.claims.keys().cloned());
    let (mut bad, mut versions, mut legacy) = (0, 0, 0);
    for id in &ids {
        let rows = index.claim_versions(id).await?;
        let leaves = logged.claims.get(id).map(Vec::as_slice).unwrap_or_default();
        for c in &rows {
            versions += 1;
            let item = format!("claim {id} version {}", c.version);
            let expected = leaf::claim_leaf(c).data;
            match leaves
                .iter()
                .find(|(_, d)| claim_version(d) == Some(c.version))
            {
                Some((_, data)) if *data == expected => {}
                Some((at, data)) => {
                    bad += 1;
                    checks.push(Check::failed(item, json_difference(&expected, data, *at)));
                }
                None if logged
                    .claim_events
                    .get(id)
                    .is_some_and(|v| v.contains(&u64::from(c.version))) =>
                {
                    // Made before claims were leaves: its event is logged,
                    // its text is not.
                    legacy += 1;
                }
                None => {
                    bad += 1;
                    checks.push(Check::failed(item, "in the index but not in the log"));
                }
            }
        }
        for (at, data) in leaves {
            let v = claim_version(data);
            if !rows.iter().any(|c| Some(c.version) == v) {
                bad += 1;
                checks.push(Check::failed(
                    format!("claim {id} version {}", v.unwrap_or(0)),
                    format!("in the log (leaf {at}) but not in the index: the row was removed"),
                ));
            }
        }
    }
    if bad == 0 {
        let note = (legacy > 0).then(|| {
            format!("{legacy} made before claims were logged: their events are in the log, their text is not")
        });
        checks.push(Check::ok(format!("{versions} claim versions"), note));
    }
    Ok(ids.into_iter().collect())
}

fn claim_version(data: &str) -> Option<u32> {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()?
        .get("version")?
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
}

/// Each object's custody events, in order, against its event leaves (a
/// capture's first event, written with its row, is checked with the
/// capture).
async fn check_events(
    archive: &Archive,
    logged: &Logged,
    captures: &[CaptureId],
    links: &[String],
    claims: &[String],
    checks: &mut Vec<Check>,
) -> Result<(), ArchiveError> {
    let mut objects: BTreeSet<String> = logged.events.keys().cloned().collect();
    objects.extend(captures.iter().map(|c| format!("capture:{c}")));
    objects.extend(links.iter().map(|l| format!("link:{l}")));
    objects.extend(claims.iter().map(|c| format!("claim:{c}")));
    let mut bad = 0;
    for object in &objects {
        let Some((kind, id)) = object.split_once(':') else {
            continue;
        };
        let mut rows = archive.index().events(kind, id).await?;
        if kind == "capture"
            && rows
                .first()
                .is_some_and(|e| e.event == "captured" || e.event == "imported")
        {
            rows.remove(0);
        }
        let leaves = logged
            .events
            .get(object)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let item = format!("custody events of {kind} {id}");
        let first_mismatch =
            (0..rows.len().max(leaves.len())).find(|&i| match (rows.get(i), leaves.get(i)) {
                (Some(r), Some((_, hash))) => leaf::event_leaf(r).hash() != *hash,
                _ => true,
            });
        if let Some(i) = first_mismatch {
            bad += 1;
            let detail = match (rows.get(i), leaves.get(i)) {
                (Some(r), Some((at, _))) => format!(
                    "event {} ({} at {}) is not what leaf {at} logged",
                    i + 1,
                    r.event,
                    crate::model::rfc3339_utc(&r.at)
                ),
                (Some(r), None) => format!(
                    "event {} ({} at {}) is in the index but not in the log",
                    i + 1,
                    r.event,
                    crate::model::rfc3339_utc(&r.at)
                ),
                (None, Some((at, _))) => format!(
                    "the log holds {} events (leaf {at} among them), the index {}: rows were removed",
                    leaves.len(),
                    rows.len()
                ),
                (None, None) => unreachable!("a mismatch has one side"),
            };
            checks.push(Check::failed(item, detail));
        }
    }
    if bad == 0 {
        checks.push(Check::ok(
            format!("custody events of {} objects", objects.len()),
            Some("as logged".into()),
        ));
    }
    Ok(())
}

/// Each object's fixity checks against their leaves, and its quarantine
/// against what they imply.
async fn check_fixity(
    archive: &Archive,
    logged: &Logged,
    checks: &mut Vec<Check>,
) -> Result<(), ArchiveError> {
    let index = archive.index();
    let files = index.warc_files().await?;
    let mut keys: BTreeSet<String> = logged.fixity.keys().cloned().collect();
    keys.extend(files.iter().map(|f| f.key.clone()));
    let mut bad = 0;
    for key in &keys {
        let rows = index.fixity_events(key).await?;
        let leaves = logged
            .fixity
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let same = rows.len() == leaves.len()
            && rows
                .iter()
                .zip(leaves)
                .all(|(r, (_, h))| leaf::fixity_leaf(r).hash() == *h);
        if !same {
            bad += 1;
            checks.push(Check::failed(
                format!("fixity events of {key}"),
                format!(
                    "the index holds {} checks, the log {}, or they differ",
                    rows.len(),
                    leaves.len()
                ),
            ));
            continue;
        }
        if let Some(f) = files.iter().find(|f| &f.key == key) {
            let expected = quarantine_of(&rows);
            if f.quarantined != expected {
                bad += 1;
                checks.push(Check::failed(
                    format!("quarantine of {key}"),
                    format!(
                        "the index says {:?}; its logged checks say {:?}",
                        f.quarantined, expected
                    ),
                ));
            }
        }
    }
    if bad == 0 {
        checks.push(Check::ok(
            format!("fixity checks of {} objects", keys.len()),
            Some("as logged".into()),
        ));
    }
    Ok(())
}

/// The quarantine the index records after these checks (`record_fixity`):
/// set by a failed check of the primary copy, cleared by a good one.
fn quarantine_of(events: &[FixityEvent]) -> Option<String> {
    let mut state = None;
    for e in events {
        if e.location != "primary" || e.outcome == "error" {
            continue;
        }
        let good = e.outcome == "ok" || e.outcome == "repaired";
        state = (!good).then(|| {
            format!(
                "{} at {}: {}",
                e.outcome,
                crate::index::db_time(&e.at),
                e.detail.clone().unwrap_or_default()
            )
        });
    }
    state
}

/// Every passage check the index shows has its `rechecked` event in the
/// log.
async fn check_passages(
    archive: &Archive,
    logged: &Logged,
    links: &[String],
    checks: &mut Vec<Check>,
) -> Result<(), ArchiveError> {
    let mut bad = 0;
    let mut total = 0;
    for link in links {
        let rows = archive.index().passage_checks(link).await?;
        let rechecks = logged
            .rechecks
            .get(link)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for r in rows {
            total += 1;
            let found = rechecks
                .iter()
                .any(|(c, present)| c == r.capture_id.as_str() && *present == r.present);
            if !found {
                bad += 1;
                let state = if r.present { "present" } else { "absent" };
                checks.push(Check::failed(
                    format!("passage check of link {link} in capture {}", r.capture_id),
                    format!("the index says {state}; the log has no such check"),
                ));
            }
        }
    }
    if bad == 0 {
        checks.push(Check::ok(
            format!("{total} passage checks"),
            Some("as logged".into()),
        ));
    }
    Ok(())
}

/// Rows added by hand that name no logged object still change the counts.
async fn check_counts(
    archive: &Archive,
    logged: &Logged,
    checks: &mut Vec<Check>,
) -> Result<(), ArchiveError> {
    let counts = archive.index().row_counts().await?;
    let links: usize = logged.links.values().map(Vec::len).sum();
    let fixity: usize = logged.fixity.values().map(Vec::len).sum();
    let expected_events = logged.event_leaves + counts.captures;
    let mut problems = Vec::new();
    if counts.events != expected_events {
        problems.push(format!(
            "{} custody event rows, where the log accounts for {expected_events}",
            counts.events
        ));
    }
    if counts.links != links as u64 {
        problems.push(format!("{} link rows, {links} link leaves", counts.links));
    }
    if counts.fixity_events != fixity as u64 {
        problems.push(format!(
            "{} fixity rows, {fixity} fixity leaves",
            counts.fixity_events
        ));
    }
    checks.push(match problems.is_empty() {
        true => Check::ok("rows against leaves", Some("the counts agree".into())),
        false => Check::failed("rows against leaves", problems.join("; ")),
    });
    Ok(())
}
