//! Finding a page's requisites: what a reader's browser would have loaded.
//!
//! HTML is tokenized (html5gum, WHATWG rules, entities decoded) rather than
//! matched with patterns, so attribute values are read as a browser reads
//! them. `<style>` and `<script>` switch the tokenizer into raw-text states,
//! as the tree builder would; `<noscript>` content is read as markup, as a
//! browser without scripts reads it. CSS is scanned for `url()`, `@import`
//! and `image-set()`. HLS playlists and DASH manifests are read for their
//! variants, segments, keys and initialisation maps.
//! Only `http` and `https` URLs are returned, without fragments, in document
//! order and without repeats.

use html5gum::{State, Token, Tokenizer};
use url::Url;

/// What kind of document a discovered URL points at, when the markup says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    Stylesheet,
    /// An `iframe` or `frame` document, captured with its own requisites.
    Frame,
    /// An HLS playlist or DASH manifest (a variant, or one the page links).
    Stream,
    /// A media segment, key or initialisation map of a stream.
    Segment,
    Other,
}

/// A discovered requisite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub url: Url,
    pub hint: Hint,
}

#[derive(Default)]
struct Links {
    seen: std::collections::HashSet<String>,
    out: Vec<Link>,
}

impl Links {
    fn add(&mut self, base: &Url, raw: &str, hint: Hint) {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            return;
        }
        let Ok(mut url) = base.join(raw) else { return };
        if url.scheme() != "http" && url.scheme() != "https" {
            return;
        }
        url.set_fragment(None);
        if self.seen.insert(url.as_str().to_string()) {
            self.out.push(Link { url, hint });
        }
    }
}

/// Requisites of an HTML document (already decoded to text).
pub fn html_links(html: &str, page: &Url) -> Vec<Link> {
    let html: &str = &without_nul(html);
    let mut base = page.clone();
    let mut base_set = false;
    let mut links = Links::default();
    let mut in_style = false;
    // The text of a JSON data block (`<script type="application/ld+json">`).
    let mut json_script: Option<String> = None;
    let mut tokenizer = Tokenizer::new(html);
    while let Some(token) = tokenizer.next() {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                let attr = |n: &str| {
                    tag.attributes
                        .get(n.as_bytes())
                        .map(|v| String::from_utf8_lossy(&v.value).into_owned())
                };
                if name == "base" {
                    if let Some(b) = attr("href").and_then(|h| page.join(h.trim()).ok()) {
                        if !base_set {
                            base = b;
                            base_set = true;
                        }
                    }
                } else {
                    element_links(&name, &attr, &base, &mut links);
                    lazy_links(&attr, &base, &mut links);
                }
                if let Some(style) = attr("style") {
                    for u in css_urls(&style) {
                        links.add(&base, &u, Hint::Other);
                    }
                }
                // The legacy `background` attribute (body, table, td).
                if let Some(bg) = attr("background") {
                    links.add(&base, &bg, Hint::Other);
                }
                // Switch states as the tree builder would for raw-text elements.
                let state = match name.as_str() {
                    "style" | "xmp" | "iframe" | "noembed" | "noframes" => Some(State::RawText),
                    "script" => Some(State::ScriptData),
                    "title" | "textarea" => Some(State::RcData),
                    "plaintext" => Some(State::PlainText),
                    _ => None,
                };
                // The tokenizer remembers the start tag itself, so the raw
                // text ends at the matching end tag.
                if let Some(state) = state {
                    if !tag.self_closing {
                        tokenizer.set_state(state);
                        in_style = name == "style";
                        let kind = attr("type").unwrap_or_default().to_ascii_lowercase();
                        if name == "script" && kind.trim().ends_with("json") {
                            json_script = Some(String::new());
                        }
                    }
                }
            }
            Token::String(text) if in_style => {
                for u in css_links_text(&String::from_utf8_lossy(&text.value)) {
                    links.add(&base, &u.0, u.1);
                }
            }
            Token::String(text) if json_script.is_some() => {
                if let Some(j) = json_script.as_mut().filter(|j| j.len() < MAX_JSON_SCRIPT) {
                    j.push_str(&String::from_utf8_lossy(&text.value));
                }
            }
            Token::EndTag(_) => {
                in_style = false;
                if let Some(text) = json_script.take() {
                    json_script_media(&text, &base, &mut links);
                }
            }
            _ => {}
        }
    }
    links.out
}

