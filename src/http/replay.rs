//! Replay, Memento and CDX: looking at what was captured as it was.
//!
//! - `/replay/{timestamp}/{url}`: the capture of `url` nearest in time. An
//!   HTML page opens in custody's frame page: the banner on top, covering
//!   nothing, and the page below it in a frame (`{timestamp}mp_`), as pywb
//!   does; archived code cannot reach the banner. HTML and CSS are
//!   rewritten to stay inside the archive; `{timestamp}if_` is what a
//!   replayed page embeds, `{timestamp}id_` the payload exactly as received
//!   (content-encoding kept). A navigation to another time is redirected to
//!   the capture's own; what a page loads is answered at the page's time,
//!   with the nearest record and no redirect, so each resource keeps one
//!   URL (ES modules are instantiated once per URL). Range requests work on
//!   payloads served as is.
//! - `/timegate/{url}` and `/timemap/{link|json}/{url}` (RFC 7089).
//! - `/cdx`: pywb's CDX server API over the index.
//!
//! Records are read through the pipeline, so every digest is checked before
//! a byte is served; a record that fails is an error, never a response.

use std::io::{Read, Seek, SeekFrom};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use serde_json::json;
use url::Url;

use super::isolation::ReplayContext;
use super::rewrite::{escape_attr, script_json, Rewriter};
use super::{AppError, AppState, Caller};
use crate::archive::{decode_body, normalize_url, parse_at};
use crate::cdxj::CdxLine;
use crate::index::{Hit, RecordQuery};
use crate::model::surt;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/replay/{*rest}", get(replay))
        .route("/timegate/{*url}", get(timegate))
        .route("/timemap/link/{*url}", get(timemap_link))
        .route("/timemap/json/{*url}", get(timemap_json))
        .route("/cdx", get(cdx))
        .route_layer(axum::middleware::from_fn(super::isolation::isolate))
}

/// Replayed pages may load only from this server: anything the rewriter
/// missed (a URL built by a script) is blocked, never fetched live. (The
/// sandbox is added to every replay response, see `isolation`; a sandboxed
/// page has an opaque origin, which `frame-ancestors 'self'` would never
/// match, so replays may be framed, by each other included.)
pub const REPLAY_CSP: &str = "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:";

/// Largest HTML or CSS body rewritten; larger ones are served as received.
const MAX_REWRITE: u64 = 32 * 1024 * 1024;

/// The URL a replay, TimeGate or TimeMap path names: the rest of the path
/// after `prefix`, with the request's query string, as captures record it.
fn target_url(uri: &Uri, prefix: &str) -> Result<String, AppError> {
    let raw = uri.path().strip_prefix(prefix).unwrap_or_default();
    let raw = percent_decode_path(raw);
    let mut raw = raw.to_string();
    // Proxies and browsers may fold `//` after the scheme.
    for scheme in ["http:", "https:"] {
        if raw.starts_with(scheme) && !raw[scheme.len()..].starts_with("//") {
            raw = format!("{scheme}//{}", raw[scheme.len()..].trim_start_matches('/'));
        }
    }
    if !raw.starts_with("http://") && !raw.starts_with("https://") {
        raw = format!("http://{raw}");
    }
    if let Some(q) = uri.query() {
        raw.push('?');
        raw.push_str(q);
    }
    normalize_url(&raw).map_err(|_| {
        AppError::bad_request(format!(
            "{raw:?} is not a URL; the path ends with the archived URL, e.g. /replay/20161129100400/https://example.org/"
        ))
    })
}

/// Paths arrive percent-encoded; only `%3A` and `%2F` (a URL pasted
/// encoded) are undone, so the archived URL's own escapes survive.
fn percent_decode_path(raw: &str) -> String {
    if raw.starts_with("http%3A") || raw.starts_with("https%3A") {
        return raw
            .replace("%3A", ":")
            .replace("%3a", ":")
            .replace("%2F", "/")
            .replace("%2f", "/");
    }
    raw.to_string()
}

