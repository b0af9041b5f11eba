//! Link rewriting for replay: URLs in archived HTML and CSS are pointed back
//! into the archive (`/replay/{timestamp}{modifier}/{absolute URL}`), so a
//! replayed page loads nothing from the live web.
//!
//! The HTML pass is a small tag scanner, not a parser: it copies the
//! document through unchanged except for the values of URL-bearing
//! attributes (lazy-loading ones included), `style` attributes, `<style>`
//! elements and import maps, and it inserts custody's head markup (the
//! client-side rewriter, `client.js`, and an import map) before anything
//! else the document runs. Markup it does not understand passes through
//! untouched. Script text is not rewritten: URLs a script builds at run
//! time are mapped into the archive by `client.js` as they are used, and
//! the replay's Content-Security-Policy blocks whatever it misses.

use url::Url;

use crate::capture::discover::{
    looks_like_url, srcset_candidates, LAZY_SRCSET_ATTRS, LAZY_URL_ATTRS,
};

/// The client-side rewriter every replayed document runs first: a function
/// of the document's settings (see [`Rewriter::head_markup`]).
const CLIENT_JS: &str = include_str!("client.js");

/// JSON that can stand inside a `<script>` element: `<` escaped, so no
/// `</script>` or `<!--` can end or change it.
pub fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// Rewrites URLs relative to one archived document.
#[derive(Clone)]
pub struct Rewriter {
    base: Url,
    timestamp: String,
    /// Put before `/replay/` (a replay grant's `/g/{grant}`; empty
    /// otherwise), so every URL the page is given keeps it.
    prefix: String,
}

/// Navigations (links, forms) replay with the banner; everything a page
/// embeds replays without it.
const NAVIGATE: &str = "";
const EMBED: &str = "if_";

impl Rewriter {
    pub fn new(base: Url, timestamp: &str) -> Self {
        Rewriter {
            base,
            timestamp: timestamp.to_string(),
            prefix: String::new(),
        }
    }

