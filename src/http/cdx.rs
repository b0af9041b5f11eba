//! `/cdx`: pywb's CDX server API, answered as pywb 2.10 answers it over
//! the same WARCs (`tests/it/interop.rs` sends both the same table of
//! queries). The parameters, in pywb's order of work:
//!
//! - `url` (with `*.host` and `path*` wildcards) and `matchType`
//!   (`exact`, `prefix`, `host`, `domain`): a range of pywb's URL keys
//!   (SURT with `www\d*.` and a trailing slash dropped), so a URL cited
//!   with or without its trailing slash finds the same captures;
//! - `resolveRevisits`: a revisit takes its original's `mime` and `status`
//!   and gains `orig.length`, `orig.offset`, `orig.filename`;
//! - `filter` (repeatable) `[!][=|~]field:expression`: no modifier means
//!   "contains", `=` exact, `~` a regular expression matched at the start,
//!   `!` negates; pywb's field aliases (`statuscode`, `mimetype`,
//!   `original`, one-letter forms); no field means the whole line;
//! - `from`, `to` (up to 14 digits, padded down and up);
//! - `collapseTime=N`: of adjacent lines with the same first N timestamp
//!   digits and status, the first;
//! - `closest=TIMESTAMP` (with or without `sort=closest`): nearest first;
//!   else `sort=reverse` or `reverse=true`: the last `limit`, newest
//!   first; else the first `limit` (default 100000);
//! - `fl` (or `fields`): which fields, in that order;
//! - `output`: `cdxj` (default), `json` (NDJSON), `text` (space
//!   separated), `link` (a Memento link list).
//!
//! What pywb offers and custody does not (ZipNum paging: `page` other than
//! 0, `pageSize`, `showNumPages`, `showPagedIndex`; fuzzy matching, which
//! answers a query with captures of other URLs) and any parameter pywb
//! does not know are refused with a 400 that names them, never ignored.

use chrono::{Datelike, NaiveDate, TimeZone, Utc};

use crate::cdxj::CdxLine;

/// The most lines one query may read from the index before it is refused
/// as too broad (memory stays bounded; pywb streams, custody sorts).
pub const MAX_SCAN: usize = 1_000_000;

/// What `/cdx` answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Cdxj,
    Json,
    Text,
    Link,
}

impl Output {
    pub fn content_type(self) -> &'static str {
        match self {
            Output::Cdxj => "text/x-cdxj",
            Output::Json => "text/x-ndjson",
            Output::Text => "text/plain",
            Output::Link => "application/link-format",
        }
    }
}

/// One `filter=`.
struct Filter {
    field: String,
    invert: bool,
    how: How,
}

enum How {
    Contains(String),
    Exact(String),
    Regex(regex_lite::Regex),
}

/// pywb's field aliases (`CDXObject.CDX_ALT_FIELDS`). pywb's table names
/// `s` twice; the later entry, `length`, is the one in force there.
fn field_alias(name: &str) -> &str {
    match name {
        "u" | "original" => "url",
        "statuscode" => "status",
        "mimetype" | "m" => "mime",
        "l" | "s" => "length",
        "o" => "offset",
        "d" => "digest",
        "t" => "timestamp",
        "k" => "urlkey",
        "f" => "filename",
        other => other,
    }
}

impl Filter {
    fn parse(raw: &str) -> Result<Filter, String> {
        let (invert, rest) = match raw.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, raw),
        };
        let (kind, rest) = match rest.as_bytes().first() {
            Some(b'=') => ('=', &rest[1..]),
            Some(b'~') => ('~', &rest[1..]),
            _ => ('c', rest),
        };
        let (field, expr) = match rest.split_once(':') {
            Some((f, e)) => (field_alias(f).to_string(), e),
            None => (String::new(), rest),
        };
        let how = match kind {
            '=' => How::Exact(expr.to_string()),
            '~' => How::Regex(
                regex_lite::Regex::new(&format!("^(?:{expr})"))
                    .map_err(|e| format!("filter={raw}: not a regular expression ({e})"))?,
            ),
            _ => How::Contains(expr.to_string()),
        };
        Ok(Filter { field, invert, how })
    }

    fn matches(&self, line: &CdxLine) -> bool {
        let value = if self.field.is_empty() {
            line.json()
        } else {
            line.get(&self.field).unwrap_or_default().to_string()
        };
        let hit = match &self.how {
            How::Contains(s) => value.contains(s.as_str()),
            How::Exact(s) => value == *s,
            How::Regex(r) => r.is_match(&value),
        };
        hit != self.invert
    }
}