/// The base (scheme and authority) absolute links are built on.
fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// RFC 1123 date, as Memento headers use.
fn http_date(t: &DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// How a replay URL asks for its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A navigation: HTML opens in the frame page with the banner.
    Page,
    /// The page inside the frame page (rewritten, as `Embed`).
    Main,
    /// Rewritten (embedded resources and frames).
    Embed,
    /// The payload exactly as received.
    Identity,
}

/// What a replay path asks for.
struct Wanted {
    /// The timestamp as given (up to 14 digits; empty for the latest).
    ts: String,
    at: Option<DateTime<Utc>>,
    mode: Mode,
    url: String,
}

impl Wanted {
    fn parse(uri: &Uri) -> Result<Wanted, AppError> {
        let rest = uri.path().strip_prefix("/replay/").unwrap_or_default();
        let Some((stamp, _)) = rest.split_once('/') else {
            return Err(AppError::bad_request(
                "use /replay/{timestamp}/{url}, e.g. /replay/20161129100400/https://example.org/",
            ));
        };
        let digits = stamp.bytes().take_while(u8::is_ascii_digit).count();
        let (ts, modifier) = stamp.split_at(digits);
        let mode = match modifier {
            "" => Mode::Page,
            "id_" => Mode::Identity,
            "mp_" => Mode::Main,
            m if m.len() == 3 && m.ends_with('_') => Mode::Embed,
            _ => {
                return Err(AppError::bad_request(format!(
                    "{stamp:?} is not a timestamp; use up to 14 digits YYYYMMDDhhmmss, optionally followed by id_"
                )))
            }
        };
        let at = if ts.is_empty() {
            None
        } else {
            Some(parse_at(ts).map_err(|_| {
                AppError::bad_request(format!("{ts:?} is not a timestamp; use YYYYMMDDhhmmss"))
            })?)
        };
        let url = target_url(uri, &format!("/replay/{stamp}/"))?;
        Ok(Wanted {
            ts: ts.to_string(),
            at,
            mode,
            url,
        })
    }
}

impl Mode {
    /// The path modifier that asks for this mode.
    fn modifier(self) -> &'static str {
        match self {
            Mode::Identity => "id_",
            Mode::Main => "mp_",
            Mode::Embed => "if_",
            Mode::Page => "",
        }
    }
}

/// What a request for a page URL (no modifier) is: a navigation (or a
/// client that is not a browser) gets a frame page, also when a replayed
/// page navigates its own frame (a link, a form: the new page comes with
/// its own banner); anything else (a script's fetch, an image) is what a
/// page loads.
fn page_request(headers: &HeaderMap) -> Mode {
    if super::isolation::navigation(headers) {
        Mode::Page
    } else {
        Mode::Embed
    }
}