    /// URLs start with `prefix` (a path, no trailing slash).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// The archive URL for `raw` (resolved against the document), or `None`
    /// when it is not an http(s) URL (fragments, `data:`, `javascript:`,
    /// `mailto:`...) and stays as it is.
    pub fn url(&self, raw: &str, modifier: &str) -> Option<String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        if trimmed.starts_with(&format!("{}/replay/", self.prefix)) {
            return None; // already inside the archive
        }
        if trimmed.starts_with("/replay/") {
            // Inside the archive, but without the grant this page needs.
            return Some(format!("{}{trimmed}", self.prefix));
        }
        let abs = self.base.join(trimmed).ok()?;
        if !matches!(abs.scheme(), "http" | "https") {
            return None;
        }
        Some(format!(
            "{}/replay/{}{modifier}/{abs}",
            self.prefix, self.timestamp
        ))
    }

    /// `srcset` syntax: comma-separated candidates, each a URL and an
    /// optional descriptor.
    /// Parsed as capture parses it (WHATWG rules: a URL runs to the next
    /// whitespace, so the commas of image-CDN URLs stay in them).
    pub fn srcset(&self, value: &str) -> String {
        srcset_candidates(value)
            .into_iter()
            .map(|(u, descriptors)| {
                let u = self.url(u, EMBED).unwrap_or_else(|| u.to_string());
                if descriptors.is_empty() {
                    u
                } else {
                    format!("{u} {descriptors}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// An import map's addresses (and scopes) pointed into the archive;
    /// not JSON, or not an object: `None`, left as it is.
    pub fn import_map(&self, text: &str) -> Option<String> {
        let mut map: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
        let obj = map.as_object_mut()?;
        if let Some(imports) = obj.get_mut("imports").and_then(|v| v.as_object_mut()) {
            self.map_addresses(imports);
        }
        if let Some(scopes) = obj.get_mut("scopes").and_then(|v| v.as_object_mut()) {
            let old = std::mem::take(scopes);
            for (scope, mut addresses) in old {
                if let Some(a) = addresses.as_object_mut() {
                    self.map_addresses(a);
                }
                let scope = self.url(&scope, EMBED).unwrap_or(scope);
                scopes.insert(scope, addresses);
            }
        }
        Some(script_json(&map))
    }

    fn map_addresses(&self, addresses: &mut serde_json::Map<String, serde_json::Value>) {
        for value in addresses.values_mut() {
            if let Some(new) = value.as_str().and_then(|v| self.url(v, EMBED)) {
                *value = serde_json::Value::String(new);
            }
        }
    }

    /// What custody puts first in a replayed document's `<head>`: an import
    /// map that sends module specifiers into the archive (absolute URLs,
    /// and paths that would otherwise resolve against custody's own
    /// origin), and `client.js` with this document's settings.
    pub fn head_markup(&self, modifier: &str) -> String {
        let root = format!("{}/replay/", self.prefix);
        let at = format!("{root}{}{EMBED}/", self.timestamp);
        let site = self.base.origin().ascii_serialization();
        let imports = serde_json::json!({
            "imports": {
                "https://": format!("{at}https://"),
                "http://": format!("{at}http://"),
                "/": format!("{at}{site}/"),
                "/replay/": "/replay/",
                root.clone(): root,
            }
        });
        let settings = serde_json::json!({
            "prefix": self.prefix,
            "timestamp": self.timestamp,
            "modifier": modifier,
            "url": self.base.as_str(),
        });
        format!(
            "<script type=\"importmap\">{}</script><script>{}({});</script>",
            script_json(&imports),
            CLIENT_JS.trim_end().trim_end_matches(';'),
            script_json(&settings)
        )
    }

    /// Rewrites `url(...)` and `@import "..."` in a style sheet.
    pub fn css(&self, css: &str) -> String {
        let mut out = String::with_capacity(css.len() + 64);
        let bytes = css.as_bytes();
        let mut i = 0;
        let mut copied = 0;
        while i < bytes.len() {
            if starts_with_ci(&bytes[i..], b"url(") {
                let open = i + 4;
                let (start, end, close) = match css_token(css, open, b')') {
                    Some(t) => t,
                    None => break,
                };
                if let Some(new) = self.url(&css[start..end], EMBED) {
                    out.push_str(&css[copied..open]);
                    out.push('"');
                    out.push_str(&new.replace('"', "%22"));
                    out.push('"');
                    out.push(')');
                    copied = close + 1;
                }
                i = close + 1;
                continue;
            }
            if starts_with_ci(&bytes[i..], b"@import") {
                let mut j = i + 7;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < bytes.len() && (bytes[j] == b'"' || bytes[j] == b'\'') {
                    let quote = bytes[j];
                    if let Some(len) = css[j + 1..].bytes().position(|b| b == quote) {
                        let (start, end) = (j + 1, j + 1 + len);
                        if let Some(new) = self.url(&css[start..end], EMBED) {
                            out.push_str(&css[copied..j]);
                            out.push('"');
                            out.push_str(&new.replace('"', "%22"));
                            out.push('"');
                            copied = end + 1;
                        }
                        i = end + 1;
                        continue;
                    }
                }
                i = j;
                continue;
            }
            i += 1;
        }
        out.push_str(&css[copied..]);
        out
    }

    /// Rewrites an HTML document and inserts `head` (markup) first in its
    /// `<head>` (before the first element other than `<html>` when there
    /// is no head start tag, at the end of an empty document).
    pub fn html(&mut self, html: &str, head: Option<&str>) -> String {
        let mut out = String::with_capacity(html.len() + head.map_or(0, str::len) + 1024);
        let bytes = html.as_bytes();
        let mut i = 0;
        let mut copied = 0;
        let mut head_done = head.is_none();
        while i < bytes.len() {
            if bytes[i] != b'<' {
                i += 1;
                continue;
            }
            if html[i..].starts_with("<!--") {
                i = html[i + 4..]
                    .find("-->")
                    .map_or(bytes.len(), |p| i + 4 + p + 3);
                continue;
            }
            let is_tag = bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'/');
            if !is_tag {
                i += 1;
                continue;
            }
            let Some(tag) = scan_tag(html, i) else {
                break;
            };
            if !tag.closing {
                out.push_str(&html[copied..tag.start]);
                if !head_done && tag.name != "html" && tag.name != "head" {
                    out.push_str(head.unwrap_or_default());
                    head_done = true;
                }
                out.push_str(&self.tag(html, &tag));
                copied = tag.end;
                if tag.name == "head" && !head_done {
                    out.push_str(head.unwrap_or_default());
                    head_done = true;
                }
            }
            i = tag.end;
            if !tag.closing
                && matches!(tag.name.as_str(), "script" | "style" | "textarea" | "title")
            {
                let close =
                    find_ci(&html[i..], &format!("</{}", tag.name)).map_or(bytes.len(), |p| i + p);
                let import_map = tag.name == "script"
                    && tag.attrs.iter().any(|a| {
                        a.name == "type"
                            && a.value
                                .as_deref()
                                .is_some_and(|v| v.trim().eq_ignore_ascii_case("importmap"))
                    });
                let new = match tag.name.as_str() {
                    "style" => Some(self.css(&html[i..close])),
                    _ if import_map => self.import_map(&html[i..close]),
                    _ => None,
                };
                if let Some(new) = new {
                    out.push_str(&html[copied..i]);
                    out.push_str(&new);
                    copied = close;
                }
                i = close;
            }
        }
        out.push_str(&html[copied..]);
        if !head_done {
            out.push_str(head.unwrap_or_default());
        }
        out
    }

    /// One start tag, with its URL-bearing attributes rewritten.
    fn tag(&mut self, html: &str, tag: &Tag) -> String {
        if tag.name == "base" {
            if let Some(href) = tag.attrs.iter().find(|a| a.name == "href") {
                if let Some(v) = &href.value {
                    if let Ok(b) = self.base.join(&decode_entities(v)) {
                        self.base = b;
                    }
                }
            }
        }
        let http_equiv_refresh = tag.attrs.iter().any(|a| {
            a.name == "http-equiv"
                && a.value
                    .as_deref()
                    .is_some_and(|v| v.eq_ignore_ascii_case("refresh"))
        });
        let mut out = String::new();
        let mut copied = tag.start;
        for a in &tag.attrs {
            let Some(raw) = &a.value else { continue };
            let value = decode_entities(raw);
            let name = a.name.as_str();
            let new = match (tag.name.as_str(), name) {
                ("a" | "area", "href") | ("form", "action") => self.url(&value, NAVIGATE),
                (_, "href" | "src" | "poster" | "background" | "lowsrc")
                | ("object", "data")
                | (_, "xlink:href") => self.url(&value, EMBED),
                (_, "srcset" | "imagesrcset") => Some(self.srcset(&value)),
                (_, n) if LAZY_SRCSET_ATTRS.contains(&n) => Some(self.srcset(&value)),
                // A lazy-loading attribute that holds one URL (not JSON, not
                // a flag): what a script will copy into `src`.
                (_, n) if LAZY_URL_ATTRS.contains(&n) && looks_like_url(value.trim()) => {
                    self.url(&value, EMBED)
                }
                (_, "style") => Some(self.css(&value)),
                ("meta", "content") if http_equiv_refresh => self.refresh(&value),
                _ => None,
            };
            if let Some(new) = new {
                out.push_str(&html[copied..a.value_start]);
                out.push('"');
                out.push_str(&escape_attr(&new));
                out.push('"');
                copied = a.value_end;
            }
        }
        out.push_str(&html[copied..tag.end]);
        out
    }

    /// `<meta http-equiv=refresh content="5; url=...">`.
    fn refresh(&self, value: &str) -> Option<String> {
        let lower = value.to_ascii_lowercase();
        let at = lower.find("url=")?;
        let target = value[at + 4..].trim().trim_matches(['"', '\'']);
        Some(format!(
            "{}{}",
            &value[..at + 4],
            self.url(target, NAVIGATE)?
        ))
    }
}

/// A start or end tag found by [`scan_tag`]: byte spans into the document.
struct Tag {
    start: usize,
    end: usize,
    name: String,
    closing: bool,
    attrs: Vec<Attr>,
}

struct Attr {
    name: String,
    /// The value as written, without quotes.
    value: Option<String>,
    /// Span of the value including its quotes.
    value_start: usize,
    value_end: usize,
}

/// Scans the tag starting at `start` (a `<`); `None` when the document ends
/// inside it.
fn scan_tag(html: &str, start: usize) -> Option<Tag> {
    let b = html.as_bytes();
    let mut i = start + 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return None;
        }
        if b[i] == b'>' {
            return Some(Tag {
                start,
                end: i + 1,
                name,
                closing,
                attrs,
            });
        }
        let an_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let attr_name = html[an_start..i].to_ascii_lowercase();
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if j >= b.len() {
                return None;
            }
            let (value, vs, ve) = if b[j] == b'"' || b[j] == b'\'' {
                let q = b[j];
                let len = html[j + 1..].bytes().position(|c| c == q)?;
                (html[j + 1..j + 1 + len].to_string(), j, j + 1 + len + 1)
            } else {
                let mut k = j;
                while k < b.len() && !b[k].is_ascii_whitespace() && b[k] != b'>' {
                    k += 1;
                }
                (html[j..k].to_string(), j, k)
            };
            attrs.push(Attr {
                name: attr_name,
                value: Some(value),
                value_start: vs,
                value_end: ve,
            });
            i = ve;
        } else {
            if attr_name.is_empty() {
                i += 1;
                continue;
            }
            attrs.push(Attr {
                name: attr_name,
                value: None,
                value_start: i,
                value_end: i,
            });
        }
    }
}

