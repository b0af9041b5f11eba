//! Full-text search over everything archived.
//!
//! What is indexed: after a capture is indexed, the readable text of each
//! page and frame it holds (every `text/html`, XHTML or plain-text response
//! with a 2xx status, read back from the stored WARC as claims read it), or
//! the page's rendered text when the browser step recorded one. The text is
//! kept with its title and host; its folded form is what the backend
//! matches (SQLite FTS5, PostgreSQL `tsvector`).
//!
//! Folding makes the same word match however it is written: Unicode
//! compatibility decomposition, combining marks dropped (accents, Arabic
//! harakat and the hamza on an alef), the Arabic tatweel dropped, lower
//! case. Queries are folded the same way, and the passage shown is cut and
//! highlighted here, from the original text, the same on both backends.
//!
//! A query is words and "quoted phrases"; a document matches when it holds
//! them all. Results come in capture order (newest first by default) and
//! page by a stable cursor.

use chrono::{DateTime, Utc};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use crate::archive::{Archive, ArchiveError};
use crate::index::{PageText, TextCursor, TextQuery};
use crate::model::{Capture, CaptureId, CaptureStatus};

/// The most documents of one capture that are indexed (a page and its
/// frames; a crawl of many frames keeps the first ones).
const MAX_DOCUMENTS: usize = 32;

/// The most text of one document that is indexed, in bytes.
const MAX_TEXT: usize = 256 * 1024;

/// The most terms a query may hold.
const MAX_TERMS: usize = 16;

/// Words of context shown before and after the first match.
const CONTEXT_BEFORE: usize = 12;
const CONTEXT_AFTER: usize = 28;

/// The searchable form of a text (see the module documentation).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        fold_char(c, &mut out);
    }
    out
}

fn fold_char(c: char, out: &mut String) {
    if c == '\u{0640}' {
        return;
    }
    for d in std::iter::once(c).nfkd() {
        if !unicode_normalization::char::is_combining_mark(d) {
            out.extend(d.to_lowercase());
        }
    }
}

/// The words and phrases of a query, folded: a phrase is what is between
/// double quotes, a word anything else between spaces. A term with no
/// letter or digit is dropped (it could match nothing).
pub fn parse_query(q: &str) -> Result<Vec<String>, ArchiveError> {
    let mut terms: Vec<String> = Vec::new();
    for (i, part) in q.split('"').enumerate() {
        let phrase = i % 2 == 1;
        let pieces: Vec<&str> = if phrase {
            vec![part]
        } else {
            part.split_whitespace().collect()
        };
        for p in pieces {
            let folded = fold(p);
            let words = words_of(&folded);
            if !words.is_empty() {
                let term = words.join(" ");
                if !terms.contains(&term) {
                    terms.push(term);
                }
            }
        }
    }
    if terms.is_empty() {
        return Err(ArchiveError::Invalid(format!(
            "search {q:?} holds no word to look for; give words, or a \"quoted phrase\""
        )));
    }
    if terms.len() > MAX_TERMS {
        return Err(ArchiveError::Invalid(format!(
            "search {q:?} holds {} words and phrases; give at most {MAX_TERMS}",
            terms.len()
        )));
    }
    Ok(terms)
}

/// The words of folded text: its runs of letters and digits.
fn words_of(folded: &str) -> Vec<&str> {
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect()
}

/// A piece of a passage: matched words or the text between them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub text: String,
    #[serde(rename = "match")]
    pub matched: bool,
}