/// The requisites one element names (`base` aside), by its tag name.
fn element_links(name: &str, attr: &dyn Fn(&str) -> Option<String>, base: &Url, links: &mut Links) {
    match name {
        "img" => {
            if let Some(v) = attr("src") {
                links.add(base, &v, Hint::Other);
            }
            if let Some(v) = attr("srcset") {
                for candidate in srcset_urls(&v) {
                    links.add(base, candidate, Hint::Other);
                }
            }
        }
        // SVG images, filters and sprites (`<use href="icons.svg#x">`).
        "image" | "feimage" | "use" => {
            for a in ["href", "xlink:href"] {
                if let Some(v) = attr(a) {
                    links.add(base, &v, Hint::Other);
                }
            }
        }
        "source" => {
            if let Some(v) = attr("src") {
                links.add(base, &v, stream_hint(&v, attr("type").as_deref()));
            }
            if let Some(v) = attr("srcset") {
                for candidate in srcset_urls(&v) {
                    links.add(base, candidate, Hint::Other);
                }
            }
        }
        "video" | "audio" | "track" | "embed" | "input" => {
            if let Some(v) = attr("src") {
                links.add(base, &v, stream_hint(&v, attr("type").as_deref()));
            }
            if let Some(v) = attr("poster") {
                links.add(base, &v, Hint::Other);
            }
        }
        "object" => {
            if let Some(v) = attr("data") {
                links.add(base, &v, stream_hint(&v, attr("type").as_deref()));
            }
        }
        "iframe" | "frame" => {
            if let Some(v) = attr("src") {
                links.add(base, &v, Hint::Frame);
            }
            if let Some(doc) = attr("srcdoc") {
                for link in html_links(&doc, base) {
                    links.add(base, link.url.as_str(), link.hint);
                }
            }
        }
        "script" => {
            if let Some(v) = attr("src") {
                links.add(base, &v, Hint::Other);
            }
        }
        "link" => {
            let rel = attr("rel").unwrap_or_default().to_ascii_lowercase();
            let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
            if let Some(href) = attr("href") {
                if rels.contains(&"stylesheet") {
                    links.add(base, &href, Hint::Stylesheet);
                } else if rels.iter().any(|r| {
                    r.contains("icon")
                        || matches!(*r, "preload" | "modulepreload" | "prefetch" | "manifest")
                }) {
                    let hint = match attr("as").as_deref() {
                        Some("style") => Hint::Stylesheet,
                        _ => stream_hint(&href, attr("type").as_deref()),
                    };
                    links.add(base, &href, hint);
                }
            }
            if let Some(v) = attr("imagesrcset") {
                for candidate in srcset_urls(&v) {
                    links.add(base, candidate, Hint::Other);
                }
            }
        }
        "meta" => {
            let key = attr("property")
                .or_else(|| attr("name"))
                .unwrap_or_default()
                .to_ascii_lowercase();
            if META_MEDIA.contains(&key.as_str()) {
                if let Some(v) = attr("content") {
                    links.add(base, &v, stream_hint(&v, None));
                }
            }
        }
        "a" => {
            // A linked stream is part of what the page shows.
            if let Some(href) = attr("href") {
                if stream_hint(&href, attr("type").as_deref()) == Hint::Stream {
                    links.add(base, &href, Hint::Stream);
                }
            }
        }
        _ => {}
    }
}

/// Attributes that lazy-loading scripts copy into `src` (or a background)
/// once the element scrolls into view, on any element: lazysizes, lozad,
/// jQuery lazyload, WordPress and Jetpack, Echo and others.
pub const LAZY_URL_ATTRS: &[&str] = &[
    "data-src",
    "datasrc",
    "data-lazy-src",
    "data-lazy",
    "data-original",
    "data-original-src",
    "data-src-retina",
    "data-hi-res-src",
    "data-high-res-src",
    "data-full-src",
    "data-large-file",
    "data-medium-file",
    "data-orig-file",
    "data-bg",
    "data-bg-src",
    "data-background",
    "data-background-image",
    "data-lazy-background",
    "data-echo",
    "data-poster",
    "data-thumb",
    "data-zoom-image",
    "data-image",
    "data-lazyload",
    "data-ll-src",
    "data-defer-src",
];

/// The `srcset` forms of the same.
pub const LAZY_SRCSET_ATTRS: &[&str] = &[
    "data-srcset",
    "data-lazy-srcset",
    "data-original-set",
    "data-ll-srcset",
];

/// The URLs a lazy-loading attribute's value names: the value itself when
/// it looks like a URL, or the URL-like strings of a JSON value
/// (`data-src='{"mobile": "/m.jpg", "desktop": "/d.jpg"}'`), which is
/// never a URL itself.
pub fn lazy_values(value: &str) -> Vec<String> {
    let v = value.trim();
    if v.starts_with('{') || v.starts_with('[') {
        let mut out = Vec::new();
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(v) {
            json_urls(&json, &mut |s| {
                if looks_like_url(s) {
                    out.push(s.to_string());
                }
            });
        }
        return out;
    }
    if looks_like_url(v) {
        vec![v.to_string()]
    } else {
        Vec::new()
    }
}

/// Every string in a JSON value, depth first.
fn json_urls(value: &serde_json::Value, found: &mut dyn FnMut(&str)) {
    match value {
        serde_json::Value::String(s) => found(s),
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_urls(v, found)),
        serde_json::Value::Object(o) => o.values().for_each(|v| json_urls(v, found)),
        _ => {}
    }
}

/// Whether an attribute value (not known to hold a URL) looks like one: no
/// spaces, and either absolute or rooted (`https:`, `//`, `/`, `./`) or a
/// path ending in a file extension (`img/a.jpg?w=2`). `true`, `1.5` and
/// `lazy` do not.
pub fn looks_like_url(v: &str) -> bool {
    if v.is_empty() || v.contains(char::is_whitespace) || v.starts_with('#') {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if ["http://", "https://", "//", "/", "./", "../"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return true;
    }
    let path = lower.split(['?', '#']).next().unwrap_or_default();
    let Some((stem, ext)) = path.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && (2..=5).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_alphanumeric())
        && ext.bytes().any(|b| b.is_ascii_alphabetic())
}

/// The lazy-loading attributes of any element.
fn lazy_links(attr: &dyn Fn(&str) -> Option<String>, base: &Url, links: &mut Links) {
    for a in LAZY_URL_ATTRS {
        if let Some(v) = attr(a) {
            for u in lazy_values(&v) {
                links.add(base, &u, stream_hint(&u, None));
            }
        }
    }
    for a in LAZY_SRCSET_ATTRS {
        if let Some(v) = attr(a) {
            for candidate in srcset_urls(&v) {
                links.add(base, candidate, Hint::Other);
            }
        }
    }
}

