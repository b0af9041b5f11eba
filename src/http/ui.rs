//! The web UI: server-rendered pages that need no JavaScript and load
//! nothing from outside the server (a Content-Security-Policy says so to
//! the browser). Full-text search of archived pages, search by URL or claim
//! text, a URL's timeline, capture and claim
//! pages, schedules and runs, fixity. Pages read through the same index and
//! pipeline calls as the API; reading archived text (a claim's passage) is
//! recorded as an access like any other.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::rewrite::escape_attr as esc;
use super::{AppError, AppState, Caller};
use crate::index::{CaptureQuery, LinkFilter};
use crate::model::{rfc3339_utc, timestamp14, CaptureId, Selector};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/ui/search", get(search))
        .route("/ui/timeline", get(timeline))
        .route("/ui/captures/{id}", get(capture_page))
        .route("/ui/claims/{id}", get(claim_page))
        .route("/ui/schedules", get(schedules_page))
        .route("/ui/fixity", get(fixity_page))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
}

/// Whether a path is a page (a 401 there shows the login form).
pub fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

const UI_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafafa}\
header{background:#1d2a38;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}\
header a{color:#cfe3ff;text-decoration:none}header strong{font-size:17px;color:#fff}\
main{max-width:1100px;margin:0 auto;padding:16px 20px}\
table{border-collapse:collapse;width:100%;margin:8px 0 18px}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px}\
code{font-size:12px;word-break:break-all}.ok{color:#17692b}.bad{color:#a3161b;font-weight:600}\
mark{background:#ffe066;padding:0 2px}blockquote{border-left:4px solid #ccd;margin:8px 0;padding:6px 12px;background:#fff;white-space:pre-wrap}\
form.search input[type=text]{width:60%;padding:6px;font-size:15px}.muted{color:#667}\
form.search details{margin:6px 0;font-size:13px}form.search details input[type=text]{width:12em;font-size:13px;padding:3px}\
ol.hits li{margin:0 0 12px}p.passage{margin:2px 0}";

/// A whole page.
fn layout(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>{t} · custody</title><style>{STYLE}</style></head><body>\
         <header><strong>custody</strong><a href=\"/\">Search</a><a href=\"/ui/schedules\">Schedules</a>\
         <a href=\"/ui/fixity\">Fixity</a><a href=\"/api/v1/openapi.json\">API</a></header>\
         <main><h1>{t}</h1>{body}</main></body></html>",
        t = esc(title)
    );
    let mut resp = Html(html).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(UI_CSP),
    );
    resp
}

/// An error as a page.
fn error_page(e: AppError) -> Response {
    let status = e.status;
    let mut resp = layout(
        "Not available",
        &format!("<p class=\"bad\">{}</p>", esc(&e.message)),
    );
    *resp.status_mut() = status;
    resp
}

pub fn login_page(next: &str, message: Option<&str>) -> Response {
    let body = format!(
        "{}<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>API token <input type=\"password\" name=\"token\" autocomplete=\"off\" size=\"60\"></label> \
         <button>Sign in</button></form><p class=\"muted\">Make a token with <code>custody token create --role reader</code>.</p>",
        message.map(|m| format!("<p class=\"bad\">{}</p>", esc(m))).unwrap_or_default(),
        esc(next)
    );
    layout("Sign in", &body)
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(Query(q): Query<NextQuery>) -> Response {
    login_page(q.next.as_deref().unwrap_or("/"), None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Checks the token and keeps it in an HttpOnly, same-site cookie (used
/// for reading only; changes need the `Authorization` header).
async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        let mut r = error_page(super::AppError::new(
            StatusCode::FORBIDDEN,
            "sign in from custody's own login page",
        ));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    match crate::access::authenticate(state.index().as_ref(), &f.token).await {
        Ok(Some(_)) => {
            let next = f
                .next
                .filter(|n| local_path(n))
                .unwrap_or_else(|| "/".into());
            let mut resp = Redirect::to(&next).into_response();
            if let Ok(v) = format!(
                "custody_token={}; HttpOnly; SameSite=Strict; Path=/",
                f.token.trim()
            )
            .parse()
            {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Ok(None) => {
            let mut r = login_page("/", Some("that token is not valid (unknown or revoked)"));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => error_page(e.into()),
    }
}

/// Whether `next` is a plain path on this server: it starts with one `/`,
/// and holds nothing a browser could read as another host (`//`, `/\`, a
/// backslash anywhere, a scheme) or that it would strip (control
/// characters, spaces).
fn local_path(next: &str) -> bool {
    let mut chars = next.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
        && url::Url::parse(&format!("http://custody.invalid{next}"))
            .is_ok_and(|u| u.host_str() == Some("custody.invalid"))
}

/// Whether a form post comes from this server's own pages: its `Origin`
/// (or, without one, `Sec-Fetch-Site`) says so. A client that sends
/// neither is not a browser, and a cross-site form cannot be it.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (value("origin"), value("host")) {
        (Some(origin), Some(host)) => {
            let bare = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            bare == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => matches!(value("sec-fetch-site"), None | Some("same-origin")),
    }
}

async fn logout() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static("custody_token=; Max-Age=0; Path=/"),
    );
    resp
}

fn search_form(q: &str) -> String {
    search_form_with(&super::api::SearchParams {
        q: Some(q.to_string()),
        ..Default::default()
    })
    .into_string()
}

/// The search box, with the full-text filters folded away until one is
/// set.
fn search_form_with(p: &super::api::SearchParams) -> Markup {
    let v = |f: &Option<String>| f.clone().unwrap_or_default();
    let filtered = [&p.site, &p.from, &p.to, &p.schedule, &p.claim]
        .iter()
        .any(|f| f.as_deref().is_some_and(|s| !s.is_empty()));
    let asc = p.order.as_deref() == Some("asc");
    html! {
        form.search action="/ui/search" method="get" {
            input type="text" name="q" value=(v(&p.q)) autofocus
                placeholder="Words or a \"quoted phrase\" from an archived page, a URL (or its beginning), or words of a claim";
            " " button { "Search" }
            details open[filtered] {
                summary { "Filters" }
                label { "Site " input type="text" name="site" value=(v(&p.site)) placeholder="aleppo24.example"; }
                " " label { "From " input type="text" name="from" value=(v(&p.from)) placeholder="2016-11-01T00:00:00Z or 20161101"; }
                " " label { "To " input type="text" name="to" value=(v(&p.to)) placeholder="20161231"; }
                " " label { "Schedule " input type="text" name="schedule" value=(v(&p.schedule)); }
                " " label { "Claim " input type="text" name="claim" value=(v(&p.claim)) placeholder="a claim id"; }
                " " label { "Order " select name="order" {
                    option value="desc" selected[!asc] { "newest first" }
                    option value="asc" selected[asc] { "oldest first" }
                } }
            }
        }
    }
}

/// Full-text results per page of the UI's search.
const SEARCH_PAGE: u32 = 20;

/// The archived pages and frames that hold every word of the search, each
/// with its passage (matches marked) and a link to it in replay.
async fn full_text(state: &AppState, p: &super::api::SearchParams) -> Result<Markup, AppError> {
    let page = crate::search::search(state.archive(), &p.request(SEARCH_PAGE)?).await?;
    let next = page.next_cursor.as_ref().map(|cursor| {
        let mut link = url::form_urlencoded::Serializer::new(String::from("/ui/search?"));
        let given = [
            ("q", &p.q),
            ("site", &p.site),
            ("from", &p.from),
            ("to", &p.to),
            ("schedule", &p.schedule),
            ("claim", &p.claim),
            ("order", &p.order),
        ];
        for (name, value) in given {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                link.append_pair(name, v);
            }
        }
        link.append_pair("cursor", cursor);
        link.finish()
    });
    Ok(html! {
        h2 { "Archived pages that say this" }
        @if page.items.is_empty() {
            p.muted { "No archived page holds all of these words." }
        }
        ol.hits {
            @for r in &page.items {
                li {
                    a href=(r.replay) { (r.title.as_deref().unwrap_or(&r.url)) }
                    " " span.muted { (r.url) }
                    br;
                    span.muted {
                        "captured " a href={ "/ui/captures/" (r.capture_id) } { (rfc3339_utc(&r.captured_at)) }
                        @if let Some(s) = &r.schedule { " · schedule " (s) }
                        @if r.document.starts_with("urn:text:") { " · rendered text" }
                    }
                    p.passage {
                        @for s in &r.highlights {
                            @if s.matched { mark { (s.text) } } @else { (s.text) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            p { a rel="next" href=(next) { "More results →" } }
        }
    })
}

fn captures_table(captures: &[crate::model::Capture]) -> String {
    if captures.is_empty() {
        return "<p class=\"muted\">No captures.</p>".into();
    }
    let mut t = String::from(
        "<table><tr><th>Captured</th><th>Page</th><th>Status</th><th>Resources</th><th></th></tr>",
    );
    for c in captures {
        let page = crate::archive::page_resource(&c.resources);
        let replay = page
            .map(|p| {
                format!(
                    "<a href=\"/replay/{}/{}\">replay</a>",
                    timestamp14(&c.started_at),
                    esc(&p.url)
                )
            })
            .unwrap_or_default();
        t.push_str(&format!(
            "<tr><td><a href=\"/ui/captures/{id}\">{time}</a></td><td>{url}</td><td class=\"{cls}\">{status}</td><td>{n}</td><td>{replay}</td></tr>",
            id = c.id,
            time = rfc3339_utc(&c.started_at),
            url = esc(&c.seed_url),
            cls = if c.status == crate::model::CaptureStatus::Ok && crate::archive::page_status(c).is_some_and(|s| s < 400) { "ok" } else { "bad" },
            status = esc(&crate::archive::outcome(c)),
            n = c.resources.len(),
        ));
    }
    t.push_str("</table>");
    t
}

/// How many captures a page of the home page lists.
const HOME_PAGE: u32 = 20;

#[derive(Deserialize)]
struct HomeQuery {
    /// The last capture of the page before (newest first).
    before: Option<String>,
}

/// The search form and the latest captures, a page at a time: "Older
/// captures" carries a stable cursor, so captures made meanwhile do not
/// shift the pages.
async fn home(State(state): State<AppState>, Query(q): Query<HomeQuery>) -> Response {
    let result: Result<String, AppError> = async {
        let after = q
            .before
            .as_deref()
            .map(super::api::parse_cursor)
            .transpose()?;
        let older = after.is_some();
        let recent = state
            .index()
            .capture_page(&CaptureQuery {
                newest_first: true,
                after,
                limit: HOME_PAGE,
                ..Default::default()
            })
            .await?;
        let mut body = format!(
            "{}<h2>{}</h2>{}",
            search_form(""),
            if older {
                "Older captures"
            } else {
                "Latest captures"
            },
            captures_table(&recent)
        );
        let mut nav = Vec::new();
        if older {
            nav.push("<a href=\"/\">Latest captures</a>".to_string());
        }
        if let Some(next) = crate::index::CaptureCursor::next_page(&recent, HOME_PAGE) {
            nav.push(format!(
                "<a rel=\"next\" href=\"/?before={}\">Older captures →</a>",
                esc(&urlencode(&next.encode()))
            ));
        }
        if !nav.is_empty() {
            body.push_str(&format!("<p>{}</p>", nav.join(" · ")));
        }
        Ok(body)
    }
    .await;
    match result {
        Ok(body) => layout("Search the archive", &body),
        Err(e) => error_page(e),
    }
}

async fn search(
    State(state): State<AppState>,
    Query(p): Query<super::api::SearchParams>,
) -> Response {
    let text = p.q.clone().unwrap_or_default().trim().to_string();
    let result: Result<String, AppError> = async {
        let mut body = search_form_with(&p).into_string();
        if text.is_empty() {
            return Ok(body);
        }
        // Words of archived pages first; a query with no word (a lone
        // symbol) finds none.
        if crate::search::parse_query(&text).is_ok() {
            body.push_str(&full_text(&state, &p).await?.into_string());
        }
        if p.cursor.is_some() {
            return Ok(body);
        }
        let looks_like_url = !text.contains(' ') && (text.contains("://") || text.contains('.'));
        if looks_like_url {
            // One URL form: a fragment is never part of what was captured.
            let text = text.split('#').next().unwrap_or_default().to_string();
            let prefixes: Vec<String> = if text.contains("://") {
                vec![text.clone()]
            } else {
                vec![format!("http://{text}"), format!("https://{text}")]
            };
            let mut found = Vec::new();
            for p in prefixes {
                found.extend(
                    state
                        .index()
                        .capture_page(&CaptureQuery {
                            url_prefix: Some(p),
                            newest_first: true,
                            limit: 200,
                            ..Default::default()
                        })
                        .await?,
                );
            }
            found.sort_by_key(|c| std::cmp::Reverse(c.started_at));
            body.push_str(&format!(
                "<h2>Captures of URLs starting {}</h2>",
                esc(&text)
            ));
            body.push_str(&captures_table(&found));
            if let Some(first) = found.first() {
                body.push_str(&format!(
                    "<p><a href=\"/ui/timeline?url={}\">Timeline of {}</a></p>",
                    esc(&urlencode(&first.seed_url)),
                    esc(&first.seed_url)
                ));
            }
        }
        let claims = state.index().claims(Some(&text)).await?;
        body.push_str("<h2>Claims</h2>");
        if claims.is_empty() {
            body.push_str("<p class=\"muted\">No claim contains those words.</p>");
        } else {
            body.push_str("<ul>");
            for c in claims.iter().take(200) {
                body.push_str(&format!(
                    "<li><a href=\"/ui/claims/{}\">{}</a></li>",
                    esc(&c.id),
                    esc(&c.text)
                ));
            }
            body.push_str("</ul>");
        }
        Ok(body)
    }
    .await;
    match result {
        Ok(body) => layout("Search", &body),
        Err(e) => error_page(e),
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct UrlQuery {
    url: String,
}

async fn timeline(State(state): State<AppState>, Query(q): Query<UrlQuery>) -> Response {
    let result: Result<String, AppError> = async {
        let hits = super::replay::records_of(&state, &q.url).await?;
        let mut body = format!(
            "<p>{} record(s) of <code>{}</code>. Also as a Memento TimeMap: \
             <a href=\"/timemap/link/{u}\">link format</a>, <a href=\"/timemap/json/{u}\">JSON</a>.</p>",
            hits.len(),
            esc(&q.url),
            u = esc(&q.url)
        );
        body.push_str("<table><tr><th>Captured</th><th>Status</th><th>Type</th><th>Payload sha256</th><th>Capture</th><th>As it looked</th></tr>");
        // A thumbnail per browser-mode capture (each capture read once).
        let mut pictured: std::collections::HashMap<CaptureId, bool> = Default::default();
        for h in &hits {
            if !pictured.contains_key(&h.capture_id) {
                let has = state
                    .index()
                    .capture(&h.capture_id)
                    .await?
                    .and_then(|c| c.browser)
                    .is_some_and(|b| b.records.iter().any(|r| r.kind == "thumbnail"));
                pictured.insert(h.capture_id.clone(), has);
            }
        }
        for h in &hits {
            let url = h.record.target_uri.clone().unwrap_or_default();
            let picture = match pictured.get(&h.capture_id) {
                Some(true) => format!(
                    "<a href=\"/ui/captures/{c}\"><img src=\"/api/v1/captures/{c}/browser/thumbnail\" alt=\"the page as the browser rendered it\" width=\"160\" loading=\"lazy\"></a>",
                    c = h.capture_id
                ),
                _ => String::new(),
            };
            body.push_str(&format!(
                "<tr><td><a href=\"/replay/{ts}/{u}\">{time}</a></td><td>{st}</td><td>{ty}</td><td><code>{d}</code></td><td><a href=\"/ui/captures/{c}\">{c}</a></td><td>{picture}</td></tr>",
                ts = h.record.timestamp,
                u = esc(&url),
                time = rfc3339_utc(&h.record.date),
                st = h.record.status.map(|s| s.to_string()).unwrap_or_default(),
                ty = esc(&h.record.warc_type),
                d = h.record.payload_digest.map(|d| d.hex()).unwrap_or_default(),
                c = h.capture_id,
            ));
        }
        body.push_str("</table>");
        Ok(body)
    }
    .await;
    match result {
        Ok(body) => layout(&format!("Timeline of {}", q.url), &body),
        Err(e) => error_page(e),
    }
}

async fn capture_page(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let result: Result<(String, String), AppError> = async {
        let id: CaptureId = id
            .parse()
            .map_err(|e: crate::model::ParseCaptureIdError| AppError::bad_request(e.to_string()))?;
        let index = state.index();
        let c = index
            .capture(&id)
            .await?
            .ok_or_else(|| AppError::not_found(format!("no capture {id}")))?;
        let mut b = String::new();
        let page = crate::archive::page_resource(&c.resources);
        b.push_str("<table>");
        let mut row = |k: &str, v: String| b.push_str(&format!("<tr><th>{k}</th><td>{v}</td></tr>"));
        row("Seed URL", esc(&c.seed_url));
        row("Status", esc(&crate::archive::outcome(&c)));
        if c.import.is_none() {
            row("Mode", if c.browser.is_some() { "browser (rendered by Chromium)".into() } else { "http (as a browser without scripts reads it)".into() });
        }
        row("Started", rfc3339_utc(&c.started_at));
        row("Finished", rfc3339_utc(&c.finished_at));
        if let Some(s) = &c.schedule {
            row("Schedule", esc(s));
        }
        if let Some(i) = &c.import {
            row(
                "Imported",
                format!(
                    "<strong>not captured by custody</strong>: imported from <code>{}</code> ({}, {} bytes, sha256 <code>{}</code>), received {} by {}{}",
                    esc(&i.name),
                    esc(&i.format),
                    i.file.bytes,
                    i.file.sha256.hex(),
                    rfc3339_utc(&i.received_at),
                    esc(i.imported_by.as_deref().unwrap_or("an unnamed importer")),
                    i.source.as_deref().map(|s| format!("; source: {}", esc(s))).unwrap_or_default()
                ),
            );
            row("File as received", format!("<code>{}</code>", esc(&i.file.key)));
            if !i.software.is_empty() {
                row("Made by", esc(&i.software.join("; ")));
            }
            row("Checked on arrival", i.verified.iter().map(|v| esc(v)).collect::<Vec<_>>().join("<br>"));
            if !i.problems.is_empty() {
                row(
                    "Problems found",
                    i.problems
                        .iter()
                        .map(|p| {
                            format!(
                                "<span class=\"bad\">{}</span>{}",
                                esc(&p.problem),
                                p.record.as_deref().map(|r| format!(" (record <code>{}</code>)", esc(r))).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("<br>"),
                );
            }
        }
        if let Some(w) = &c.warc {
            row("WARC", format!("<code>{}</code> ({} bytes)", esc(&w.key), w.bytes));
            row("WARC sha256", format!("<code>{}</code>", w.sha256.hex()));
            let last = index.fixity_events(&w.key).await?.pop();
            row(
                "Fixity",
                match last {
                    Some(e) => format!("<span class=\"{}\">{}</span> at {}", if e.outcome == "ok" { "ok" } else { "bad" }, esc(&e.outcome), rfc3339_utc(&e.at)),
                    None => "not checked yet (run <code>custody audit</code>)".into(),
                },
            );
        }
        let leaves = index.log_leaves_of("capture", id.as_str()).await?;
        let checkpoints = index.checkpoints().await?;
        row(
            "Transparency log",
            match leaves.first() {
                Some(l) => match checkpoints.iter().find(|cp| cp.tree_size > l.index) {
                    Some(cp) => format!("leaf {} · in signed checkpoint of size {} (<a href=\"/api/v1/captures/{id}/proof\">inclusion proof</a>)", l.index, cp.tree_size),
                    None => format!("leaf {} · not yet in a signed checkpoint", l.index),
                },
                None => "<span class=\"bad\">not in the log</span>".into(),
            },
        );
        let tokens = state.archive().capture_timestamps(&id).await?;
        row(
            "RFC 3161 timestamps",
            state
                .archive()
                .timestamp_status(&tokens)
                .iter()
                .map(|t| esc(t))
                .collect::<Vec<_>>()
                .join("<br>"),
        );
        if let Some(p) = page {
            row("Replay", format!("<a href=\"/replay/{}/{}\">view the archived page</a>", timestamp14(&c.started_at), esc(&p.url)));
        }
        if c.warc.is_some() {
            row("Download", format!("<a href=\"/api/v1/captures/{id}/warc\">WARC</a> · <a href=\"/api/v1/captures/{id}/wacz\">signed WACZ evidence package</a> · <a href=\"/api/v1/captures/{id}/verify\">verify now</a>"));
        }
        b.push_str("</table>");
        if let Some(br) = &c.browser {
            b.push_str(&browser_section(&id, br));
        }
        if let Some(m) = &c.media {
            b.push_str(&media_section(&id, m));
        }

        let links = index
            .links(&LinkFilter { capture_id: Some(id.clone()), ..Default::default() })
            .await?;
        b.push_str("<h2>Linked claims</h2>");
        if links.is_empty() {
            b.push_str("<p class=\"muted\">None.</p>");
        } else {
            b.push_str("<ul>");
            for l in &links {
                let text = index.claim_versions(&l.claim_id).await?.pop().map(|c| c.text).unwrap_or_default();
                b.push_str(&format!("<li>{} <a href=\"/ui/claims/{}\">{}</a></li>", l.relation.as_str(), esc(&l.claim_id), esc(&text)));
            }
            b.push_str("</ul>");
        }
        b.push_str("<h2>Resources</h2><table><tr><th>URL</th><th>Status</th><th>Type</th><th>Bytes</th><th>Payload sha256</th></tr>");
        for r in &c.resources {
            let link = match r.status {
                Some(_) => format!("<a href=\"/replay/{}id_/{}\">{}</a>", timestamp14(&c.started_at), esc(&r.url), esc(&r.url)),
                None => esc(&r.url),
            };
            b.push_str(&format!(
                "<tr><td>{link}{err}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                r.status.map(|s| s.to_string()).unwrap_or_else(|| "—".into()),
                esc(r.mime.as_deref().unwrap_or("")),
                r.bytes,
                r.payload_sha256.map(|d| d.hex()).unwrap_or_default(),
                err = r.error.as_deref().map(|e| format!(" <span class=\"bad\">{}</span>", esc(e))).unwrap_or_default(),
            ));
        }
        b.push_str("</table>");
        Ok((format!("Capture of {}", c.seed_url), b))
    }
    .await;
    match result {
        Ok((title, body)) => layout(&title, &body),
        Err(e) => error_page(e),
    }
}

/// Browser mode: the screenshot, what the browser did and what it kept.
fn browser_section(id: &CaptureId, br: &crate::model::BrowserInfo) -> String {
    let mut b = String::from("<h2>As the browser rendered it</h2>");
    b.push_str(&format!(
        "<p>{} · window {} · <span class=\"{}\">{}</span>{}</p>",
        esc(br.version.as_deref().unwrap_or("no browser")),
        esc(&br.window),
        if br.status == "ok" { "ok" } else { "bad" },
        esc(&br.status),
        br.problem
            .as_deref()
            .map(|p| format!(": {}", esc(p)))
            .unwrap_or_default()
    ));
    if !br.behaviours.is_empty() {
        b.push_str(&format!(
            "<p>Behaviours: {}</p>",
            esc(&br.behaviours.join("; "))
        ));
    }
    let src = |kind: &str| format!("/api/v1/captures/{id}/browser/{kind}");
    if br.records.iter().any(|r| r.kind == "screenshot") {
        b.push_str(&format!(
            "<p><a href=\"{s}\"><img src=\"{s}\" alt=\"full-page screenshot\" style=\"max-width:100%;max-height:60em;border:1px solid #ccc\"></a></p>",
            s = src("screenshot")
        ));
    }
    b.push_str("<table><tr><th>Kept</th><th>Record</th><th>Bytes</th><th>sha256</th></tr>");
    for r in &br.records {
        b.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            src(&r.kind),
            esc(&r.kind),
            esc(&r.target_uri),
            r.bytes,
            r.sha256.hex()
        ));
    }
    b.push_str("</table>");
    b
}

/// The media step's outcome, with a player for each file it produced
/// (served by the API with byte ranges, so a reader can seek).
fn media_section(id: &CaptureId, m: &crate::model::MediaInfo) -> String {
    let mut b = String::from("<h2>Media</h2>");
    let tool = format!("{} {}", m.tool, m.version.as_deref().unwrap_or(""));
    b.push_str(&format!(
        "<p>{} · format <code>{}</code> · {}</p>",
        esc(tool.trim()),
        esc(&m.format),
        match (&m.status[..], &m.problem) {
            ("ok", None) => format!("{} file(s)", m.files.len()),
            (status, Some(p)) => format!(
                "<span class=\"{}\">{}</span>: {}",
                if status == "ok" { "ok" } else { "bad" },
                esc(status),
                esc(p)
            ),
            (status, None) => esc(status),
        }
    ));
    for (n, f) in m.files.iter().enumerate() {
        let src = format!("/api/v1/captures/{id}/media/{n}");
        let player = if f.mime.starts_with("video/") {
            format!("<video controls preload=\"metadata\" src=\"{src}\" style=\"max-width:100%\"></video>")
        } else if f.mime.starts_with("audio/") {
            format!("<audio controls preload=\"metadata\" src=\"{src}\"></audio>")
        } else {
            String::new()
        };
        let duration = f
            .duration_ms
            .map(|d| format!(" · {:.1} s", d as f64 / 1000.0))
            .unwrap_or_default();
        b.push_str(&format!(
            "<figure>{player}<figcaption>{}{} · <code>{}</code> · {} · {} bytes{duration} · sha256 <code>{}</code> · <a href=\"{src}\">download</a></figcaption></figure>",
            f.title.as_deref().map(|t| format!("<strong>{}</strong> · ", esc(t))).unwrap_or_default(),
            esc(&f.target_uri),
            esc(&f.format_id),
            esc(&f.mime),
            f.bytes,
            f.sha256.hex(),
        ));
    }
    b
}

/// The passage a link points at, with up to `context` characters around
/// it, as HTML with the passage in `<mark>`.
fn highlighted(text: &str, selectors: &[Selector], context: usize) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let (start, end) = selectors
        .iter()
        .find_map(|s| match s {
            Selector::TextPositionSelector { start, end } => Some((*start as usize, *end as usize)),
            _ => None,
        })
        .or_else(|| {
            selectors.iter().find_map(|s| match s {
                Selector::TextQuoteSelector { exact, .. } => {
                    let byte = text.find(exact.as_str())?;
                    let start = text[..byte].chars().count();
                    Some((start, start + exact.chars().count()))
                }
                _ => None,
            })
        })?;
    if end > chars.len() || start > end {
        return None;
    }
    let from = start.saturating_sub(context);
    let to = (end + context).min(chars.len());
    let s = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    Some(format!(
        "{}{}<mark>{}</mark>{}{}",
        if from > 0 { "…" } else { "" },
        esc(&s(from, start)),
        esc(&s(start, end)),
        esc(&s(end, to)),
        if to < chars.len() { "…" } else { "" }
    ))
}

async fn claim_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let result: Result<(String, String), AppError> = async {
        let ev = crate::provenance::evidence(state.archive(), &id).await?;
        let c = &ev.claim;
        let mut b = format!("<blockquote>{}</blockquote><table>", esc(&c.text));
        let mut row = |k: &str, v: String| b.push_str(&format!("<tr><th>{k}</th><td>{v}</td></tr>"));
        row("Claim", format!("{} (version {})", esc(&c.id), c.version));
        if let Some(p) = &c.place {
            row("Place", esc(p));
        }
        if let Some(s) = &c.event_start {
            row("Event", format!("{}{}", esc(s), c.event_end.as_deref().map(|e| format!(" – {}", esc(e))).unwrap_or_default()));
        }
        row("Exports", format!("<a href=\"/api/v1/claims/{0}/wacz\">signed WACZ of all its evidence</a> · <a href=\"/api/v1/claims/{0}/jsonld\">JSON-LD</a>", esc(&c.id)));
        b.push_str("</table><h2>Evidence</h2>");
        if ev.evidence.is_empty() {
            b.push_str("<p class=\"muted\">No evidence linked yet.</p>");
        }
        for e in &ev.evidence {
            b.push_str(&format!(
                "<section class=\"evidence\"><h3>{rel} · <a href=\"/ui/captures/{cap}\">capture of {time}</a></h3>\
                 <p><a href=\"/replay/{ts}/{u}\">{u}</a> · <span class=\"{cls}\">{state}</span></p>",
                rel = e.relation.as_str(),
                cap = e.capture_id,
                time = rfc3339_utc(&e.captured_at),
                ts = timestamp14(&e.captured_at),
                u = esc(&e.url),
                cls = if e.verified { "ok" } else { "bad" },
                state = if e.verified { "digest and passage verified now".to_string() } else { format!("NOT VERIFIED: {}", esc(e.verification_error.as_deref().unwrap_or(""))) },
            ));
            let passage = match state.archive().read_document(&e.capture_id, Some(&e.url)).await {
                Ok(doc) => {
                    state
                        .accessed(&caller, &e.capture_id, "accessed", json!({"via": "ui claim page", "claim": c.id, "url": e.url}))
                        .await?;
                    crate::provenance::document_text(&doc)
                        .ok()
                        .and_then(|text| highlighted(&text, &e.selector, 400))
                }
                Err(_) => None,
            };
            match passage {
                Some(p) => b.push_str(&format!("<blockquote class=\"archived-text\">{p}</blockquote>")),
                None => {
                    if let Some(Selector::FragmentSelector { value, .. }) = e.selector.first() {
                        b.push_str(&format!("<p>Media fragment <code>{}</code></p>", esc(value)));
                    }
                }
            }
            if let Some(absent) = &e.passage_absent_since {
                b.push_str(&format!(
                    "<p class=\"bad\">The passage is absent from this page since the capture of {} (<a href=\"/ui/captures/{}\">{}</a>).</p>",
                    rfc3339_utc(&absent.captured_at), absent.capture_id, absent.capture_id
                ));
            }
            b.push_str("</section>");
        }
        b.push_str("<h2>Custody record</h2><table><tr><th>When</th><th>Event</th><th>Outcome</th><th>By</th></tr>");
        for e in &ev.events {
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rfc3339_utc(&e.at), esc(&e.event), esc(&e.outcome), esc(e.actor.as_deref().unwrap_or("-"))
            ));
        }
        b.push_str("</table>");
        let short: String = c.text.chars().take(60).collect();
        Ok((format!("Claim: {short}"), b))
    }
    .await;
    match result {
        Ok((title, body)) => layout(&title, &body),
        Err(e) => error_page(e),
    }
}

async fn schedules_page(State(state): State<AppState>) -> Response {
    let result: Result<String, AppError> = async {
        let mut b = String::new();
        match &state.inner.settings.schedules_dir {
            Some(dir) => {
                let config = state.archive().config().clone();
                let (files, problems) = crate::scheduler::load_dir(dir, &config.capture);
                let now = Utc::now();
                b.push_str("<table><tr><th>Schedule</th><th>Cron</th><th>URLs</th><th>Next run</th></tr>");
                for s in files.iter().flat_map(|f| &f.schedules) {
                    b.push_str(&format!(
                        "<tr><td>{}</td><td><code>{}</code> {}</td><td>{}</td><td>{}</td></tr>",
                        esc(&s.name),
                        esc(&s.cron_text),
                        esc(s.timezone.name()),
                        s.urls.iter().map(|u| esc(u.as_str())).collect::<Vec<_>>().join("<br>"),
                        s.next_after(now).map(|t| rfc3339_utc(&t)).unwrap_or_default()
                    ));
                }
                b.push_str("</table>");
                for p in problems {
                    b.push_str(&format!("<p class=\"bad\">{}</p>", esc(&p.to_string())));
                }
            }
            None => b.push_str("<p class=\"muted\">This server reads no schedules directory.</p>"),
        }
        let mut runs = state.index().runs(None).await?;
        runs.reverse();
        b.push_str("<h2>Recent runs</h2><table><tr><th>Scheduled for</th><th>Schedule</th><th>URL</th><th>State</th><th>Capture</th></tr>");
        for r in runs.iter().take(100) {
            let v = serde_json::to_value(r).unwrap_or_default();
            let cap = v["capture_id"].as_str().map(|c| format!("<a href=\"/ui/captures/{0}\">{0}</a>", esc(c))).unwrap_or_default();
            b.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{cap}</td></tr>",
                esc(v["scheduled_for"].as_str().unwrap_or("")),
                esc(v["schedule"].as_str().unwrap_or("")),
                esc(v["url"].as_str().unwrap_or("")),
                esc(v["state"].as_str().unwrap_or("")),
            ));
        }
        b.push_str("</table>");
        Ok(b)
    }
    .await;
    match result {
        Ok(body) => layout("Schedules and runs", &body),
        Err(e) => error_page(e),
    }
}

async fn fixity_page(State(state): State<AppState>) -> Response {
    let result: Result<String, AppError> = async {
        let files = state.index().warc_files().await?;
        let quarantined = files.iter().filter(|f| f.quarantined.is_some()).count();
        let mut b = format!(
            "<p>{} stored WARC file(s); <span class=\"{}\">{} quarantined</span>.</p>\
             <table><tr><th>Object</th><th>Bytes</th><th>Last check</th></tr>",
            files.len(),
            if quarantined == 0 { "ok" } else { "bad" },
            quarantined
        );
        for f in files.iter().rev().take(500) {
            let last = state.index().fixity_events(&f.key).await?.pop();
            b.push_str(&format!(
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.key),
                f.quarantined
                    .as_deref()
                    .map(|q| format!(" <span class=\"bad\">quarantined: {}</span>", esc(q)))
                    .unwrap_or_default(),
                f.bytes,
                last.map(|e| format!(
                    "{} at {} ({})",
                    esc(&e.outcome),
                    rfc3339_utc(&e.at),
                    esc(&e.location)
                ))
                .unwrap_or_else(|| "never".into()),
            ));
        }
        b.push_str("</table>");
        Ok(b)
    }
    .await;
    match result {
        Ok(body) => layout("Fixity", &body),
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn login_returns_only_to_plain_local_paths() {
        for ok in ["/", "/ui/claims/abc?x=1", "/replay/2016/https://a.example/"] {
            assert!(super::local_path(ok), "{ok}");
        }
        for bad in [
            "//evil.example/",
            "/\\evil.example/",
            "/\\/evil.example",
            "/ui\\..\\x",
            "https://evil.example/",
            "evil",
            "/\tevil",
            "/\n/evil.example",
            "/ //evil.example",
            "",
        ] {
            assert!(!super::local_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn login_posts_are_accepted_from_this_origin_only() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(super::same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!super::same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!super::same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(!super::same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(
            super::same_origin(&h(&[("host", "127.0.0.1:8080")])),
            "not a browser"
        );
    }
    use super::*;

    #[test]
    fn the_quoted_passage_is_marked_in_its_context() {
        let text = "Local activists said nearly 25 civilians were killed in Bab Alnairab.";
        let sel = vec![Selector::TextQuoteSelector {
            exact: "nearly 25 civilians were killed".into(),
            prefix: String::new(),
            suffix: String::new(),
        }];
        assert_eq!(
            highlighted(text, &sel, 10).unwrap(),
            "…ists said <mark>nearly 25 civilians were killed</mark> in Bab Al…"
        );
    }
}