/// The passage of a document around a match (the first of those that show
/// the most of the query's terms together), with every matched word or
/// phrase in it marked, and that match's own text (what a link to the
/// passage quotes). Without a match in `body` (the title
/// matched), its beginning, unmarked.
pub fn passage(body: &str, terms: &[String]) -> (Vec<Segment>, Option<String>) {
    let words = words_at(body);
    let term_words: Vec<Vec<&str>> = terms.iter().map(|t| words_of(t)).collect();
    let marks = matches(&words, &term_words);
    if marks.is_empty() {
        let end = floor_char(body, 240.min(body.len()));
        let mut text = one_line(&body[..end]);
        if end < body.len() {
            text.push('…');
        }
        return (
            vec![Segment {
                text,
                matched: false,
            }],
            None,
        );
    }
    // The window that shows the most of the query's terms, the earliest
    // of those (among the first matches: a common word can match often).
    let window = |a: usize| (a.saturating_sub(CONTEXT_BEFORE), a + CONTEXT_AFTER);
    let shown = |a: usize| {
        let (from, to) = window(a);
        let mut terms: Vec<usize> = marks
            .iter()
            .filter(|m| m.0 >= from && m.1 <= to)
            .map(|m| m.2)
            .collect();
        terms.sort_unstable();
        terms.dedup();
        terms.len()
    };
    let mut best = marks[0];
    let mut best_shown = shown(best.0);
    for &m in marks.iter().take(500) {
        let n = shown(m.0);
        if n > best_shown {
            (best, best_shown) = (m, n);
        }
    }
    let (first, first_end, _) = best;
    let quote = one_line(&body[words[first].0..words[first_end].1]);
    let from_word = window(first).0;
    let to_word = window(first).1.max(first_end).min(words.len() - 1);
    let start = if from_word == 0 {
        0
    } else {
        words[from_word].0
    };
    let end = if to_word == words.len() - 1 {
        body.len()
    } else {
        words[to_word].1
    };
    let mut segments = Vec::new();
    let mut push = |text: &str, matched: bool| {
        if !text.is_empty() {
            segments.push(Segment {
                text: one_line(text),
                matched,
            });
        }
    };
    if start > 0 {
        push("…", false);
    }
    let mut at = start;
    for &(a, b, _) in marks
        .iter()
        .filter(|(a, b, _)| *a >= from_word && *b <= to_word)
    {
        push(&body[at..words[a].0], false);
        push(&body[words[a].0..words[b].1], true);
        at = words[b].1;
    }
    push(&body[at..end], false);
    if end < body.len() {
        push("…", false);
    }
    (segments, Some(quote))
}

/// Each word of a text (a run of letters and digits once folded): its
/// byte range and folded form. A combining mark or the tatweel belongs to
/// the word it is in.
fn words_at(body: &str) -> Vec<(usize, usize, String)> {
    let mut words = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, c) in body.char_indices() {
        let mut f = String::new();
        fold_char(c, &mut f);
        if f.is_empty() {
            continue;
        }
        let letters = f.chars().all(char::is_alphanumeric);
        match (&mut current, letters) {
            (Some((_, w)), true) => w.push_str(&f),
            (None, true) => current = Some((i, f)),
            (Some(_), false) => {
                let (start, w) = current.take().unwrap_or_default();
                words.push((start, i, w));
            }
            (None, false) => {}
        }
    }
    if let Some((start, w)) = current {
        words.push((start, body.len(), w));
    }
    words
}

/// Where the terms match: [first, last] word indices and the term's
/// index, left to right, not overlapping.
fn matches(words: &[(usize, usize, String)], terms: &[Vec<&str>]) -> Vec<(usize, usize, usize)> {
    let mut marks = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let hit = terms.iter().enumerate().find(|(_, tw)| {
            !tw.is_empty()
                && i + tw.len() <= words.len()
                && tw.iter().zip(&words[i..]).all(|(t, w)| *t == w.2)
        });
        match hit {
            Some((t, tw)) => {
                marks.push((i, i + tw.len() - 1, t));
                i += tw.len();
            }
            None => i += 1,
        }
    }
    marks
}