/// A parsed `/cdx` query.
pub struct CdxQuery {
    /// pywb's key range: lines whose `urlkey` is in `start..end`.
    start: String,
    end: String,
    /// Prefixes of custody's own SURT keys (the index's sort key) whose
    /// records include every line in the range.
    pub index_prefixes: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    closest: Option<i64>,
    reverse: bool,
    limit: usize,
    filters: Vec<Filter>,
    collapse_time: Option<usize>,
    fields: Option<Vec<String>>,
    pub output: Output,
    resolve_revisits: bool,
}

/// pywb's `to_bool`.
fn to_bool(v: &str) -> bool {
    !v.is_empty() && !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "f" | "off")
}

/// A timestamp of up to 14 digits, as given.
fn digits(name: &str, v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 14 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{name}={v}: not a timestamp; use up to 14 digits YYYYMMDDhhmmss"
        ));
    }
    Ok(v.to_string())
}

/// `pad_timestamp`: the missing digits taken from `pad`.
fn pad(t: &str, pad: &str) -> String {
    format!("{t}{}", &pad[t.len().min(pad.len())..])
}

/// warcio's `timestamp_to_sec`: a partial timestamp stands for the last
/// second of the period it names (a partial field is dropped).
pub fn timestamp_to_sec(t: &str) -> Option<i64> {
    let s = pad(t, "299912");
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let year = num(0..4)? as i32;
    let month = num(4..6)?.clamp(1, 12);
    let last_day = NaiveDate::from_ymd_opt(year, month, 1)?
        .checked_add_months(chrono::Months::new(1))?
        .pred_opt()?
        .day();
    let field = |at: usize, max: u32, min: u32| {
        if s.len() >= at + 2 {
            num(at..at + 2).map(|v| v.clamp(min, max))
        } else {
            Some(max)
        }
    };
    let day = field(6, last_day, 1)?;
    let (h, m, sec) = (field(8, 23, 0)?, field(10, 59, 0)?, field(12, 59, 0)?);
    Utc.with_ymd_and_hms(year, month, day, h, m, sec)
        .single()
        .map(|d| d.timestamp())
}

/// `inc_last_char` of pywb's `calc_search_range`.
fn inc_last_char(s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if let Some(last) = chars.pop() {
        chars.push(char::from_u32(last as u32 + 1).unwrap_or(last));
    }
    chars.into_iter().collect()
}

/// pywb's key range for `url` and `matchType` (`calc_search_range`), and
/// the prefixes of custody's own SURT keys under which the index holds
/// every line in it.
fn key_range(url: &str, match_type: &str) -> Result<(String, String, Vec<String>), String> {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let parsed = url::Url::parse(&full).map_err(|_| format!("url={url}: not a URL"))?;
    let key = crate::model::pywb_urlkey(&parsed);
    let host = key.split(")/").next().unwrap_or_default().to_string();
    // custody's own SURT of the same URL: its host part, and its path
    // without a trailing slash (pywb's key drops it, custody's keeps it).
    let own = crate::model::surt(&parsed);
    let (own_host, own_rest) = own.split_once(')').unwrap_or((own.as_str(), ""));
    let own_path = own_rest.split('?').next().unwrap_or_default();
    let own_path = match own_path.len() > 1 {
        true => own_path.trim_end_matches('/'),
        false => own_path,
    };
    let range = match match_type {
        "exact" => (
            key.clone(),
            format!("{key}!"),
            vec![format!("{own_host}){own_path}")],
        ),
        "prefix" => {
            let mut start = key.clone();
            if url.ends_with('/') && !start.ends_with('/') {
                start.push('/');
            }
            if url.ends_with('?') && !start.ends_with('?') {
                start.push('?');
            }
            let end = inc_last_char(&start);
            (start, end, vec![format!("{own_host}){own_path}")])
        }
        "host" => (
            format!("{host})/"),
            format!("{host}*"),
            vec![format!("{own_host})")],
        ),
        "domain" => {
            let start = match host.contains(',') {
                true => format!("{host})/"),
                false => format!("{host},"),
            };
            (
                start,
                format!("{host}-"),
                vec![format!("{own_host})"), format!("{own_host},")],
            )
        }
        other => {
            return Err(format!(
                "matchType={other}: use exact, prefix, host or domain"
            ))
        }
    };
    Ok(range)
}