async fn replay(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(cx): Extension<ReplayContext>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let mut want = Wanted::parse(&uri)?;
    if want.mode == Mode::Page {
        want.mode = page_request(&headers);
    }
    let hit = nearest(&state, &want).await?;
    let found_ts = hit.record.timestamp.clone();
    if want.mode == Mode::Page && want.ts != found_ts {
        // The canonical memento URI carries the capture's own time.
        let location = format!("{}/replay/{found_ts}/{}", cx.prefix, want.url);
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::FOUND;
        set(&mut resp, header::LOCATION, &location);
        set(&mut resp, header::VARY, "accept-datetime");
        return Ok(resp);
    }
    let html = |m: &str| m == "text/html" || m == "application/xhtml+xml";
    let redirect = hit.record.status.is_some_and(|s| (300..400).contains(&s));
    if want.mode == Mode::Page && !redirect && hit.record.mime.as_deref().is_some_and(html) {
        return Ok(frame_page(&state, &hit, &want.url, &headers, &cx).await);
    }
    let (head, payload) = read_payload(&state, &hit).await?;
    state
        .accessed(
            &caller,
            &hit.capture_id,
            "accessed",
            json!({"via": "replay", "mode": want.mode.modifier(), "url": want.url, "record": hit.record.record_id}),
        )
        .await?;
    let base_url = Url::parse(&want.url).map_err(|_| AppError::bad_request("bad URL"))?;
    // What the page loads stays at the page's time (the one asked for).
    let at = if want.ts.is_empty() {
        &found_ts
    } else {
        &want.ts
    };
    let rewriter = Rewriter::new(base_url, at).with_prefix(&cx.prefix);
    let mime = head
        .as_ref()
        .and_then(|h| h.mime())
        .or_else(|| hit.record.mime.clone())
        .unwrap_or_default();
    let rewriting = want.mode != Mode::Identity
        && (html(&mime) || mime == "text/css")
        && hit.record.length <= MAX_REWRITE;
    let mut resp = if rewriting {
        let modifier = match want.mode {
            Mode::Page => Mode::Main.modifier(),
            m => m.modifier(),
        };
        let head_markup = html(&mime).then(|| rewriter.head_markup(modifier));
        rewritten(payload, head.as_ref(), &mime, rewriter.clone(), head_markup).await?
    } else {
        as_received(payload, head.as_ref(), &headers)?
    };
    let status = head
        .as_ref()
        .map(|h| h.status)
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if resp.status() == StatusCode::OK {
        *resp.status_mut() = status;
    }
    if let Some(head) = &head {
        archived_headers(&mut resp, head, &rewriter, want.mode);
    }
    memento_headers(&mut resp, &headers, &want.url, &hit);
    set(&mut resp, "x-custody-capture", hit.capture_id.as_str());
    set(&mut resp, "x-custody-record", &hit.record.record_id);
    Ok(resp)
}

/// The response record nearest the wanted time (remembered briefly).
async fn nearest(state: &AppState, want: &Wanted) -> Result<Hit, AppError> {
    let cache = &state.inner.cache;
    let caching = state.inner.settings.replay_cache;
    if let Some(hit) = cache.lookup(&want.url, &want.ts).filter(|_| caching) {
        return Ok(hit);
    }
    let Some(hit) = state.index().nearest_response(&want.url, want.at).await? else {
        let near = state.archive().near_captured(&want.url).await?;
        return Err(AppError::not_found(if near.is_empty() {
            format!(
                "{} is not in the archive; its captures are listed at /timemap/link/{}",
                want.url, want.url
            )
        } else {
            format!(
                "{} is not in the archive; captured nearby: {}",
                want.url,
                near.join(", ")
            )
        }));
    };
    if caching {
        cache.remember_lookup(&want.url, &want.ts, &hit);
    }
    Ok(hit)
}

/// An HTML or CSS payload, decoded and rewritten (HTML with its banner).
async fn rewritten(
    payload: Payload,
    head: Option<&crate::warc::ResponseHead>,
    mime: &str,
    mut rewriter: Rewriter,
    head_markup: Option<String>,
) -> Result<Response, AppError> {
    let encoding = head.and_then(|h| h.content_encoding());
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, AppError> {
        let reader: Box<dyn Read> = match payload {
            Payload::Memory(bytes) => Box::new(std::io::Cursor::new(bytes)),
            Payload::File(mut f) => {
                f.seek(SeekFrom::Start(0))
                    .map_err(|e| AppError::internal(&e))?;
                Box::new(std::io::BufReader::new(f))
            }
        };
        let mut body = Vec::new();
        decode_body(reader.take(MAX_REWRITE * 4), encoding.as_deref(), &mut body)?;
        Ok(body)
    })
    .await
    .map_err(|e| AppError::internal(&e))??;
    let content_type = head.and_then(|h| h.header("content-type"));
    let text = crate::charset::decode(&body, content_type.as_deref(), mime != "text/css");
    let out = if mime == "text/css" {
        rewriter.css(&text)
    } else {
        rewriter.html(&text, head_markup.as_deref())
    };
    let mut resp = Response::new(Body::from(out));
    set(
        &mut resp,
        header::CONTENT_TYPE,
        &format!("{mime}; charset=utf-8"),
    );
    Ok(resp)
}