/// Media a page's inline JSON names (`<script type="application/ld+json">`
/// and other JSON data blocks): absolute URLs of images, video and audio.
fn json_script_media(text: &str, base: &Url, links: &mut Links) {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return;
    };
    json_urls(&json, &mut |s| {
        let lower = s.to_ascii_lowercase();
        let path = lower.split(['?', '#']).next().unwrap_or_default();
        let media = MEDIA_EXTENSIONS.iter().any(|e| path.ends_with(e));
        if media && (lower.starts_with("https://") || lower.starts_with("http://")) {
            links.add(base, s, stream_hint(s, None));
        }
    });
}

/// Largest inline JSON block read for media URLs.
const MAX_JSON_SCRIPT: usize = 4 * 1024 * 1024;

/// File extensions of media, for URLs found in data rather than markup.
const MEDIA_EXTENSIONS: &[&str] = &[
    ".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".svg", ".mp4", ".webm", ".m4v", ".mov",
    ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".wav", ".m3u8", ".mpd", ".vtt",
];

/// The text with NUL characters removed. html5gum reports each NUL as a
/// parse error and keeps every report until the surrounding text ends, so a
/// page of NULs (a decoded gzip bomb) would cost gigabytes; browsers drop
/// them from the DOM anyway.
pub fn without_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', ""))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `<meta>` properties whose content is media the page shows when shared.
const META_MEDIA: &[&str] = &[
    "og:image",
    "og:image:url",
    "og:image:secure_url",
    "og:video",
    "og:video:url",
    "og:video:secure_url",
    "og:audio",
    "og:audio:url",
    "og:audio:secure_url",
    "twitter:image",
    "twitter:image:src",
    "twitter:player:stream",
];

/// `Stream` for a URL or type that names an HLS playlist or DASH manifest.
pub fn stream_hint(url: &str, mime: Option<&str>) -> Hint {
    let mime = mime.unwrap_or_default().to_ascii_lowercase();
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if is_stream_type(&mime) || path.ends_with(".m3u8") || path.ends_with(".mpd") {
        Hint::Stream
    } else {
        Hint::Other
    }
}

/// HLS playlist and DASH manifest media types.
pub fn is_stream_type(mime: &str) -> bool {
    is_hls_type(mime) || mime == "application/dash+xml"
}

/// Whether a response of this type is a document custody reads for the
/// URLs it names (markup, a stylesheet, a stream manifest); an unknown
/// type counts as one.
pub fn names_others(mime: Option<&str>) -> bool {
    match mime {
        None => true,
        Some(m) => {
            matches!(
                m,
                "text/html" | "application/xhtml+xml" | "text/css" | "application/dash+xml"
            ) || is_hls_type(m)
        }
    }
}

pub fn is_hls_type(mime: &str) -> bool {
    matches!(
        mime,
        "application/vnd.apple.mpegurl"
            | "application/x-mpegurl"
            | "audio/mpegurl"
            | "audio/x-mpegurl"
    )
}

/// Requisites of a stylesheet.
pub fn css_links(css: &str, sheet: &Url) -> Vec<Link> {
    let mut links = Links::default();
    for (u, hint) in css_links_text(css) {
        links.add(sheet, &u, hint);
    }
    links.out
}

/// URL candidates of a `srcset` value, following the WHATWG parsing rules:
/// candidates are separated by commas, a URL runs to the next whitespace and
/// loses trailing commas, and descriptors run to the next comma.
pub fn srcset_urls(srcset: &str) -> Vec<&str> {
    srcset_candidates(srcset)
        .into_iter()
        .map(|(url, _)| url)
        .collect()
}

/// The candidates of a `srcset` value as (URL, descriptors), by the same
/// rules; the descriptors are trimmed and may be empty.
pub fn srcset_candidates(srcset: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let bytes = srcset.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut url = &srcset[start..i];
        let ended_by_comma = url.ends_with(',');
        url = url.trim_end_matches(',');
        let descriptors_start = i;
        if !ended_by_comma {
            // Skip descriptors, minding parentheses, up to the next comma.
            let mut depth = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'(' => depth += 1,
                    b')' if depth > 0 => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
        }
        if !url.is_empty() {
            out.push((url, srcset[descriptors_start..i].trim()));
        }
    }
    out
}

/// `url(...)` values in CSS text (declarations or a `style` attribute).
fn css_urls(css: &str) -> Vec<String> {
    css_links_text(css).into_iter().map(|(u, _)| u).collect()
}