impl CdxQuery {
    /// Reads the query string; an error is the 400's message.
    pub fn parse(query: &str) -> Result<CdxQuery, String> {
        let mut url = None;
        let mut match_type = None;
        let (mut from, mut to, mut closest, mut sort) = (None, None, None, None);
        let (mut reverse, mut resolve) = (false, false);
        let (mut limit, mut collapse, mut fields, mut output) = (None, None, None, None);
        let mut filters = Vec::new();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let v = v.into_owned();
            match k.as_ref() {
                "url" => url = Some(v),
                "matchType" => match_type = Some(v),
                "from" | "from_ts" => from = Some(digits("from", &v)?),
                "to" => to = Some(digits("to", &v)?),
                "closest" => closest = Some(digits("closest", &v)?),
                "sort" => sort = Some(v),
                "reverse" => reverse = to_bool(&v),
                "resolveRevisits" => resolve = to_bool(&v),
                "limit" => match v.parse::<usize>() {
                    Ok(n) if n > 0 => limit = Some(n),
                    _ => return Err(format!("limit={v}: use a positive whole number")),
                },
                "collapseTime" => match v.parse::<usize>() {
                    Ok(n) if n > 0 => collapse = Some(n),
                    _ => {
                        return Err(format!(
                            "collapseTime={v}: use how many timestamp digits to compare, 1 to 14"
                        ))
                    }
                },
                "fl" | "fields" => {
                    fields = Some(v.split(',').map(str::to_string).collect::<Vec<_>>())
                }
                "output" => {
                    output = Some(match v.as_str() {
                        "cdxj" => Output::Cdxj,
                        "json" => Output::Json,
                        "text" => Output::Text,
                        "link" => Output::Link,
                        _ => {
                            return Err(format!(
                                "output={v} is not supported: use cdxj, json, text or link"
                            ))
                        }
                    })
                }
                "filter" => filters.push(Filter::parse(&v)?),
                "allowFuzzy" if !to_bool(&v) => {}
                "allowFuzzy" => {
                    return Err("allowFuzzy: custody's /cdx answers only for the URL asked \
                                (never another URL's captures); leave allowFuzzy out"
                        .into())
                }
                "page" if v == "0" => {}
                "page" | "pageSize" | "showNumPages" | "showPagedIndex" => {
                    return Err(format!(
                        "{k}: custody's /cdx does not page (pywb pages ZipNum indexes only); \
                         narrow the query with from, to and limit"
                    ))
                }
                other => {
                    return Err(format!(
                        "{other} is not a /cdx parameter; use url, matchType, from, to, \
                         closest, sort, reverse, limit, filter, collapseTime, fl, output, \
                         resolveRevisits"
                    ))
                }
            }
        }
        let mut url = url.ok_or("/cdx needs url=..., e.g. /cdx?url=example.org/&output=json")?;
        let match_type = match match_type {
            Some(m) => m,
            None if url.starts_with("*.") => {
                url = url[2..].to_string();
                "domain".into()
            }
            None if url.ends_with('*') => {
                url.pop();
                "prefix".into()
            }
            None => "exact".into(),
        };
        match sort.as_deref() {
            None | Some("closest") | Some("reverse") => {}
            Some(other) => return Err(format!("sort={other}: use reverse or closest")),
        }
        if sort.as_deref() == Some("closest") && closest.is_none() {
            return Err("sort=closest needs closest=TIMESTAMP".into());
        }
        let (start, end, index_prefixes) = key_range(&url, &match_type)?;
        Ok(CdxQuery {
            start,
            end,
            index_prefixes,
            from: from.map(|f| pad(&f, "10000101000000")),
            to: to.map(|t| pad(&t, "29991231235959")),
            closest: closest
                .map(|c| timestamp_to_sec(&c).ok_or(format!("closest={c}: not a timestamp")))
                .transpose()?,
            reverse: reverse || sort.as_deref() == Some("reverse"),
            limit: limit.unwrap_or(100_000),
            filters,
            collapse_time: collapse,
            fields,
            output: output.unwrap_or(Output::Cdxj),
            resolve_revisits: resolve,
        })
    }

    /// The from/to bounds, for the index to narrow its read.
    pub fn time_range(&self) -> (Option<String>, Option<String>) {
        (self.from.clone(), self.to.clone())
    }

    /// Whether a line's key is in the query's range.
    pub fn in_range(&self, line: &CdxLine) -> bool {
        let key = line.get("urlkey").unwrap_or_default();
        self.start.as_str() <= key && key < self.end.as_str()
    }

    /// The answer's lines from every line in range, in any order.
    pub fn answer(&self, mut lines: Vec<CdxLine>) -> Vec<CdxLine> {
        // pywb reads its index in key order: urlkey, timestamp, the rest.
        lines.sort_by_cached_key(|l| l.cdxj());
        if self.resolve_revisits {
            resolve_revisits(&mut lines);
        }
        lines.retain(|l| self.filters.iter().all(|f| f.matches(l)));
        lines.retain(|l| {
            let t = l.get("timestamp").unwrap_or_default();
            self.from.as_deref().is_none_or(|f| t >= f) && self.to.as_deref().is_none_or(|e| t <= e)
        });
        if let Some(n) = self.collapse_time {
            let mut last: Option<(String, String)> = None;
            lines.retain(|l| {
                let t = l.get("timestamp").unwrap_or_default();
                let token = (
                    t[..n.min(t.len())].to_string(),
                    l.get("status").unwrap_or_default().to_string(),
                );
                let keep = last.as_ref() != Some(&token);
                last = Some(token);
                keep
            });
        }
        if let Some(target) = self.closest {
            let secs =
                |l: &CdxLine| timestamp_to_sec(l.get("timestamp").unwrap_or_default()).unwrap_or(0);
            lines.sort_by_cached_key(|l| (target - secs(l)).abs());
            lines.truncate(self.limit);
        } else if self.reverse {
            let keep = lines.len().saturating_sub(self.limit);
            lines.drain(..keep);
            lines.reverse();
        } else {
            lines.truncate(self.limit);
        }
        lines
    }

    /// The body of the answer.
    pub fn render(&self, lines: &[CdxLine]) -> String {
        let fields: Option<Vec<&str>> = self
            .fields
            .as_ref()
            .map(|f| f.iter().map(String::as_str).collect());
        let mut body = String::new();
        if self.output == Output::Link {
            let links: Vec<String> = lines.iter().map(memento_link).collect();
            if !links.is_empty() {
                body = links.join(",\n");
                body.push('\n');
            }
            return body;
        }
        for l in lines {
            body.push_str(&match self.output {
                Output::Cdxj => l.cdxj_with(fields.as_deref()),
                Output::Json => l.json_with(fields.as_deref()),
                _ => l.text_with(fields.as_deref()),
            });
            body.push('\n');
        }
        body
    }
}