/// A payload as received: its content-encoding and type kept.
fn as_received(
    payload: Payload,
    head: Option<&crate::warc::ResponseHead>,
    req: &HeaderMap,
) -> Result<Response, AppError> {
    let mut resp = serve_payload(payload, req)?;
    if let Some(enc) = head.and_then(|h| h.content_encoding()) {
        set(&mut resp, header::CONTENT_ENCODING, &enc);
    }
    if let Some(ct) = head.and_then(|h| h.header("content-type")) {
        set(&mut resp, header::CONTENT_TYPE, &ct);
    }
    Ok(resp)
}

/// The archived response's own headers: a few passed as they were, a
/// redirect's `Location` pointed into the archive, the rest kept as
/// `X-Archive-Orig-*` (so none of them acts on the viewer's browser).
fn archived_headers(
    resp: &mut Response,
    head: &crate::warc::ResponseHead,
    rewriter: &Rewriter,
    mode: Mode,
) {
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        let passed = match lower.as_str() {
            "content-type" | "content-encoding" | "content-length" | "transfer-encoding"
            | "connection" | "keep-alive" | "content-range" | "accept-ranges" => continue,
            "location" => {
                let v = String::from_utf8_lossy(value);
                let target = rewriter
                    .url(&v, mode.modifier())
                    .unwrap_or_else(|| v.to_string());
                set(resp, header::LOCATION, &target);
                continue;
            }
            "last-modified" | "etag" | "content-language" | "content-disposition" => lower,
            _ => format!("x-archive-orig-{lower}"),
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(passed.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
}

/// A payload to serve: small ones in memory (and in the cache), large
/// ones in their spool file.
pub(super) enum Payload {
    Memory(Bytes),
    File(std::fs::File),
}

/// The record's head and payload, from the cache (re-hashed against the
/// record's payload digest) or from the store (digests checked on read).
pub(super) async fn read_payload(
    state: &AppState,
    hit: &Hit,
) -> Result<(Option<crate::warc::ResponseHead>, Payload), AppError> {
    let cache = &state.inner.cache;
    let id = &hit.record.record_id;
    if let Some(cached) = cache.record(id) {
        if hit.record.payload_digest == Some(crate::model::Sha256::of(&cached.payload)) {
            return Ok((cached.head.clone(), Payload::Memory(cached.payload.clone())));
        }
        tracing::error!(record = %id, "a cached payload no longer matches its digest; reading the store");
        cache.forget_record(id);
    }
    let small = state
        .archive()
        .read_resolved_small(hit, super::cache::MAX_RECORD)
        .await?;
    let Some((head, payload)) = small else {
        let (head, file) = state.archive().read_resolved(hit).await?;
        return Ok((head, Payload::File(file)));
    };
    let payload = Bytes::from(payload);
    if hit.record.payload_digest.is_none() || !state.inner.settings.replay_cache {
        return Ok((head, Payload::Memory(payload)));
    }
    cache.remember_record(
        id,
        std::sync::Arc::new(super::cache::CachedRecord {
            head: head.clone(),
            payload: payload.clone(),
        }),
    );
    Ok((head, Payload::Memory(payload)))
}

/// `Memento-Datetime` and the `Link` header (original, timegate, timemap).
fn memento_headers(resp: &mut Response, req: &HeaderMap, url: &str, hit: &Hit) {
    let base = base(req);
    set(resp, "memento-datetime", &http_date(&hit.record.date));
    let link = format!(
        "<{url}>; rel=\"original\", <{base}/timegate/{url}>; rel=\"timegate\", \
         <{base}/timemap/link/{url}>; rel=\"timemap\"; type=\"application/link-format\""
    );
    set(resp, header::LINK, &link);
}

fn set(resp: &mut Response, name: impl TryInto<HeaderName>, value: &str) {
    if let (Ok(n), Ok(v)) = (name.try_into(), HeaderValue::from_str(value)) {
        resp.headers_mut().insert(n, v);
    }
}

/// Serves a payload, from memory or its spool file, honouring one
/// `Range: bytes=` range.
pub(super) fn serve_payload(payload: Payload, req: &HeaderMap) -> Result<Response, AppError> {
    let len = match &payload {
        Payload::Memory(bytes) => bytes.len() as u64,
        Payload::File(file) => file.metadata().map_err(|e| AppError::internal(&e))?.len(),
    };
    let range = req
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, len));
    let (start, end, partial) = match range {
        Some(Ok((s, e))) => (s, e, true),
        Some(Err(())) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            set(&mut resp, header::CONTENT_RANGE, &format!("bytes */{len}"));
            return Ok(resp);
        }
        None => (0, len, false),
    };
    let count = end - start;
    let body = match payload {
        Payload::Memory(bytes) => Body::from(bytes.slice(start as usize..end as usize)),
        Payload::File(mut file) => {
            file.seek(SeekFrom::Start(start))
                .map_err(|e| AppError::internal(&e))?;
            Body::from_stream(file_stream(tokio::fs::File::from_std(file), count))
        }
    };
    let mut resp = Response::new(body);
    set(&mut resp, header::ACCEPT_RANGES, "bytes");
    set(&mut resp, header::CONTENT_LENGTH, &count.to_string());
    if partial {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(
            &mut resp,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    Ok(resp)
}

/// Streams `count` bytes of a file in 64 KiB pieces.
pub fn file_stream(
    file: tokio::fs::File,
    count: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold((file, count), |(mut f, left)| async move {
        use tokio::io::AsyncReadExt;
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    })
}

/// One `bytes=` range as `[start, end)`: `None` when absent or not a
/// single byte range (the whole body is served), `Err` when unsatisfiable.
fn parse_range(v: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len)
    } else {
        let s: u64 = a.parse().ok()?;
        let e = if b.is_empty() {
            len
        } else {
            (b.parse::<u64>().ok()? + 1).min(len)
        };
        if s >= len || s >= e {
            return Some(Err(()));
        }
        (s, e)
    };
    Some(Ok(r))
}