/// Line breaks and runs of spaces as single spaces (one kept at either
/// end, where the piece meets the next).
fn one_line(s: &str) -> String {
    let inner = crate::provenance::text::collapse_spaces(s);
    let lead = s.starts_with(char::is_whitespace);
    let trail = s.ends_with(char::is_whitespace) && !inner.is_empty();
    format!(
        "{}{inner}{}",
        if lead { " " } else { "" },
        if trail { " " } else { "" }
    )
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A bound of a time range: RFC 3339, or 4 to 14 digits (a Wayback
/// timestamp).
pub fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, ArchiveError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    crate::archive::parse_at(s).map_err(|_| {
        ArchiveError::Invalid(format!(
            "{name}={s:?} is not a time; use RFC 3339 (2016-11-29T10:04:00Z) or YYYYMMDDhhmmss"
        ))
    })
}

/// The host a site filter names, checked: letters, digits, dots and
/// hyphens (an IDN in its `xn--` form), lower case, without `www.`.
pub fn parse_site(site: &str) -> Result<String, ArchiveError> {
    let s = site.trim().trim_end_matches('.').to_ascii_lowercase();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(&s);
    let s = s.split('/').next().unwrap_or_default();
    let s = s.strip_prefix("www.").unwrap_or(s);
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(ArchiveError::Invalid(format!(
            "site {site:?} is not a host name; give one such as aleppo24.example"
        )));
    }
    Ok(s.to_string())
}

fn host_of(url: &str) -> String {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    host.strip_prefix("www.")
        .map(str::to_string)
        .unwrap_or(host)
}

/// The documents of a capture to index: its pages and frames, the page's
/// rendered text in place of its HTML when the browser recorded one.
fn documents(capture: &Capture) -> Vec<(String, String)> {
    let page = crate::archive::page_resource(&capture.resources).map(|r| r.url.clone());
    let rendered = page.as_ref().and_then(|p| {
        let uri = format!("urn:text:{p}");
        capture
            .browser
            .as_ref()
            .filter(|b| b.records.iter().any(|r| r.target_uri == uri))
            .map(|_| uri)
    });
    let mut out: Vec<(String, String)> = Vec::new();
    for r in &capture.resources {
        let textual = r
            .mime
            .as_deref()
            .is_some_and(|m| m == "text/html" || m == "application/xhtml+xml" || m == "text/plain");
        if !textual || !r.status.is_some_and(|s| (200..300).contains(&s)) {
            continue;
        }
        let target = match (&rendered, &page) {
            (Some(uri), Some(p)) if *p == r.url => uri.clone(),
            _ => r.url.clone(),
        };
        if !out.iter().any(|(t, _)| *t == target) {
            out.push((target, host_of(&r.url)));
        }
        if out.len() == MAX_DOCUMENTS {
            break;
        }
    }
    out
}

