//! The readable text of an archived document, and finding quotes in it.
//!
//! **Readable text** (what `TextPositionSelector` offsets count, in Unicode
//! code points): the document decoded with its charset; for HTML, the text of
//! the body without `script`, `style`, `noscript`, `template`, `head` and
//! similar non-rendered elements, entities decoded, block elements
//! (paragraphs, headings, list items, table cells, `br`...) separated by a
//! blank line; every run of white space (including no-break spaces) inside a
//! block collapsed to one space; each block trimmed. Plain text keeps its
//! paragraphs (blank-line separated) with the same white-space rule.
//!
//! **Matching** compares a quote with the readable text after folding both:
//! quotation marks and apostrophes (`"` `'` `“` `”` `‘` `’` `„` `«` `»` ...)
//! are ignored, dashes (`–` `—` `−` ...) read as `-`, and white space
//! (including a paragraph break) reads as one space. Case matters: a quote
//! is a quote. The match is then reported in readable-text positions, and its
//! `exact` text is taken from the archived text itself, so a selector always
//! reproduces what the archive says, not what the user typed.

use html5gum::{State, Token, Tokenizer};

/// Elements whose content is not rendered text.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "head", "title", "svg", "math", "iframe", "object",
    "select", "option", "textarea", "button",
];

/// Elements that start a new block of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "td",
    "th",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "caption",
    "blockquote",
    "pre",
    "article",
    "section",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "figure",
    "figcaption",
    "address",
    "form",
    "fieldset",
    "legend",
    "details",
    "summary",
    "body",
    "html",
];

/// The readable text of an HTML document (see the module documentation).
pub fn html_to_text(html: &str) -> String {
    let html: &str = &crate::capture::discover::without_nul(html);
    let mut blocks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut hidden_depth: Vec<String> = Vec::new();
    let mut tokenizer = Tokenizer::new(html);
    let flush = |current: &mut String, blocks: &mut Vec<String>| {
        let collapsed = collapse_spaces(current);
        if !collapsed.is_empty() {
            blocks.push(collapsed);
        }
        current.clear();
    };
    while let Some(token) = tokenizer.next() {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if HIDDEN.contains(&name.as_str()) && !tag.self_closing {
                    // Raw-text elements must switch the tokenizer state, as
                    // the tree builder would.
                    match name.as_str() {
                        "script" => tokenizer.set_state(State::ScriptData),
                        "style" | "noscript" | "iframe" => tokenizer.set_state(State::RawText),
                        "title" | "textarea" => tokenizer.set_state(State::RcData),
                        _ => {}
                    }
                    if name != "head" || hidden_depth.is_empty() {
                        hidden_depth.push(name);
                    }
                    continue;
                }
                if BLOCKS.contains(&name.as_str()) && hidden_depth.is_empty() {
                    flush(&mut current, &mut blocks);
                }
                if name == "body" {
                    // A missing </head> must not hide the body.
                    hidden_depth.retain(|n| n != "head");
                }
            }
            Token::EndTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if let Some(pos) = hidden_depth.iter().rposition(|n| *n == name) {
                    hidden_depth.truncate(pos);
                    continue;
                }
                if BLOCKS.contains(&name.as_str()) && hidden_depth.is_empty() {
                    flush(&mut current, &mut blocks);
                }
            }
            Token::String(text) if hidden_depth.is_empty() => {
                current.push_str(&String::from_utf8_lossy(&text.value));
            }
            _ => {}
        }
    }
    flush(&mut current, &mut blocks);
    blocks.join("\n\n")
}

/// The document's title: the text of its first `title` element, white
/// space collapsed; `None` when it has none or it is empty.
pub fn html_title(html: &str) -> Option<String> {
    let html: &str = &crate::capture::discover::without_nul(html);
    let mut tokenizer = Tokenizer::new(html);
    let mut title: Option<String> = None;
    while let Some(token) = tokenizer.next() {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) if title.is_none() => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                match name.as_str() {
                    "title" => {
                        tokenizer.set_state(State::RcData);
                        title = Some(String::new());
                    }
                    "script" => tokenizer.set_state(State::ScriptData),
                    "style" | "noscript" | "iframe" | "textarea" => {
                        tokenizer.set_state(State::RawText)
                    }
                    // No title before the body: none is looked for in it.
                    "body" => return None,
                    _ => {}
                }
            }
            Token::String(text) => {
                if let Some(t) = title.as_mut() {
                    t.push_str(&String::from_utf8_lossy(&text.value));
                }
            }
            Token::EndTag(_) if title.is_some() => break,
            _ => {}
        }
    }
    title.map(|t| collapse_spaces(&t)).filter(|t| !t.is_empty())
}