fn css_links_text(css: &str) -> Vec<(String, Hint)> {
    let css = strip_css_comments(css);
    let mut out = Vec::new();
    let lower = css.to_ascii_lowercase();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("url(") {
        let start = pos + found + 4;
        let Some((value, end)) = css_url_value(&css, start) else {
            break;
        };
        let preceded_by_import = lower[..pos + found].trim_end().ends_with("@import");
        let hint = if preceded_by_import {
            Hint::Stylesheet
        } else {
            Hint::Other
        };
        if !value.starts_with("data:") {
            out.push((value, hint));
        }
        pos = end;
    }
    // image-set("a.png" 1x, "b.png" 2x): bare strings are URLs there.
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("image-set(") {
        let start = pos + found + "image-set(".len();
        let mut depth = 1;
        let mut i = start;
        let bytes = css.as_bytes();
        while i < bytes.len() && depth > 0 {
            match bytes[i] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                q @ (b'"' | b'\'') if depth == 1 => {
                    if let Some(end) = css[i + 1..].find(q as char) {
                        let value = &css[i + 1..i + 1 + end];
                        if !value.starts_with("data:") {
                            out.push((value.to_string(), Hint::Other));
                        }
                        i += end + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        pos = i.max(start);
    }
    // @import "sheet.css";
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("@import") {
        let after = pos + found + "@import".len();
        let rest = css[after..].trim_start();
        let quote = rest.chars().next();
        if let Some(q @ ('"' | '\'')) = quote {
            if let Some(end) = rest[1..].find(q) {
                out.push((rest[1..1 + end].to_string(), Hint::Stylesheet));
            }
        }
        pos = after;
    }
    out
}

fn css_url_value(css: &str, start: usize) -> Option<(String, usize)> {
    let rest = &css[start..];
    let trimmed = rest.trim_start();
    let skipped = rest.len() - trimmed.len();
    match trimmed.chars().next()? {
        q @ ('"' | '\'') => {
            let end = trimmed[1..].find(q)?;
            let value = trimmed[1..1 + end].to_string();
            Some((value, start + skipped + 1 + end + 1))
        }
        _ => {
            let end = trimmed.find(')')?;
            Some((trimmed[..end].trim().to_string(), start + skipped + end + 1))
        }
    }
}

fn strip_css_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// What an HLS playlist refers to: variant playlists and renditions
/// (`Stream`), and media segments, keys and initialisation maps (`Segment`).
/// At most `max_segments` segments (keys and maps included) are returned.
pub fn hls_links(playlist: &str, base: &Url, max_segments: usize) -> Vec<Link> {
    let mut links = Links::default();
    let mut next_is_variant = false;
    let mut segments = 0usize;
    for line in playlist.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            let name = tag.split(':').next().unwrap_or_default();
            let hint = match name {
                "EXT-X-STREAM-INF" => {
                    next_is_variant = true;
                    None
                }
                "EXT-X-MEDIA" | "EXT-X-I-FRAME-STREAM-INF" => Some(Hint::Stream),
                "EXT-X-KEY" | "EXT-X-SESSION-KEY" | "EXT-X-MAP" | "EXT-X-PART"
                | "EXT-X-PRELOAD-HINT" => Some(Hint::Segment),
                _ => None,
            };
            if let (Some(hint), Some(uri)) = (hint, quoted_attribute(tag, "URI")) {
                // Keys and maps count as segments.
                if hint == Hint::Segment {
                    if segments >= max_segments {
                        continue;
                    }
                    segments += 1;
                }
                links.add(base, &uri, hint);
            }
            continue;
        }
        if next_is_variant {
            links.add(base, line, Hint::Stream);
            next_is_variant = false;
        } else if segments < max_segments {
            segments += 1;
            links.add(base, line, Hint::Segment);
        }
    }
    links.out
}

/// `NAME="value"` in an HLS attribute list.
fn quoted_attribute(tag: &str, name: &str) -> Option<String> {
    let list = tag.split_once(':')?.1;
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().trim_start_matches(',').trim();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        if key == name {
            return Some(value.to_string());
        }
        rest = after.trim_start_matches(',');
    }
    None
}