/// The URL inside `url(` starting at `open`: (start, end, index of the
/// closing parenthesis).
fn css_token(css: &str, open: usize, close: u8) -> Option<(usize, usize, usize)> {
    let b = css.as_bytes();
    let mut i = open;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
        let q = b[i];
        let len = css[i + 1..].bytes().position(|c| c == q)?;
        let (s, e) = (i + 1, i + 1 + len);
        let c = css[e + 1..].bytes().position(|c| c == close)? + e + 1;
        return Some((s, e, c));
    }
    let c = css[i..].bytes().position(|c| c == close)? + i;
    Some((i, css[..c].trim_end().len().max(i), c))
}

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    hay.as_bytes()
        .windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
}

/// Undoes the character references that occur in URLs.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                _ if name.starts_with("#x") || name.starts_with("#X") => {
                    u32::from_str_radix(&name[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                }
                _ if name.starts_with('#') => name[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for a double-quoted attribute or element content.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> Rewriter {
        Rewriter::new(
            Url::parse("https://www.example.org/2016/11/aleppo/").unwrap(),
            "20161129100400",
        )
    }

    #[test]
    fn a_grant_prefix_is_kept_on_every_url() {
        let rw = rw().with_prefix("/g/ct_1.1700000000.00ff");
        assert_eq!(
            rw.url("photo.jpg", EMBED).unwrap(),
            "/g/ct_1.1700000000.00ff/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/photo.jpg"
        );
        assert_eq!(
            rw.url("/replay/2016id_/https://a.example/", EMBED).unwrap(),
            "/g/ct_1.1700000000.00ff/replay/2016id_/https://a.example/"
        );
        assert_eq!(rw.url("/g/ct_1.1700000000.00ff/replay/2016/x", ""), None);
        assert!(rw
            .css("a{background:url(bg.png)}")
            .contains("url(\"/g/ct_1.1700000000.00ff/replay/20161129100400if_/"));
    }

    #[test]
    fn images_links_and_styles_point_into_the_archive() {
        let html = r##"<!DOCTYPE html><html><head><link rel=stylesheet href="/style.css?v=2&amp;x=1"><style>body{background:url('bg.png')}</style></head><body class="post"><img src="photo.jpg" srcset="a.jpg 1x, /b.jpg 2x"><a href="https://other.example/">x</a><a href="#top">t</a><script>var u = "/live.js";</script><div style="background-image: url(p.png)"></div></body></html>"##;
        let out = rw().html(html, Some("<div id=banner></div>"));
        assert!(
            out.contains(
                r#"href="/replay/20161129100400if_/https://www.example.org/style.css?v=2&amp;x=1""#
            ),
            "{out}"
        );
        assert!(
            out.contains(
                r#"url("/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/bg.png")"#
            ),
            "{out}"
        );
        assert!(
            out.starts_with("<!DOCTYPE html><html><head><div id=banner></div><link "),
            "the head markup comes first: {out}"
        );
        assert!(out.contains(r#"<body class="post"><img src="/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/photo.jpg""#), "{out}");
        assert!(out.contains(r#"srcset="/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/a.jpg 1x, /replay/20161129100400if_/https://www.example.org/b.jpg 2x""#), "{out}");
        assert!(
            out.contains(r#"<a href="/replay/20161129100400/https://other.example/">"#),
            "{out}"
        );
        assert!(out.contains(r##"<a href="#top">"##), "{out}");
        assert!(
            out.contains(r#"var u = "/live.js";"#),
            "script text is left alone: {out}"
        );
        assert!(out.contains(r#"style="background-image: url(&quot;/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/p.png&quot;)""#), "{out}");
        assert!(out.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn head_markup_goes_before_anything_the_page_runs() {
        for (html, expected) in [
            ("<html><head><script>x</script>", "<html><head>H<script>"),
            (
                "<!doctype html><script>x</script>",
                "<!doctype html>H<script>",
            ),
            ("<html lang=ar><body>b", "<html lang=ar>H<body>"),
            ("text only", "text onlyH"),
        ] {
            let out = rw().html(html, Some("H"));
            assert!(out.starts_with(expected), "{html} gave {out}");
        }
        let head = rw().with_prefix("/g/x").head_markup("mp_");
        assert!(head.starts_with("<script type=\"importmap\">"), "{head}");
        assert!(
            head.contains(r#""https://":"/g/x/replay/20161129100400if_/https://""#),
            "{head}"
        );
        assert!(
            head.contains(r#""/":"/g/x/replay/20161129100400if_/https://www.example.org/""#),
            "root paths resolve against the archived site: {head}"
        );
        assert!(head.contains(r#""/g/x/replay/":"/g/x/replay/""#), "{head}");
        assert!(head.contains(r#""modifier":"mp_""#), "{head}");
        assert_eq!(head.matches("</script>").count(), 2, "{head}");
        let hostile = Rewriter::new(
            Url::parse("https://e.example/</script><script>alert(1)</script>").unwrap(),
            "2016",
        )
        .head_markup("if_");
        assert_eq!(hostile.matches("</script>").count(), 2, "{hostile}");
    }

    #[test]
    fn srcset_candidates_keep_the_commas_of_their_urls() {
        let out = rw().html(
            r#"<img srcset="https://res.example/image/upload/w_300,c_fill,q_auto/a.jpg 300w, https://res.example/image/upload/w_600,c_fill/a.jpg 600w">"#,
            None,
        );
        assert!(out.contains(r#"srcset="/replay/20161129100400if_/https://res.example/image/upload/w_300,c_fill,q_auto/a.jpg 300w, /replay/20161129100400if_/https://res.example/image/upload/w_600,c_fill/a.jpg 600w""#), "{out}");
    }

    #[test]
    fn lazy_loading_attributes_point_into_the_archive_json_stays() {
        let out = rw().html(
            r#"<div data-bg="/bg.jpg" data-lazy="true" data-src='{"m": "/m.jpg"}'></div><source data-srcset="a.webp 1x, b.webp 2x">"#,
            None,
        );
        assert!(
            out.contains(r#"data-bg="/replay/20161129100400if_/https://www.example.org/bg.jpg""#),
            "{out}"
        );
        assert!(out.contains(r#"data-lazy="true""#), "{out}");
        assert!(out.contains(r#"data-src='{"m": "/m.jpg"}'"#), "{out}");
        assert!(out.contains(r#"data-srcset="/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/a.webp 1x, /replay/20161129100400if_/https://www.example.org/2016/11/aleppo/b.webp 2x""#), "{out}");
    }

    #[test]
    fn import_maps_point_into_the_archive() {
        let out = rw().html(
            r#"<script type="importmap">{"imports": {"lib": "/js/lib.js", "https://cdn.example/": "https://cdn.example/v2/"}, "scopes": {"/js/": {"x": "./x.js"}}}</script>"#,
            None,
        );
        assert!(
            out.contains(r#""lib":"/replay/20161129100400if_/https://www.example.org/js/lib.js""#),
            "{out}"
        );
        assert!(
            out.contains(
                r#""https://cdn.example/":"/replay/20161129100400if_/https://cdn.example/v2/""#
            ),
            "{out}"
        );
        assert!(out.contains(r#""/replay/20161129100400if_/https://www.example.org/js/":{"x":"/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/x.js"}"#), "{out}");
    }

    #[test]
    fn base_href_changes_how_later_urls_resolve() {
        let out = rw().html(
            r#"<head><base href="https://cdn.example.net/assets/"></head><img src=x.png>"#,
            None,
        );
        assert!(
            out.contains(r#"src="/replay/20161129100400if_/https://cdn.example.net/assets/x.png""#),
            "{out}"
        );
    }

    #[test]
    fn broken_markup_passes_through_without_panicking() {
        for html in [
            "<",
            "<img src=\"unterminated",
            "<a href=",
            "<!-- open",
            "<style>url(",
            "<p>&#xZZ;&",
            "<img src='a.png'/",
        ] {
            let _ = rw().html(html, Some("B"));
        }
        assert_eq!(rw().css("@import 'a.css'; x{y:url( \"b.png\" )}"), "@import \"/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/a.css\"; x{y:url(\"/replay/20161129100400if_/https://www.example.org/2016/11/aleppo/b.png\")}");
    }

    #[test]
    fn data_and_javascript_urls_are_left_alone() {
        let r = rw();
        assert_eq!(r.url("data:image/png;base64,AAAA", ""), None);
        assert_eq!(r.url("javascript:void(0)", ""), None);
        assert_eq!(r.url("mailto:editor@example.org", ""), None);
    }
}