/// The readable text of a plain-text document.
pub fn plain_to_text(text: &str) -> String {
    let normalised = text.replace("\r\n", "\n");
    normalised
        .split("\n\n")
        .map(collapse_spaces)
        .filter(|b| !b.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Runs of white space as one space, none at either end.
pub(crate) fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

fn is_quote_mark(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '`'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201A}'
            | '\u{201B}'
            | '\u{201C}'
            | '\u{201D}'
            | '\u{201E}'
            | '\u{201F}'
            | '\u{00AB}'
            | '\u{00BB}'
            | '\u{2039}'
            | '\u{203A}'
            | '\u{2032}'
            | '\u{2033}'
            | '\u{00B4}'
    )
}

fn fold_char(c: char) -> Option<char> {
    if is_quote_mark(c) {
        return None;
    }
    if c.is_whitespace() {
        return Some(' ');
    }
    Some(match c {
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' => '-',
        c => c,
    })
}

/// Text folded for matching, with each folded char's position (in chars)
/// in the original.
struct Folded {
    chars: Vec<char>,
    origin: Vec<usize>,
}

fn fold(text: &str) -> Folded {
    let mut chars = Vec::with_capacity(text.len());
    let mut origin = Vec::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        let Some(f) = fold_char(c) else { continue };
        if f == ' ' && (chars.is_empty() || chars.last() == Some(&' ')) {
            continue;
        }
        chars.push(f);
        origin.push(i);
    }
    while chars.last() == Some(&' ') {
        chars.pop();
        origin.pop();
    }
    Folded { chars, origin }
}

fn fold_str(s: &str) -> Vec<char> {
    fold(s).chars
}

/// A place a quote was found: positions in readable-text code points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    /// The archived text at those positions.
    pub exact: String,
    /// Up to 32 characters of archived text before and after.
    pub prefix: String,
    pub suffix: String,
}

const CONTEXT: usize = 32;

/// The blocks of a readable text with their positions: `(start, end,
/// block)`, in code points, end exclusive, as `TextPositionSelector`
/// counts them (blocks are separated by a blank line).
pub fn blocks(text: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let mut at = 0;
    text.split("\n\n").map(move |block| {
        let start = at;
        let end = start + block.chars().count();
        at = end + 2;
        (start, end, block)
    })
}

/// Where a quote that is not in `text` would be if read less strictly:
/// with case ignored, or with white space ignored as well (what copying
/// from another rendering changes). A hint for the refusal, with the
/// readable-text position (for `--start`); never a match.
pub fn near_quote(text: &str, quote: &str) -> Option<String> {
    let hay = fold(text);
    let needle = fold_str(quote);
    if needle.is_empty() {
        return None;
    }
    let low = |c: &char| c.to_lowercase().next().unwrap_or(*c);
    let hay_low: Vec<char> = hay.chars.iter().map(low).collect();
    let needle_low: Vec<char> = needle.iter().map(low).collect();
    if let Some(i) = position(&hay_low, &needle_low) {
        return Some(format!("found with different case at {}", hay.origin[i]));
    }
    let (tight, origin): (Vec<char>, Vec<usize>) = hay_low
        .iter()
        .zip(&hay.origin)
        .filter(|(c, _)| !c.is_whitespace())
        .map(|(c, o)| (*c, *o))
        .unzip();
    let needle_tight: Vec<char> = needle_low
        .into_iter()
        .filter(|c| !c.is_whitespace())
        .collect();
    position(&tight, &needle_tight)
        .map(|i| format!("found with different spacing at {}", origin[i]))
}