/// A line of pywb's `output=link`: the original URL as a memento.
fn memento_link(l: &CdxLine) -> String {
    let at = l
        .get("timestamp")
        .and_then(|t| crate::archive::parse_at(t).ok())
        .map(|d| d.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default();
    let mut s = format!(
        "<{}>; rel=\"memento\"; datetime=\"{at}\"",
        l.get("url").unwrap_or_default()
    );
    if let Some(coll) = l.get("source-coll") {
        s.push_str(&format!("; collection=\"{coll}\""));
    }
    s
}

/// pywb's `cdx_resolve_revisits`, over lines in key order.
fn resolve_revisits(lines: &mut [CdxLine]) {
    let mut originals: std::collections::HashMap<String, usize> = Default::default();
    for i in 0..lines.len() {
        let is_revisit =
            lines[i].get("mime") == Some("warc/revisit") || lines[i].get("filename") == Some("-");
        let digest = lines[i].get("digest").unwrap_or_default().to_string();
        let mut original = None;
        if !digest.is_empty() {
            original = originals.get(&digest).copied();
            if original.is_none() && !is_revisit {
                originals.insert(digest, i);
            }
        }
        let from = original.filter(|_| is_revisit);
        let orig = |field: &str| {
            from.and_then(|o| lines[o].get(field).map(str::to_string))
                .unwrap_or_else(|| "-".into())
        };
        let (len, off, file) = (orig("length"), orig("offset"), orig("filename"));
        if let Some(o) = from {
            for field in ["mime", "status"] {
                if lines[i].get(field).is_some() {
                    let v = lines[o].get(field).unwrap_or_default().to_string();
                    lines[i].set(field, v);
                }
            }
        }
        lines[i].set("orig.length", len);
        lines[i].set("orig.offset", off);
        lines[i].set("orig.filename", file);
    }
}

/// When an index read has found too much.
pub fn too_broad() -> String {
    format!(
        "this query reads more than {MAX_SCAN} index lines; narrow it with from, to or a \
         longer url"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_timestamps_stand_for_the_end_of_their_period() {
        let at = |t| {
            chrono::DateTime::from_timestamp(timestamp_to_sec(t).unwrap(), 0)
                .unwrap()
                .format("%Y%m%d%H%M%S")
                .to_string()
        };
        assert_eq!(at("20141226095010"), "20141226095010");
        assert_eq!(at("2014122609501"), "20141226095059");
        assert_eq!(at("2014"), "20141231235959");
        assert_eq!(at("201402"), "20140228235959");
        assert_eq!(at("2014122"), "20141231235959");
        assert_eq!(at("201"), "20191231235959");
    }

    #[test]
    fn filters_read_the_modifiers_as_pywb_does() {
        let parse = |f| CdxQuery::parse(&format!("url=example.org/&filter={f}")).unwrap();
        let q = parse("mime:html");
        assert!(matches!(q.filters[0].how, How::Contains(_)));
        let q = parse("=mime:text/html");
        assert!(matches!(q.filters[0].how, How::Exact(_)));
        let q = parse("!~statuscode:2");
        assert!(q.filters[0].invert && q.filters[0].field == "status");
        assert!(matches!(q.filters[0].how, How::Regex(_)));
        assert_eq!(parse("s:12").filters[0].field, "length");
        assert_eq!(parse("html").filters[0].field, "");
    }

    #[test]
    fn the_key_range_is_pywbs() {
        let q = CdxQuery::parse("url=http://example.org/a/b/").unwrap();
        assert_eq!(
            (q.start.as_str(), q.end.as_str()),
            ("org,example)/a/b", "org,example)/a/b!")
        );
        assert_eq!(q.index_prefixes, ["org,example)/a/b"]);
        let q = CdxQuery::parse("url=http://example.org/a/*").unwrap();
        assert_eq!(
            (q.start.as_str(), q.end.as_str()),
            ("org,example)/a/", "org,example)/a0")
        );
        let q = CdxQuery::parse("url=*.example.org").unwrap();
        assert_eq!(
            (q.start.as_str(), q.end.as_str()),
            ("org,example)/", "org,example-")
        );
        let q = CdxQuery::parse("url=www.example.org/x&matchType=host").unwrap();
        assert_eq!(
            (q.start.as_str(), q.end.as_str()),
            ("org,example)/", "org,example*")
        );
    }

    #[test]
    fn what_custody_does_not_do_is_refused_by_name() {
        for (q, named) in [
            ("url=a.org/&page=2", "page"),
            ("url=a.org/&showNumPages=true", "showNumPages"),
            ("url=a.org/&allowFuzzy=1", "allowFuzzy"),
            ("url=a.org/&matchtype=prefix", "matchtype"),
            ("url=a.org/&output=xml", "output=xml"),
            ("url=a.org/&sort=closest", "closest="),
            ("url=a.org/&limit=0", "limit=0"),
        ] {
            let e = CdxQuery::parse(q)
                .err()
                .unwrap_or_else(|| panic!("{q} accepted"));
            assert!(e.contains(named), "{q}: {e}");
        }
        assert!(CdxQuery::parse("url=a.org/&page=0&allowFuzzy=false").is_ok());
    }
}