/// custody's frame page around a replayed HTML page: the banner, and
/// below it the page (`mp_`) in a frame that fills the rest of the window.
/// Nothing of the archived page runs here, so nothing of it can cover or
/// change the banner, and the page's frame may navigate only inside
/// custody (the frame page's CSP: `frame-src` falls back to `'self'`).
/// When the page navigates its frame (a link, a form, a script), the new
/// page arrives in a frame page of its own, with its own banner, and this
/// banner says it no longer describes what is below it.
async fn frame_page(
    state: &AppState,
    hit: &Hit,
    url: &str,
    req: &HeaderMap,
    cx: &ReplayContext,
) -> Response {
    let ts = &hit.record.timestamp;
    let src = format!("{}/replay/{ts}mp_/{url}", cx.prefix);
    let banner = banner(state, hit, url, &cx.ui_base).await;
    let url_js = script_json(&serde_json::Value::String(url.to_string()));
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Archived: {url_e}</title>\
         <style>html,body{{margin:0;height:100%}}body{{display:flex;flex-direction:column}}\
         #custody-banner{{flex:none}}#custody-frame{{flex:1;border:0;width:100%;display:block}}</style>\
         </head><body>{banner}<iframe id=\"custody-frame\" title=\"The archived page\" src=\"{src_e}\"></iframe>\
         <script>{FRAME_JS}({url_js});</script></body></html>",
        url_e = escape_attr(url),
        src_e = escape_attr(&src),
    );
    let mut resp = Response::new(Body::from(body));
    set(&mut resp, header::CONTENT_TYPE, "text/html; charset=utf-8");
    memento_headers(&mut resp, req, url, hit);
    set(&mut resp, "x-custody-capture", hit.capture_id.as_str());
    set(&mut resp, "x-custody-record", &hit.record.record_id);
    resp
}