fn position(hay: &[char], needle: &[char]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every place `quote` occurs in `text`, keeping those preceded by `prefix`
/// and followed by `suffix` when given (all compared folded).
pub fn find_quote(
    text: &str,
    quote: &str,
    prefix: Option<&str>,
    suffix: Option<&str>,
) -> Vec<Match> {
    let hay = fold(text);
    let needle = fold_str(quote);
    if needle.is_empty() || needle.len() > hay.chars.len() {
        return Vec::new();
    }
    let prefix = prefix.map(fold_str).filter(|p| !p.is_empty());
    let suffix = suffix.map(fold_str).filter(|s| !s.is_empty());
    let text_chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for i in 0..=hay.chars.len() - needle.len() {
        if hay.chars[i..i + needle.len()] != needle[..] {
            continue;
        }
        let end_folded = i + needle.len();
        if let Some(p) = &prefix {
            let before = trim_end(&hay.chars[..i]);
            if !before.ends_with(trim(p)) {
                continue;
            }
        }
        if let Some(s) = &suffix {
            let after = trim_start(&hay.chars[end_folded..]);
            if !after.starts_with(trim(s)) {
                continue;
            }
        }
        let start = hay.origin[i];
        let end = hay.origin[end_folded - 1] + 1;
        out.push(Match {
            start,
            end,
            exact: text_chars[start..end].iter().collect(),
            prefix: text_chars[start.saturating_sub(CONTEXT)..start]
                .iter()
                .collect(),
            suffix: text_chars[end..(end + CONTEXT).min(text_chars.len())]
                .iter()
                .collect(),
        });
    }
    out
}

fn trim(s: &[char]) -> &[char] {
    trim_start(trim_end(s))
}

fn trim_end(s: &[char]) -> &[char] {
    let mut end = s.len();
    while end > 0 && s[end - 1] == ' ' {
        end -= 1;
    }
    &s[..end]
}

fn trim_start(s: &[char]) -> &[char] {
    let mut start = 0;
    while start < s.len() && s[start] == ' ' {
        start += 1;
    }
    &s[start..]
}

/// The text at `start..end` (code points), if in range.
pub fn slice(text: &str, start: usize, end: usize) -> Option<String> {
    if start >= end {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    (end <= chars.len()).then(|| chars[start..end].iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<html><head><title>Report</title><style>p{}</style></head><body>\
        <p>Activists said that nearly&nbsp;25 civilians were killed in airstrikes while trying to escape.</p>\
        <script>var x = 'nearly 25 civilians were killed';</script>\
        <p>Kirby said “Russia bears the ultimate responsibility here for what the Syria regime is doing – and being permitted to do”.</p>\
        <p>It bombed factories in October and November. It struck three times in October and November.</p></body></html>";

    #[test]
    fn readable_text_drops_hidden_elements_and_separates_blocks() {
        let text = html_to_text(PAGE);
        assert!(
            text.starts_with("Activists said that nearly 25 civilians"),
            "{text}"
        );
        assert!(!text.contains("var x"));
        assert!(!text.contains("Report"));
        assert_eq!(text.matches("\n\n").count(), 2, "{text}");
    }

    #[test]
    fn quotes_match_across_quote_marks_dashes_and_spaces() {
        let text = html_to_text(PAGE);
        let found = find_quote(&text, "Russia bears \"the ultimate responsibility here for what the Syria regime is doing - and", None, None);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].exact.starts_with("Russia bears the ultimate"),
            "{:?}",
            found[0]
        );
        assert!(found[0].exact.ends_with("doing – and"), "{:?}", found[0]);
        assert_eq!(
            slice(&text, found[0].start, found[0].end).unwrap(),
            found[0].exact
        );
        assert!(find_quote(&text, "nearly 30 civilians were killed", None, None).is_empty());
        assert!(
            find_quote(&text, "Nearly 25 civilians", None, None).is_empty(),
            "case matters"
        );
    }

    #[test]
    fn repeated_quotes_are_told_apart_by_prefix_or_suffix() {
        let text = html_to_text(PAGE);
        assert_eq!(
            find_quote(&text, "in October and November", None, None).len(),
            2
        );
        let with_prefix = find_quote(&text, "in October and November", Some("three times"), None);
        assert_eq!(with_prefix.len(), 1);
        assert!(
            with_prefix[0].prefix.ends_with("three times "),
            "{:?}",
            with_prefix[0]
        );
        assert_eq!(
            find_quote(&text, "in October and November", None, Some(". It struck")).len(),
            1
        );
    }
}
