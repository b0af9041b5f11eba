//! Finding a page's requisites: what a reader's browser would have loaded.
//!
//! HTML is tokenized (html5gum, WHATWG rules, entities decoded) rather than
//! matched with patterns, so attribute values are read as a browser reads
//! them. `<style>` and `<script>` switch the tokenizer into raw-text states,
//! as the tree builder would. CSS is scanned for `url()` and `@import`.
//! Only `http` and `https` URLs are returned, without fragments, in document
//! order and without repeats.

use html5gum::{State, Token, Tokenizer};
use url::Url;

/// What kind of document a discovered URL points at, when the markup says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    Stylesheet,
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
    let mut base = page.clone();
    let mut base_set = false;
    let mut links = Links::default();
    let mut in_style = false;
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
                match name.as_str() {
                    "base" if !base_set => {
                        if let Some(href) = attr("href") {
                            if let Ok(b) = page.join(href.trim()) {
                                base = b;
                                base_set = true;
                            }
                        }
                    }
                    "img" => {
                        for a in ["src", "data-src", "data-lazy-src", "data-original"] {
                            if let Some(v) = attr(a) {
                                links.add(&base, &v, Hint::Other);
                            }
                        }
                        for a in ["srcset", "data-srcset"] {
                            if let Some(v) = attr(a) {
                                for candidate in srcset_urls(&v) {
                                    links.add(&base, candidate, Hint::Other);
                                }
                            }
                        }
                    }
                    "source" => {
                        if let Some(v) = attr("src") {
                            links.add(&base, &v, Hint::Other);
                        }
                        if let Some(v) = attr("srcset") {
                            for candidate in srcset_urls(&v) {
                                links.add(&base, candidate, Hint::Other);
                            }
                        }
                    }
                    "video" | "audio" | "track" | "embed" | "input" => {
                        for a in ["src", "poster"] {
                            if let Some(v) = attr(a) {
                                links.add(&base, &v, Hint::Other);
                            }
                        }
                    }
                    "script" => {
                        if let Some(v) = attr("src") {
                            links.add(&base, &v, Hint::Other);
                        }
                    }
                    "link" => {
                        let rel = attr("rel").unwrap_or_default().to_ascii_lowercase();
                        let rels: Vec<&str> = rel.split_ascii_whitespace().collect();
                        if let Some(href) = attr("href") {
                            if rels.contains(&"stylesheet") {
                                links.add(&base, &href, Hint::Stylesheet);
                            } else if rels.iter().any(|r| r.contains("icon")) {
                                links.add(&base, &href, Hint::Other);
                            }
                        }
                    }
                    _ => {}
                }
                if let Some(style) = attr("style") {
                    for u in css_urls(&style) {
                        links.add(&base, &u, Hint::Other);
                    }
                }
                // Switch states as the tree builder would for raw-text elements.
                let state = match name.as_str() {
                    "style" | "xmp" | "iframe" | "noembed" | "noframes" => Some(State::RawText),
                    "script" => Some(State::ScriptData),
                    "title" | "textarea" => Some(State::RcData),
                    "plaintext" => Some(State::PlainText),
                    _ => None,
                };
                if let Some(state) = state {
                    if !tag.self_closing {
                        tokenizer.set_state(state);
                        tokenizer.set_last_start_tag(Some(&name));
                        in_style = name == "style";
                    }
                }
            }
            Token::String(text) if in_style => {
                for u in css_links_text(&String::from_utf8_lossy(&text.value)) {
                    links.add(&base, &u.0, u.1);
                }
            }
            Token::EndTag(_) => in_style = false,
            _ => {}
        }
    }
    links.out
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
        if !url.is_empty() {
            out.push(url);
        }
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
}
