//! What changed between two captures: the page's readable text, paragraph
//! by paragraph (added, removed, edited), and the resources (added, removed,
//! or with a different payload digest).
//!
//! Paragraphs are the readable-text blocks the provenance index quotes from
//! (`provenance::document_text`), aligned by a longest common subsequence;
//! a removed and an added paragraph in the same place that share most of
//! their words are reported as one edit, which is how a silently changed
//! casualty count shows up.

use serde::Serialize;

use crate::archive::{Archive, ArchiveError};
use crate::model::{Capture, CaptureId, Sha256};

/// One side of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    pub capture_id: CaptureId,
    pub seed_url: String,
    pub started_at: String,
    pub page_url: Option<String>,
    pub page_sha256: Option<Sha256>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Edited,
    Changed,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Edited => "edited",
            Change::Changed => "changed",
        }
    }
}

/// A paragraph added, removed or edited. Paragraph numbers count from 1.
#[derive(Clone, Debug, Serialize)]
pub struct TextChange {
    pub change: Change,
    pub a_paragraph: Option<usize>,
    pub b_paragraph: Option<usize>,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceChange {
    pub change: Change,
    pub url: String,
    pub a_sha256: Option<Sha256>,
    pub b_sha256: Option<Sha256>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaptureDiff {
    pub a: Side,
    pub b: Side,
    pub page_changed: bool,
    /// Why the text was not compared (a page that is not text, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_note: Option<String>,
    pub text: Vec<TextChange>,
    pub resources: Vec<ResourceChange>,
    pub unchanged_resources: usize,
}

/// Compares capture `a` (before) with capture `b` (after).
pub async fn diff(
    archive: &Archive,
    a: &CaptureId,
    b: &CaptureId,
) -> Result<CaptureDiff, ArchiveError> {
    let load = |id: &CaptureId| {
        let id = id.clone();
        async move {
            let c = archive.index().capture(&id).await?.ok_or_else(|| {
                ArchiveError::NotFound(format!(
                    "no capture {id}; list them with `custody captures`"
                ))
            })?;
            if c.warc.is_none() {
                return Err(ArchiveError::NotFound(format!(
                    "capture {id} failed ({}) and has nothing to compare",
                    c.error.clone().unwrap_or_default()
                )));
            }
            Ok::<Capture, ArchiveError>(c)
        }
    };
    let (ca, cb) = (load(a).await?, load(b).await?);
    let side = |c: &Capture| {
        let page = crate::archive::page_resource(&c.resources);
        Side {
            capture_id: c.id.clone(),
            seed_url: c.seed_url.clone(),
            started_at: crate::model::rfc3339_utc(&c.started_at),
            page_url: page.map(|p| p.url.clone()),
            page_sha256: page.and_then(|p| p.payload_sha256),
        }
    };
    let (sa, sb) = (side(&ca), side(&cb));
    let page_changed = sa.page_sha256 != sb.page_sha256 || sa.page_url != sb.page_url;

    let (text, text_note) = match (page_text(archive, a).await, page_text(archive, b).await) {
        (Ok(ta), Ok(tb)) => (paragraph_changes(&paragraphs(&ta), &paragraphs(&tb)), None),
        (Err(e), _) | (_, Err(e)) => (Vec::new(), Some(e)),
    };

    let digests = |c: &Capture| {
        c.resources
            .iter()
            .filter(|r| r.status.is_some())
            .map(|r| (r.url.clone(), r.payload_sha256))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (da, db) = (digests(&ca), digests(&cb));
    let mut resources = Vec::new();
    let mut unchanged = 0;
    for (url, a_sha) in &da {
        match db.get(url) {
            None => resources.push(ResourceChange {
                change: Change::Removed,
                url: url.clone(),
                a_sha256: *a_sha,
                b_sha256: None,
            }),
            Some(b_sha) if b_sha != a_sha => resources.push(ResourceChange {
                change: Change::Changed,
                url: url.clone(),
                a_sha256: *a_sha,
                b_sha256: *b_sha,
            }),
            Some(_) => unchanged += 1,
        }
    }
    for (url, b_sha) in &db {
        if !da.contains_key(url) {
            resources.push(ResourceChange {
                change: Change::Added,
                url: url.clone(),
                a_sha256: None,
                b_sha256: *b_sha,
            });
        }
    }
    Ok(CaptureDiff {
        a: sa,
        b: sb,
        page_changed,
        text_note,
        text,
        resources,
        unchanged_resources: unchanged,
    })
}

async fn page_text(archive: &Archive, id: &CaptureId) -> Result<String, String> {
    let doc = archive
        .read_document(id, None)
        .await
        .map_err(|e| e.to_string())?;
    crate::provenance::document_text(&doc).map_err(|e| e.to_string())
}

fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Largest table the alignment fills; longer documents are compared by
/// their common start and end only.
const MAX_CELLS: usize = 16_000_000;

/// Paragraph changes from `a` to `b`.
pub fn paragraph_changes(a: &[String], b: &[String]) -> Vec<TextChange> {
    // Common start and end first: cheap, and usually most of an article.
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops: Vec<Op> = Vec::new();
    if ma.len().saturating_mul(mb.len()) <= MAX_CELLS {
        // lcs[i][j]: common subsequence length of ma[i..] and mb[j..].
        let w = mb.len() + 1;
        let mut lcs = vec![0u32; (ma.len() + 1) * w];
        for i in (0..ma.len()).rev() {
            for j in (0..mb.len()).rev() {
                lcs[i * w + j] = if ma[i] == mb[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < ma.len() || j < mb.len() {
            if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
                ops.push(Op::Same);
                i += 1;
                j += 1;
            } else if j < mb.len() && (i == ma.len() || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j])
            {
                ops.push(Op::Add(head + j));
                j += 1;
            } else {
                ops.push(Op::Remove(head + i));
                i += 1;
            }
        }
    } else {
        ops.extend((0..ma.len()).map(|i| Op::Remove(head + i)));
        ops.extend((0..mb.len()).map(|j| Op::Add(head + j)));
    }

    // Each run of removals and additions between unchanged paragraphs is a
    // hunk; within it, similar paragraphs pair up as edits.
    let mut out = Vec::new();
    let mut removed = Vec::new();
    let mut added = Vec::new();
    let flush = |removed: &mut Vec<usize>, added: &mut Vec<usize>, out: &mut Vec<TextChange>| {
        let mut next_added = 0;
        for &r in removed.iter() {
            let pair = added[next_added..]
                .iter()
                .position(|&ad| similar(&a[r], &b[ad]))
                .map(|k| next_added + k);
            if let Some(k) = pair {
                for &ad in &added[next_added..k] {
                    out.push(added_change(b, ad));
                }
                out.push(TextChange {
                    change: Change::Edited,
                    a_paragraph: Some(r + 1),
                    b_paragraph: Some(added[k] + 1),
                    before: Some(a[r].clone()),
                    after: Some(b[added[k]].clone()),
                });
                next_added = k + 1;
            } else {
                out.push(TextChange {
                    change: Change::Removed,
                    a_paragraph: Some(r + 1),
                    b_paragraph: None,
                    before: Some(a[r].clone()),
                    after: None,
                });
            }
        }
        for &ad in &added[next_added..] {
            out.push(added_change(b, ad));
        }
        removed.clear();
        added.clear();
    };
    for op in ops {
        match op {
            Op::Same => flush(&mut removed, &mut added, &mut out),
            Op::Remove(i) => removed.push(i),
            Op::Add(j) => added.push(j),
        }
    }
    flush(&mut removed, &mut added, &mut out);
    out
}

enum Op {
    Same,
    Remove(usize),
    Add(usize),
}

fn added_change(b: &[String], j: usize) -> TextChange {
    TextChange {
        change: Change::Added,
        a_paragraph: None,
        b_paragraph: Some(j + 1),
        before: None,
        after: Some(b[j].clone()),
    }
}

/// Whether two paragraphs share at least half of their words (counted with
/// repeats), so that one reads as an edit of the other.
fn similar(x: &str, y: &str) -> bool {
    let mut words: std::collections::HashMap<&str, i32> = std::collections::HashMap::new();
    let xs: Vec<&str> = x.split_whitespace().collect();
    let ys: Vec<&str> = y.split_whitespace().collect();
    for w in &xs {
        *words.entry(w).or_default() += 1;
    }
    let mut common = 0;
    for w in &ys {
        if let Some(n) = words.get_mut(w) {
            if *n > 0 {
                *n -= 1;
                common += 1;
            }
        }
    }
    let longer = xs.len().max(ys.len());
    longer > 0 && common * 2 >= longer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_edited_count_an_added_and_a_removed_paragraph() {
        let a = p(&[
            "Regime airstrikes kill 25 civilians",
            "Nearly 25 civilians were killed in Bab Alnairab.",
            "The Civil Defence said rescue teams were still searching.",
            "Photos: Syrian Coalition media office",
        ]);
        let b = p(&[
            "Regime airstrikes kill 25 civilians",
            "Nearly 12 civilians were killed in Bab Alnairab.",
            "Update: the regime denies the strikes.",
            "Photos: Syrian Coalition media office",
        ]);
        let changes = paragraph_changes(&a, &b);
        let kinds: Vec<(&str, Option<usize>, Option<usize>)> = changes
            .iter()
            .map(|c| (c.change.as_str(), c.a_paragraph, c.b_paragraph))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("edited", Some(2), Some(2)),
                ("removed", Some(3), None),
                ("added", None, Some(3)),
            ]
        );
        assert_eq!(
            changes[0].after.as_deref(),
            Some("Nearly 12 civilians were killed in Bab Alnairab.")
        );
        assert!(paragraph_changes(&a, &a).is_empty());
        let moved = paragraph_changes(&p(&["x y", "z"]), &p(&["z", "x y"]));
        assert_eq!(moved.len(), 2);
    }
}