/// Indexes the text of a capture's documents (once; a capture indexed
/// already is left as it is). A document that is not text, or not in the
/// capture, is skipped; a store or digest failure is returned, and the
/// capture stays to be indexed later.
pub async fn index_capture(archive: &Archive, capture: &Capture) -> Result<usize, ArchiveError> {
    if capture.status != CaptureStatus::Ok {
        return Ok(0);
    }
    let mut texts = Vec::new();
    for (target, host) in documents(capture) {
        let doc = match archive.read_document(&capture.id, Some(&target)).await {
            Ok(d) => d,
            Err(ArchiveError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let Ok(body) = crate::provenance::document_text(&doc) else {
            continue;
        };
        let mut body = body;
        body.truncate(floor_char(&body, MAX_TEXT.min(body.len())));
        let is_html = doc
            .mime
            .as_deref()
            .is_some_and(|m| m == "text/html" || m == "application/xhtml+xml");
        let title = is_html
            .then(|| {
                let html = crate::charset::decode(&doc.body, doc.content_type.as_deref(), true);
                crate::provenance::text::html_title(&html)
            })
            .flatten();
        let folded = fold(&format!("{}\n{body}", title.as_deref().unwrap_or("")));
        texts.push(PageText {
            url: target,
            host,
            title,
            body,
            folded,
        });
    }
    let n = texts.len();
    archive
        .index()
        .put_page_texts(&capture.id, &texts, Utc::now())
        .await?;
    Ok(n)
}

/// Indexes the text of every capture not indexed yet (those made before
/// search existed, or whose indexing failed): what the daemon does at start
/// and `reindex` does last. A capture that cannot be read now (its object
/// missing, the store down) is skipped, logged and left for the next run;
/// the first such error is returned once the others are done.
pub async fn backfill(archive: &Archive) -> Result<u64, ArchiveError> {
    let index = archive.index();
    let mut done = 0;
    let mut failed: Vec<CaptureId> = Vec::new();
    let mut first_error = None;
    loop {
        let batch = 100 + failed.len() as u32;
        let ids: Vec<CaptureId> = index
            .captures_without_text(batch)
            .await?
            .into_iter()
            .filter(|id| !failed.contains(id))
            .collect();
        if ids.is_empty() {
            return match first_error {
                Some(e) => Err(e),
                None => Ok(done),
            };
        }
        for id in ids {
            let Some(capture) = index.capture(&id).await? else {
                failed.push(id);
                continue;
            };
            match index_capture(archive, &capture).await {
                Ok(_) => done += 1,
                Err(e) => {
                    tracing::warn!(capture = %id, error = %e, "a capture's text could not be indexed for search; the next start tries again");
                    failed.push(id);
                    first_error.get_or_insert(e);
                }
            }
        }
    }
}

/// What to search for, as the API, the CLI and the UI take it.
#[derive(Clone, Debug, Default)]
pub struct SearchRequest {
    pub q: String,
    pub site: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub schedule: Option<String>,
    pub claim: Option<String>,
    pub oldest_first: bool,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
    pub limit: u32,
}

/// One document that matched.
#[derive(Clone, Debug, Serialize)]
pub struct SearchResult {
    pub capture_id: CaptureId,
    pub captured_at: DateTime<Utc>,
    /// The page or frame's URL.
    pub url: String,
    /// What was searched: `url`, or the page's rendered text
    /// (`urn:text:URL`), the target a claim links to.
    pub document: String,
    pub seed_url: String,
    pub schedule: Option<String>,
    pub title: Option<String>,
    /// The passage around the first match, as plain text.
    pub passage: String,
    /// The same passage in pieces, the matched words marked.
    pub highlights: Vec<Segment>,
    /// The first match's own words.
    pub quote: Option<String>,
    /// The archived page in replay, scrolled to the first match (a text
    /// fragment).
    pub replay: String,
}

/// A page of results.
#[derive(Clone, Debug, Serialize)]
pub struct SearchPage {
    pub items: Vec<SearchResult>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Runs a search.
pub async fn search(archive: &Archive, req: &SearchRequest) -> Result<SearchPage, ArchiveError> {
    let terms = parse_query(&req.q)?;
    let after = req
        .cursor
        .as_deref()
        .map(|c| {
            TextCursor::decode(c).ok_or_else(|| {
                ArchiveError::Invalid(format!(
                    "cursor={c:?} is not a search cursor; pass the next_cursor of the page before"
                ))
            })
        })
        .transpose()?;
    for (name, value) in [("schedule", &req.schedule), ("claim", &req.claim)] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            return Err(ArchiveError::Invalid(format!(
                "{name} {value:?} holds a control character; give a {name}'s name as listed"
            )));
        }
    }
    let query = TextQuery {
        terms: terms.clone(),
        host: req.site.as_deref().map(parse_site).transpose()?,
        from: req.from,
        to: req.to,
        schedule: req.schedule.clone(),
        claim: req.claim.clone(),
        newest_first: !req.oldest_first,
        after,
        limit: req.limit.clamp(1, 1000),
    };
    let hits = archive.index().search_texts(&query).await?;
    let next_cursor = TextCursor::next_page(&hits, query.limit).map(|c| c.encode());
    let items = hits
        .into_iter()
        .map(|h| {
            let (highlights, quote) = passage(&h.body, &terms);
            let url = h
                .url
                .strip_prefix("urn:text:")
                .unwrap_or(&h.url)
                .to_string();
            let mut replay = format!(
                "/replay/{}/{}",
                crate::model::timestamp14(&h.started_at),
                url
            );
            if let Some(q) = &quote {
                replay.push_str("#:~:text=");
                replay.push_str(&text_fragment(q));
            }
            SearchResult {
                capture_id: h.capture_id,
                captured_at: h.started_at,
                document: h.url,
                url,
                seed_url: h.seed_url,
                schedule: h.schedule,
                title: h.title,
                passage: highlights.iter().map(|s| s.text.as_str()).collect(),
                highlights,
                quote,
                replay,
            }
        })
        .collect();
    Ok(SearchPage { items, next_cursor })
}

/// A text directive's text: everything but unreserved characters
/// percent-encoded (`-`, `&` and `,` are the directive's own syntax).
fn text_fragment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_matches_case_accents_and_arabic_marks() {
        assert_eq!(fold("Kirby ALEPPO Café"), "kirby aleppo cafe");
        // Harakat, the hamza on an alef and the tatweel are not part of the
        // word.
        assert_eq!(fold("حَلَب"), "حلب");
        assert_eq!(fold("أطفال"), "اطفال");
        assert_eq!(fold("حـلـب"), "حلب");
    }

    #[test]
    fn queries_are_words_and_quoted_phrases() {
        assert_eq!(
            parse_query("Aleppo \"Bab  Alnairab\" civilians,").unwrap(),
            vec!["aleppo", "bab alnairab", "civilians"]
        );
        // FTS syntax is only text: quotes, stars and operators are words or
        // nothing.
        assert_eq!(parse_query("a* OR -b").unwrap(), vec!["a", "or", "b"]);
        assert!(parse_query("  \"\" ** ").is_err());
        assert!(parse_query(&"w ".repeat(17)).is_ok(), "repeats count once");
    }

    #[test]
    fn the_passage_marks_each_match_in_the_original_text() {
        let body = "Intro.\n\nNearly 25 civilians were killed in Bab Alnairab, said Kirby.";
        let terms = parse_query("\"bab alnairab\" KIRBY").unwrap();
        let (segments, quote) = passage(body, &terms);
        let marked: Vec<&str> = segments
            .iter()
            .filter(|s| s.matched)
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(marked, vec!["Bab Alnairab", "Kirby"]);
        assert_eq!(quote.as_deref(), Some("Bab Alnairab"));
        let whole: String = segments.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            whole,
            "Intro. Nearly 25 civilians were killed in Bab Alnairab, said Kirby."
        );
        // Arabic with harakat matches the bare query; the original is shown.
        let (segments, quote) = passage("قصف حَلَب اليوم", &parse_query("حلب").unwrap());
        assert_eq!(quote.as_deref(), Some("حَلَب"));
        assert!(segments.iter().any(|s| s.matched && s.text == "حَلَب"));
        // The passage shows the terms together where they are.
        let body = format!("Aleppo {} Kirby spoke of Aleppo", "word ".repeat(100));
        let (_, quote) = passage(&body, &parse_query("aleppo kirby").unwrap());
        assert_eq!(quote.as_deref(), Some("Kirby"));
        // Far from the start: cut with an ellipsis.
        let long = format!("{} needle end", "word ".repeat(100));
        let (segments, _) = passage(&long, &parse_query("needle").unwrap());
        assert_eq!(segments[0].text, "…");
    }

    #[test]
    fn sites_are_plain_host_names() {
        assert_eq!(
            parse_site("https://www.Aleppo24.example/x").unwrap(),
            "aleppo24.example"
        );
        assert!(parse_site("a%b").is_err());
        assert!(parse_site("a_b").is_err());
    }
}