/// The frame page's one script: after the frame's first load, any other
/// load is the page navigating inside it.
const FRAME_JS: &str = "(function(url){var f=document.getElementById('custody-frame'),n=0;\
f.addEventListener('load',function(){if(++n<2)return;var b=document.getElementById('custody-banner');\
b.textContent='The page below has navigated: its own banner describes it; this one described the capture of '+url+' only. ';\
var a=document.createElement('a');a.href=location.href;a.textContent='Back to that capture';a.style.color='#9cf';\
b.appendChild(a);});})";

/// The banner above a replayed page: when it was captured, the WARC's
/// digest, what the read checked and the last fixity check found, and the
/// claims linked to the capture.
async fn banner(state: &AppState, hit: &Hit, url: &str, ui_base: &str) -> String {
    let fixity = match state.index().fixity_events(&hit.warc.key).await {
        Ok(events) => match events.last() {
            Some(e) => format!(
                "last fixity check {} ({})",
                e.outcome,
                crate::model::rfc3339_utc(&e.at)
            ),
            None => "no fixity check yet".to_string(),
        },
        Err(_) => "fixity status unavailable".to_string(),
    };
    let links = state
        .index()
        .links(&crate::index::LinkFilter {
            capture_id: Some(hit.capture_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    // An import says so: another tool captured it; custody keeps it.
    let imported = match state.index().capture(&hit.capture_id).await {
        Ok(Some(c)) => c
            .import
            .map(|i| {
                format!(
                    " · <strong style=\"color:#ffd479\">imported</strong> from {} (captured by another tool, not by custody; received {})",
                    escape_attr(&i.name),
                    crate::model::rfc3339_utc(&i.received_at)
                )
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut claims = String::new();
    let mut seen = Vec::new();
    for l in links {
        if seen.contains(&l.claim_id) {
            continue;
        }
        seen.push(l.claim_id.clone());
        let text = match state.index().claim_versions(&l.claim_id).await {
            Ok(v) => v.last().map(|c| c.text.clone()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        let short: String = text.chars().take(80).collect();
        claims.push_str(&format!(
            " · <a style=\"color:#ffd479\" href=\"{}/ui/claims/{}\">{} “{}”</a>",
            escape_attr(ui_base),
            escape_attr(&l.claim_id),
            l.relation.as_str(),
            escape_attr(&short)
        ));
    }
    format!(
        "<div id=\"custody-banner\" style=\"all:initial;display:block;box-sizing:border-box;width:100%;\
         font:13px/1.5 system-ui,sans-serif;background:#1d2a38;color:#fff;padding:6px 12px;\
         position:relative;z-index:2147483647\">\
         <strong>Archived copy</strong> of <span>{url_e}</span> · captured \
         <time datetime=\"{iso}\">{iso}</time>{imported} · WARC sha256 <code title=\"{sha}\">{short_sha}…</code> · \
         record digests verified on read · {fixity}{claims} · \
         <a style=\"color:#9cf\" href=\"{ui}/ui/captures/{cap}\">capture details</a> · \
         <a style=\"color:#9cf\" href=\"{ui}/ui/timeline?url={url_q}\">other captures</a></div>",
        ui = escape_attr(ui_base),
        url_e = escape_attr(url),
        iso = crate::model::rfc3339_utc(&hit.record.date),
        sha = hit.warc.sha256.hex(),
        short_sha = &hit.warc.sha256.hex()[..16],
        cap = hit.capture_id,
        url_q = escape_attr(&url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()),
    )
}

/// A TimeGate: redirects to the memento nearest `Accept-Datetime`, or the
/// latest without one.
async fn timegate(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let url = target_url(&uri, "/timegate/")?;
    let at = match headers.get("accept-datetime").and_then(|v| v.to_str().ok()) {
        Some(v) => Some(
            DateTime::parse_from_rfc2822(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AppError::bad_request(format!(
                        "Accept-Datetime {v:?} is not an HTTP date; use e.g. \"Tue, 29 Nov 2016 10:04:00 GMT\""
                    ))
                })?,
        ),
        None => None,
    };
    let hit = state
        .index()
        .nearest_response(&url, at)
        .await?
        .ok_or_else(|| AppError::not_found(format!("{url} is not in the archive")))?;
    let base = base(&headers);
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    set(
        &mut resp,
        header::LOCATION,
        &format!("{base}/replay/{}/{url}", hit.record.timestamp),
    );
    set(&mut resp, header::VARY, "accept-datetime");
    set(
        &mut resp,
        header::LINK,
        &format!(
            "<{url}>; rel=\"original\", <{base}/timemap/link/{url}>; rel=\"timemap\"; type=\"application/link-format\""
        ),
    );
    Ok(resp)
}

/// Every response and revisit record of a URL (by SURT, so http and https,
/// with and without `www.`), oldest first, at most 100,000.
pub async fn records_of(state: &AppState, url: &str) -> Result<Vec<Hit>, AppError> {
    records_between(state, url, None, None).await
}

/// The records of a URL dated within 14-digit timestamps, inclusive.
pub async fn records_between(
    state: &AppState,
    url: &str,
    from: Option<String>,
    to: Option<String>,
) -> Result<Vec<Hit>, AppError> {
    let parsed =
        Url::parse(url).map_err(|_| AppError::bad_request(format!("{url:?} is not a URL")))?;
    Ok(state
        .index()
        .find_records(&RecordQuery {
            surt: Some(surt(&parsed)),
            from,
            to,
            limit: 100_000,
            ..Default::default()
        })
        .await?)
}

/// Mementos of a URL: one per capture time, oldest first.
async fn mementos(state: &AppState, url: &str) -> Result<Vec<Hit>, AppError> {
    let hits = records_of(state, url).await?;
    let mut out: Vec<Hit> = Vec::with_capacity(hits.len());
    for h in hits {
        if out
            .last()
            .is_some_and(|l| l.record.timestamp == h.record.timestamp)
        {
            continue;
        }
        out.push(h);
    }
    if out.is_empty() {
        return Err(AppError::not_found(format!("{url} is not in the archive")));
    }
    Ok(out)
}

async fn timemap_link(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let url = target_url(&uri, "/timemap/link/")?;
    let list = mementos(&state, &url).await?;
    let base = base(&headers);
    let first = &list[0].record.date;
    let last = &list[list.len() - 1].record.date;
    let mut lines = vec![
        format!("<{url}>; rel=\"original\""),
        format!("<{base}/timegate/{url}>; rel=\"timegate\""),
        format!(
            "<{base}/timemap/link/{url}>; rel=\"self\"; type=\"application/link-format\"; from=\"{}\"; until=\"{}\"",
            http_date(first),
            http_date(last)
        ),
        format!("<{base}/timemap/json/{url}>; rel=\"timemap\"; type=\"application/json\""),
    ];
    let n = list.len();
    for (i, h) in list.iter().enumerate() {
        let rel = match (i == 0, i + 1 == n) {
            (true, true) => "first last memento",
            (true, false) => "first memento",
            (false, true) => "last memento",
            _ => "memento",
        };
        lines.push(format!(
            "<{base}/replay/{}/{url}>; rel=\"{rel}\"; datetime=\"{}\"",
            h.record.timestamp,
            http_date(&h.record.date)
        ));
    }
    let mut resp = Response::new(Body::from(lines.join(",\n") + "\n"));
    set(&mut resp, header::CONTENT_TYPE, "application/link-format");
    Ok(resp)
}

async fn timemap_json(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let url = target_url(&uri, "/timemap/json/")?;
    let list = mementos(&state, &url).await?;
    let base = base(&headers);
    let item = |h: &Hit| {
        json!({
            "datetime": crate::model::rfc3339_utc(&h.record.date),
            "uri": format!("{base}/replay/{}/{url}", h.record.timestamp),
            "capture_id": h.capture_id,
            "status": h.record.status,
            "mime": h.record.mime,
            "digest": h.record.payload_digest.map(|d| d.labelled()),
        })
    };
    let body = json!({
        "original_uri": url,
        "timegate_uri": format!("{base}/timegate/{url}"),
        "timemap_uri": {
            "link_format": format!("{base}/timemap/link/{url}"),
            "json_format": format!("{base}/timemap/json/{url}"),
        },
        "mementos": {
            "first": item(&list[0]),
            "last": item(&list[list.len() - 1]),
            "list": list.iter().map(item).collect::<Vec<_>>(),
        },
    });
    Ok(axum::Json(body).into_response())
}

/// A `/cdx` line: the record's CDXJ fields plus those pywb's server adds
/// (where the line came from and its access decision; a caller who may
/// read `/cdx` may see every line).
fn served_cdx_line(h: &Hit, filename: &str) -> Option<CdxLine> {
    let mut line = CdxLine::of(&h.record, h.record.offset, filename)?;
    line.insert_after("filename", "source", h.warc.key.clone());
    line.insert_after("source", "source-coll", "custody".to_string());
    line.insert_after("source-coll", "access", "allow".to_string());
    Some(line)
}

/// `/cdx`: pywb's CDX server API over the index (see `cdx`).
async fn cdx(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let q = super::cdx::CdxQuery::parse(query.as_deref().unwrap_or_default())
        .map_err(AppError::bad_request)?;
    let (from, to) = q.time_range();
    let mut lines = Vec::new();
    let mut read = 0usize;
    for prefix in &q.index_prefixes {
        let mut offset = 0;
        loop {
            let page = state
                .index()
                .find_records(&RecordQuery {
                    surt: None,
                    surt_prefix: Some(prefix.clone()),
                    from: from.clone(),
                    to: to.clone(),
                    reverse: false,
                    limit: 1000,
                    offset,
                })
                .await?;
            let n = page.len();
            read += n;
            if read > super::cdx::MAX_SCAN {
                return Err(AppError::bad_request(super::cdx::too_broad()));
            }
            for h in page {
                let filename = h
                    .warc
                    .key
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(line) = served_cdx_line(&h, &filename).filter(|l| q.in_range(l)) {
                    lines.push(line);
                }
            }
            offset += n as u64;
            if n < 1000 {
                break;
            }
        }
    }
    let lines = q.answer(lines);
    let body = q.render(&lines);
    Ok(([(header::CONTENT_TYPE, q.output.content_type())], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 100))));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok((900, 1000))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 1000))));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some(Ok((990, 1000))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-9", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }

    #[test]
    fn replay_paths_name_the_archived_url() {
        let uri: Uri = "/replay/20161129100400/https://example.org/a/b?x=1&y=2"
            .parse()
            .unwrap();
        assert_eq!(
            target_url(&uri, "/replay/20161129100400/").unwrap(),
            "https://example.org/a/b?x=1&y=2"
        );
        let uri: Uri = "/timegate/https:/example.org/".parse().unwrap();
        assert_eq!(
            target_url(&uri, "/timegate/").unwrap(),
            "https://example.org/"
        );
        let uri: Uri = "/timegate/example.org/".parse().unwrap();
        assert_eq!(
            target_url(&uri, "/timegate/").unwrap(),
            "http://example.org/"
        );
    }
}