/// What a DASH manifest refers to: initialisation and media segments of
/// every representation (`SegmentTemplate` with or without a
/// `SegmentTimeline`, `SegmentList`, or a single `BaseURL`), at most
/// `max_segments` of them.
pub fn dash_links(mpd: &str, base: &Url, max_segments: usize) -> Vec<Link> {
    let mpd: &str = &without_nul(mpd);
    let mut links = Links::default();
    let mut segments = 0usize;
    let mut stack = vec![Level {
        name: String::new(),
        base: base.clone(),
        own_base: false,
        template: Default::default(),
        timeline: Vec::new(),
        period_secs: None,
        rep_id: String::new(),
        bandwidth: String::new(),
        listed: false,
        text: String::new(),
    }];
    let tokenizer = Tokenizer::new(mpd);
    for token in tokenizer {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                let attr = |n: &str| {
                    tag.attributes
                        .get(n.as_bytes())
                        .map(|v| String::from_utf8_lossy(&v.value).into_owned())
                };
                let top = stack.last_mut().expect("root level");
                match name.as_str() {
                    "mpd" | "period" | "adaptationset" | "representation" | "baseurl" => {
                        let mut level = top.clone();
                        level.name = name.clone();
                        level.own_base = false;
                        level.listed = false;
                        level.text.clear();
                        let key = if name == "mpd" {
                            "mediapresentationduration"
                        } else {
                            "duration"
                        };
                        if name == "mpd" || name == "period" {
                            if let Some(secs) = attr(key).as_deref().and_then(iso_duration_secs) {
                                level.period_secs = Some(secs);
                            }
                        }
                        if name == "representation" {
                            level.rep_id = attr("id").unwrap_or_default();
                            level.bandwidth = attr("bandwidth").unwrap_or_default();
                        }
                        if !tag.self_closing {
                            stack.push(level);
                        } else if name == "representation" {
                            emit_representation(&level, &mut links, &mut segments, max_segments);
                        }
                    }
                    "segmenttemplate" => {
                        for (k, v) in tag.attributes.iter() {
                            top.template.insert(
                                String::from_utf8_lossy(k).to_ascii_lowercase(),
                                String::from_utf8_lossy(&v.value).into_owned(),
                            );
                        }
                        top.timeline.clear();
                    }
                    "s" => {
                        let num = |n: &str| attr(n).and_then(|v| v.trim().parse::<i64>().ok());
                        if let Some(d) = num("d").filter(|d| *d > 0) {
                            let t = num("t").and_then(|t| u64::try_from(t).ok());
                            top.timeline.push((t, d as u64, num("r").unwrap_or(0)));
                        }
                    }
                    "segmenturl" | "initialization" | "representationindex" => {
                        let key = if name == "segmenturl" {
                            "media"
                        } else {
                            "sourceurl"
                        };
                        if let Some(v) = attr(key) {
                            if segments < max_segments {
                                segments += 1;
                                links.add(&top.base, &v, Hint::Segment);
                            }
                        }
                        top.listed = true;
                    }
                    _ => {}
                }
            }
            Token::String(text) => {
                if let Some(top) = stack.last_mut().filter(|l| l.name == "baseurl") {
                    top.text.push_str(&String::from_utf8_lossy(&text.value));
                }
            }
            Token::EndTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                let Some(pos) = stack.iter().rposition(|l| l.name == name) else {
                    continue;
                };
                if pos == 0 {
                    continue;
                }
                let level = stack.remove(pos);
                stack.truncate(pos);
                let parent = stack.last_mut().expect("root level");
                match name.as_str() {
                    "baseurl" => {
                        if let Ok(joined) = parent.base.join(level.text.trim()) {
                            parent.base = joined;
                            parent.own_base = true;
                        }
                    }
                    "representation" => {
                        emit_representation(&level, &mut links, &mut segments, max_segments)
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    links.out
}

/// An element of a DASH manifest with what its children inherit.
#[derive(Clone)]
struct Level {
    name: String,
    base: Url,
    own_base: bool,
    template: std::collections::HashMap<String, String>,
    timeline: Vec<(Option<u64>, u64, i64)>,
    period_secs: Option<f64>,
    rep_id: String,
    bandwidth: String,
    listed: bool,
    text: String,
}

fn emit_representation(level: &Level, links: &mut Links, segments: &mut usize, max: usize) {
    let room = max.saturating_sub(*segments);
    let found = representation_segments(
        &level.template,
        &level.timeline,
        level.period_secs,
        &level.rep_id,
        &level.bandwidth,
        room,
    );
    if found.is_empty() && !level.listed && level.own_base && room > 0 {
        // A single-file representation: its BaseURL.
        *segments += 1;
        links.add(&level.base, level.base.as_str(), Hint::Segment);
    }
    for url in found {
        *segments += 1;
        links.add(&level.base, &url, Hint::Segment);
    }
}

/// The initialisation and media segment URLs a `SegmentTemplate` names.
fn representation_segments(
    template: &std::collections::HashMap<String, String>,
    timeline: &[(Option<u64>, u64, i64)],
    period_secs: Option<f64>,
    rep_id: &str,
    bandwidth: &str,
    max: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    let fill = |pattern: &str, number: u64, time: u64| -> String {
        let mut result = String::new();
        let mut rest = pattern;
        while let Some(start) = rest.find('$') {
            result.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('$') else {
                result.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let ident = &after[..end];
            let (name, format) = ident.split_once('%').unwrap_or((ident, ""));
            let width: usize = format
                .trim_start_matches('0')
                .trim_end_matches('d')
                .parse()
                .unwrap_or(0);
            let value = match name {
                "" => "$".to_string(),
                "RepresentationID" => rep_id.to_string(),
                "Bandwidth" => bandwidth.to_string(),
                "Number" => number.to_string(),
                "Time" => time.to_string(),
                other => format!("${other}$"),
            };
            result.push_str(&format!("{value:0>width$}"));
            rest = &after[end + 1..];
        }
        result.push_str(rest);
        result
    };
    if let Some(init) = template.get("initialization") {
        if max > 0 {
            out.push(fill(init, 0, 0));
        }
    }
    let Some(media) = template.get("media") else {
        return out;
    };
    let start_number: u64 = template
        .get("startnumber")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let timescale: f64 = template
        .get("timescale")
        .and_then(|v| v.parse().ok())
        .filter(|t: &f64| *t > 0.0)
        .unwrap_or(1.0);
    let mut number = start_number;
    if !timeline.is_empty() {
        let mut time = 0u64;
        let period_end = period_secs.map(|s| (s * timescale) as u64);
        for &(t, d, r) in timeline {
            if let Some(t) = t {
                time = t;
            }
            let repeats = if r < 0 {
                match period_end {
                    Some(end) if end > time => (end - time).div_ceil(d).saturating_sub(1),
                    _ => 0,
                }
            } else {
                r as u64
            };
            for _ in 0..=repeats {
                if out.len() >= max {
                    return out;
                }
                out.push(fill(media, number, time));
                number += 1;
                time += d;
            }
        }
    } else if let (Some(duration), Some(total)) = (
        template
            .get("duration")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|d| *d > 0.0),
        period_secs,
    ) {
        let count = (total * timescale / duration).ceil() as u64;
        for i in 0..count {
            if out.len() >= max {
                break;
            }
            let time = (i as f64 * duration) as u64;
            out.push(fill(media, number, time));
            number += 1;
        }
    }
    out
}

/// Seconds in an ISO 8601 duration such as `PT1M30.5S` or `P0DT2H`
/// (a year is 365 days and a month 30, as DASH players reckon them).
pub fn iso_duration_secs(value: &str) -> Option<f64> {
    let rest = value.trim().strip_prefix('P')?;
    let mut secs = 0.0;
    let mut in_time = false;
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' | '.' => number.push(c),
            unit => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                secs += n * match (unit, in_time) {
                    ('Y', false) => 365.0 * 86400.0,
                    ('M', false) => 30.0 * 86400.0,
                    ('W', false) => 7.0 * 86400.0,
                    ('D', false) => 86400.0,
                    ('H', true) => 3600.0,
                    ('M', true) => 60.0,
                    ('S', true) => 1.0,
                    _ => return None,
                };
            }
        }
    }
    number.is_empty().then_some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(links: &[Link]) -> Vec<&str> {
        links.iter().map(|l| l.url.as_str()).collect()
    }

    #[test]
    fn article_requisites_are_found_with_entities_decoded_and_base_applied() {
        let page = Url::parse("https://aleppo-news.example/2016/11/29/regime-airstrikes/").unwrap();
        let html = r#"<!doctype html><html><head>
            <base href="https://aleppo-news.example/">
            <link rel="stylesheet" href="wp-content/style.css?ver=4.6&amp;x=1">
            <link rel="shortcut icon" href="/favicon.ico">
            <style>.hero { background: url('img/bg.jpg') } /* url(commented.png) */</style>
            <script src="js/jquery.js"></script>
            <script>var s = "<img src='not-a-tag.png'>";</script>
            </head><body>
            <img src="img/header-1024.jpg" srcset="img/header-300.jpg 300w, img/header-1024.jpg 1024w,img/header-2048.jpg 2x">
            <img data-src="img/lazy.jpg" src="data:image/gif;base64,R0lGOD">
            <video poster="video/poster.jpg"><source src="video/strike.mp4" type="video/mp4"></video>
            <div style="background-image:url(img/inline.png)"></div>
            <a href="/other-article/">not a requisite</a>
            </body></html>"#;
        let found = html_links(html, &page);
        assert_eq!(
            urls(&found),
            vec![
                "https://aleppo-news.example/wp-content/style.css?ver=4.6&x=1",
                "https://aleppo-news.example/favicon.ico",
                "https://aleppo-news.example/img/bg.jpg",
                "https://aleppo-news.example/js/jquery.js",
                "https://aleppo-news.example/img/header-1024.jpg",
                "https://aleppo-news.example/img/header-300.jpg",
                "https://aleppo-news.example/img/header-2048.jpg",
                "https://aleppo-news.example/img/lazy.jpg",
                "https://aleppo-news.example/video/poster.jpg",
                "https://aleppo-news.example/video/strike.mp4",
                "https://aleppo-news.example/img/inline.png",
            ]
        );
        assert_eq!(found[0].hint, Hint::Stylesheet);
    }

    #[test]
    fn srcset_follows_whatwg_candidate_rules() {
        assert_eq!(srcset_urls("a.jpg 1x, b.jpg 2x"), vec!["a.jpg", "b.jpg"]);
        // A URL runs to the next whitespace: commas inside it belong to it.
        assert_eq!(srcset_urls("a.jpg,b.jpg"), vec!["a.jpg,b.jpg"]);
        assert_eq!(srcset_urls("a.jpg, b.jpg"), vec!["a.jpg", "b.jpg"]);
        assert_eq!(
            srcset_urls("  a,b.jpg 100w , c.jpg"),
            vec!["a,b.jpg", "c.jpg"]
        );
        assert_eq!(
            srcset_urls("img.jpg?w=1,2 (max-width: 3px) 1x, x.jpg"),
            vec!["img.jpg?w=1,2", "x.jpg"]
        );
        assert!(srcset_urls("").is_empty());
    }

    #[test]
    fn srcset_candidates_keep_their_descriptors() {
        assert_eq!(
            srcset_candidates("https://res.example/w_300,c_fill/a.jpg 300w, b.jpg, c.jpg 2x"),
            vec![
                ("https://res.example/w_300,c_fill/a.jpg", "300w"),
                ("b.jpg", ""),
                ("c.jpg", "2x")
            ]
        );
    }

    #[test]
    fn lazy_loading_svg_prefetch_and_json_data_are_found() {
        let page = Url::parse("https://news.example/a/").unwrap();
        let html = r##"<html><head>
            <link rel="prefetch" href="/next.jpg"><link rel="dns-prefetch" href="//cdn.example">
            <script type="application/ld+json">{"@type": "NewsArticle", "image": ["https://cdn.example/ld.jpg"],
              "video": {"contentUrl": "https://cdn.example/clip.mp4"}, "url": "https://news.example/a/"}</script>
            </head><body>
            <svg><image href="/svg-image.png"/><use xlink:href="/sprite.svg#icon"/><use href="#local"/></svg>
            <picture><source data-srcset="/s-1.webp 1x, /s-2.webp 2x"><img src="/p.jpg"></picture>
            <div data-bg="/bg.jpg" data-original="orig.png" data-src='{"mobile": "/m.jpg", "desktop": "/d.jpg", "n": 2}'></div>
            <span datasrc="/datasrc.gif" data-lazy="true" data-image="1.5"></span>
            <img data-lazy-srcset="/l-1.jpg 1x, /l-2.jpg 2x" data-src="/lazy.jpg">
            <a data-src="/a-lazy.jpg" href="/link/">x</a>
            </body></html>"##;
        let found = html_links(html, &page);
        let got = urls(&found);
        for expected in [
            "https://news.example/next.jpg",
            "https://cdn.example/ld.jpg",
            "https://cdn.example/clip.mp4",
            "https://news.example/svg-image.png",
            "https://news.example/sprite.svg",
            "https://news.example/s-1.webp",
            "https://news.example/s-2.webp",
            "https://news.example/bg.jpg",
            "https://news.example/a/orig.png",
            "https://news.example/m.jpg",
            "https://news.example/d.jpg",
            "https://news.example/datasrc.gif",
            "https://news.example/l-1.jpg",
            "https://news.example/l-2.jpg",
            "https://news.example/lazy.jpg",
            "https://news.example/a-lazy.jpg",
        ] {
            assert!(got.contains(&expected), "{expected} missing from {got:?}");
        }
        for not_media in [
            "https://cdn.example/",
            "https://news.example/a/",
            "https://news.example/a/true",
            "https://news.example/a/1.5",
            "https://news.example/link/",
        ] {
            assert!(!got.contains(&not_media), "{not_media} found in {got:?}");
        }
        assert!(
            !got.iter().any(|u| u.contains('{') || u.contains("%7B")),
            "a JSON value was taken for a URL: {got:?}"
        );
    }

    #[test]
    fn stylesheet_imports_fonts_and_backgrounds() {
        let sheet = Url::parse("https://aleppo-news.example/wp-content/style.css").unwrap();
        let css = r#"@import "fonts.css"; @import url(print.css) print;
            @font-face { font-family: Noto; src: url("fonts/noto.woff2") format("woff2"), url(fonts/noto.woff); }
            body { background: URL( img/paper.png ) } .x { background: url(data:image/png;base64,AAA) }"#;
        let found = css_links(css, &sheet);
        assert_eq!(
            urls(&found),
            vec![
                "https://aleppo-news.example/wp-content/print.css",
                "https://aleppo-news.example/wp-content/fonts/noto.woff2",
                "https://aleppo-news.example/wp-content/fonts/noto.woff",
                "https://aleppo-news.example/wp-content/img/paper.png",
                "https://aleppo-news.example/wp-content/fonts.css",
            ]
        );
        assert_eq!(found[0].hint, Hint::Stylesheet);
        assert_eq!(found[4].hint, Hint::Stylesheet);
    }
    #[test]
    fn every_kind_of_page_requisite_is_found() {
        let page = Url::parse("https://aleppo-news.example/article/").unwrap();
        let html = r#"<html><head>
            <meta property="og:image" content="/og.jpg"><meta name="twitter:image" content="/tw.jpg">
            <meta property="og:video" content="https://cdn.example/og.mp4">
            <link rel="apple-touch-icon" href="/touch.png"><link rel="preload" as="font" href="/f.woff2">
            <link rel="manifest" href="/site.webmanifest"><link rel="preload" as="style" href="/late.css">
            <style>.a { background-image: image-set("bg-1x.webp" 1x, url(bg-2x.webp) 2x) }</style>
            </head><body background="/paper.gif">
            <picture><source type="image/webp" srcset="/h.webp 1x, /h@2x.webp 2x"><img src="/h.jpg"></picture>
            <img data-srcset="/lazy-300.jpg 300w, /lazy-600.jpg 600w" data-original="/orig.jpg">
            <audio src="/report.mp3"></audio><video><track src="/subs.vtt" kind="subtitles"></video>
            <embed src="/player.swf"><object data="/doc.pdf"></object>
            <iframe src="https://player.example/embed/7"></iframe>
            <iframe srcdoc="&lt;img src=&quot;/in-srcdoc.png&quot;&gt;"></iframe>
            <noscript><img src="/noscript.jpg"></noscript>
            <a href="/live/master.m3u8">live stream</a><a href="/vod/manifest.mpd">DASH</a><a href="/next/">next</a>
            <video src="/hls/stream" type="application/x-mpegURL"></video>
            </body></html>"#;
        let found = html_links(html, &page);
        let hint = |u: &str| found.iter().find(|l| l.url.as_str() == u).map(|l| l.hint);
        for expected in [
            "https://aleppo-news.example/og.jpg",
            "https://aleppo-news.example/tw.jpg",
            "https://cdn.example/og.mp4",
            "https://aleppo-news.example/touch.png",
            "https://aleppo-news.example/f.woff2",
            "https://aleppo-news.example/site.webmanifest",
            "https://aleppo-news.example/article/bg-1x.webp",
            "https://aleppo-news.example/article/bg-2x.webp",
            "https://aleppo-news.example/paper.gif",
            "https://aleppo-news.example/h.webp",
            "https://aleppo-news.example/h@2x.webp",
            "https://aleppo-news.example/h.jpg",
            "https://aleppo-news.example/lazy-300.jpg",
            "https://aleppo-news.example/lazy-600.jpg",
            "https://aleppo-news.example/orig.jpg",
            "https://aleppo-news.example/report.mp3",
            "https://aleppo-news.example/subs.vtt",
            "https://aleppo-news.example/player.swf",
            "https://aleppo-news.example/doc.pdf",
            "https://aleppo-news.example/in-srcdoc.png",
            "https://aleppo-news.example/noscript.jpg",
        ] {
            assert!(
                hint(expected).is_some(),
                "{expected} missing from {:?}",
                urls(&found)
            );
        }
        assert_eq!(
            hint("https://aleppo-news.example/late.css"),
            Some(Hint::Stylesheet)
        );
        assert_eq!(hint("https://player.example/embed/7"), Some(Hint::Frame));
        assert_eq!(
            hint("https://aleppo-news.example/live/master.m3u8"),
            Some(Hint::Stream)
        );
        assert_eq!(
            hint("https://aleppo-news.example/vod/manifest.mpd"),
            Some(Hint::Stream)
        );
        assert_eq!(
            hint("https://aleppo-news.example/hls/stream"),
            Some(Hint::Stream)
        );
        assert_eq!(hint("https://aleppo-news.example/next/"), None);
    }

    #[test]
    fn a_page_of_nul_characters_costs_no_more_than_its_size() {
        // Measured in a process of its own: `VmHWM` counts every test
        // running beside it.
        if std::env::var_os("CUSTODY_TEST_ALONE").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "capture::discover::tests::a_page_of_nul_characters_costs_no_more_than_its_size",
                    "--test-threads=1",
                ])
                .env("CUSTODY_TEST_ALONE", "1")
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{said}");
            assert!(said.contains("1 passed"), "{said}");
            return;
        }
        fn peak_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0)
        }
        let page = Url::parse("https://aleppo-news.example/").unwrap();
        let text = format!("{}<img src=after.png>", "\0".repeat(8 << 20));
        let before = peak_kib();
        let found = html_links(&text, &page);
        assert_eq!(urls(&found), vec!["https://aleppo-news.example/after.png"]);
        // Without the fix this took about 500 MiB more (60 bytes a NUL).
        assert!(
            peak_kib() < before + 64 * 1024,
            "{} KiB",
            peak_kib() - before
        );
    }

    #[test]
    fn hls_master_and_media_playlists() {
        let master = Url::parse("https://cdn.example/live/master.m3u8").unwrap();
        let text = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"ar\",URI=\"audio/ar.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS=\"avc1.4d401e,mp4a.40.2\"\nlow/index.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2400000\nhttps://cdn2.example/high/index.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"iframes.m3u8\"\n";
        let found = hls_links(text, &master, 10);
        assert_eq!(
            urls(&found),
            vec![
                "https://cdn.example/live/audio/ar.m3u8",
                "https://cdn.example/live/low/index.m3u8",
                "https://cdn2.example/high/index.m3u8",
                "https://cdn.example/live/iframes.m3u8",
            ]
        );
        assert!(found.iter().all(|l| l.hint == Hint::Stream));
        let media = Url::parse("https://cdn.example/live/low/index.m3u8").unwrap();
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k1\",IV=0x1\n\
            #EXTINF:4.0,\nseg0.m4s\n#EXTINF:4.0,\nseg1.m4s\n#EXTINF:4.0,\nseg2.m4s\n#EXT-X-ENDLIST\n";
        let found = hls_links(text, &media, 4);
        assert_eq!(
            urls(&found),
            vec![
                "https://cdn.example/live/low/init.mp4",
                "https://keys.example/k1",
                "https://cdn.example/live/low/seg0.m4s",
                "https://cdn.example/live/low/seg1.m4s",
            ]
        );
        assert!(found.iter().all(|l| l.hint == Hint::Segment));
    }

    #[test]
    fn dash_templates_timelines_lists_and_base_urls() {
        let mpd_url = Url::parse("https://cdn.example/vod/manifest.mpd").unwrap();
        let mpd = r#"<?xml version="1.0"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" mediaPresentationDuration="PT10S" type="static">
 <BaseURL>media/</BaseURL>
 <Period>
  <AdaptationSet mimeType="video/mp4">
   <SegmentTemplate timescale="1000" duration="4000" startNumber="1"
     initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number%03d$.m4s"/>
   <Representation id="v360" bandwidth="800000"/>
  </AdaptationSet>
  <AdaptationSet mimeType="audio/mp4">
   <Representation id="a1" bandwidth="64000">
    <SegmentTemplate timescale="48000" initialization="a-init.mp4" media="a-$Time$.m4s">
     <SegmentTimeline><S t="0" d="96000" r="1"/><S d="48000"/></SegmentTimeline>
    </SegmentTemplate>
   </Representation>
  </AdaptationSet>
  <AdaptationSet mimeType="text/vtt">
   <Representation id="subs"><BaseURL>subs/ar.vtt</BaseURL></Representation>
  </AdaptationSet>
  <AdaptationSet>
   <Representation id="list"><SegmentList><Initialization sourceURL="l/init.mp4"/>
    <SegmentURL media="l/1.m4s"/><SegmentURL media="l/2.m4s"/></SegmentList></Representation>
  </AdaptationSet>
 </Period>
</MPD>"#;
        let found = dash_links(mpd, &mpd_url, 100);
        assert_eq!(
            urls(&found),
            vec![
                "https://cdn.example/vod/media/v360/init.mp4",
                "https://cdn.example/vod/media/v360/seg-001.m4s",
                "https://cdn.example/vod/media/v360/seg-002.m4s",
                "https://cdn.example/vod/media/v360/seg-003.m4s",
                "https://cdn.example/vod/media/a-init.mp4",
                "https://cdn.example/vod/media/a-0.m4s",
                "https://cdn.example/vod/media/a-96000.m4s",
                "https://cdn.example/vod/media/a-192000.m4s",
                "https://cdn.example/vod/media/subs/ar.vtt",
                "https://cdn.example/vod/media/l/init.mp4",
                "https://cdn.example/vod/media/l/1.m4s",
                "https://cdn.example/vod/media/l/2.m4s",
            ]
        );
        assert_eq!(dash_links(mpd, &mpd_url, 3).len(), 3);
        assert_eq!(iso_duration_secs("PT1M30.5S"), Some(90.5));
        assert_eq!(iso_duration_secs("P1DT1H"), Some(90000.0));
        assert_eq!(iso_duration_secs("1H"), None);
    }
}
