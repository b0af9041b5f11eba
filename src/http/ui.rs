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
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use chrono::Utc;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde::Deserialize;
use serde_json::json;

use super::{AppError, AppState, Caller};
use crate::index::{CaptureQuery, LinkFilter};
use crate::model::{rfc3339_utc, timestamp14, Capture, CaptureId, CaptureStatus, Role, Selector};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/ui/search", get(search))
        .route("/ui/timeline", get(timeline))
        .route("/ui/capture", post(capture_form))
        .route("/ui/claims", post(claim_form))
        .route("/ui/links", post(link_form))
        .route("/ui/captures/{id}/text", get(text_page))
        .route("/ui/select.js", get(select_js))
        .route("/ui/diff", get(diff_page))
        .route("/ui/captures/{id}", get(capture_page))
        .route("/ui/claims/{id}", get(claim_page))
        .route("/ui/schedules", get(schedules_page).post(schedule_form))
        .route("/ui/schedules/edit", post(schedule_edit_form))
        .route("/ui/fixity", get(fixity_page))
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
}

/// Whether a path is a page (a 401 there shows the login form).
pub fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

const UI_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The text view's policy: the UI's, and its own selection script.
const TEXT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fafafa}\
header{background:#1d2a38;color:#fff;padding:10px 20px;display:flex;gap:18px;align-items:center}\
header a{color:#cfe3ff;text-decoration:none}header strong{font-size:17px;color:#fff}\
main{max-width:1100px;margin:0 auto;padding:16px 20px}\
table{border-collapse:collapse;width:100%;margin:8px 0 18px}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px}\
code{font-size:12px;word-break:break-all}.ok{color:#17692b}.bad{color:#a3161b;font-weight:600}\
mark{background:#ffe066;padding:0 2px}blockquote{border-left:4px solid #ccd;margin:8px 0;padding:6px 12px;background:#fff;white-space:pre-wrap}\
form.search input[type=text]{width:60%;padding:6px;font-size:15px}.muted{color:#667}\
form.search details{margin:6px 0;font-size:13px}form.search details input[type=text]{width:12em;font-size:13px;padding:3px}\
ol.hits li{margin:0 0 12px}p.passage{margin:2px 0}\
div.axis{position:relative;height:18px;margin:14px 8px 4px;border-bottom:2px solid #99a}\
a.dot{position:absolute;bottom:-6px;width:10px;height:10px;margin-left:-5px;border-radius:50%;background:#17692b}\
a.dot.changed{background:#a3161b}a.dot.failed{background:#aaa}\
table.diff td.before,table.diff td.after{width:46%;white-space:pre-wrap}\
tr.removed td.before,tr.edited td.before{background:#fde2e2}tr.added td.after,tr.edited td.after{background:#e1f5e1}\
details.act{margin:8px 0;padding:6px 10px;background:#fff;border:1px solid #dde}pre.readable{white-space:pre-wrap;background:#fff;padding:10px;border:1px solid #dde}";

/// A whole page. Every page's markup is a `maud` template: whatever it
/// interpolates is escaped unless it is wrapped in `PreEscaped` (only the
/// style sheet, a constant, is).
fn layout(title: &str, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                link rel="icon" href="data:,";
                title { (title) " · custody" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "custody" }
                    a href="/" { "Search" }
                    a href="/ui/schedules" { "Schedules" }
                    a href="/ui/fixity" { "Fixity" }
                    a href="/api/v1/openapi.json" { "API" }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    let mut resp = Html(page.into_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(UI_CSP),
    );
    resp
}

/// An error as a page.
fn error_page(e: AppError) -> Response {
    let status = e.status;
    let mut resp = layout("Not available", html! { p.bad { (e.message) } });
    *resp.status_mut() = status;
    resp
}

/// A page's outcome: the page, or the error as a page.
fn page(title: impl AsRef<str>, body: Result<Markup, AppError>) -> Response {
    match body {
        Ok(body) => layout(title.as_ref(), body),
        Err(e) => error_page(e),
    }
}

pub fn login_page(next: &str, message: Option<&str>) -> Response {
    layout(
        "Sign in",
        html! {
            @if let Some(m) = message { p.bad { (m) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label { "API token " input type="password" name="token" autocomplete="off" size="60"; }
                " " button { "Sign in" }
            }
            p.muted { "Make a token with " code { "custody token create --role reader" } "." }
        },
    )
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
            // Served over TLS (behind a proxy that says so): only ever
            // sent back over TLS.
            let secure = if over_tls(&headers) { "; Secure" } else { "" };
            if let Ok(v) = format!(
                "custody_token={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SIGN_IN_SECS}{secure}",
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

/// How long a sign-in lasts: a working day.
const SIGN_IN_SECS: u64 = 12 * 3600;

/// Whether the request reached custody over TLS: a reverse proxy's
/// `X-Forwarded-Proto` or `Forwarded`, or an `https` origin.
fn over_tls(headers: &axum::http::HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    value("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || value("forwarded").is_some_and(|f| f.to_ascii_lowercase().contains("proto=https"))
        || value("origin").is_some_and(|o| o.starts_with("https://"))
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

fn search_form(q: &str) -> Markup {
    search_form_with(&super::api::SearchParams {
        q: Some(q.to_string()),
        ..Default::default()
    })
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

/// Files per page of the Fixity page.
const FIXITY_PAGE: u32 = 200;

/// Runs per page of the Schedules page.
const RUNS_PAGE: u32 = 100;

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

fn captures_table(captures: &[Capture]) -> Markup {
    html! {
        @if captures.is_empty() {
            p.muted { "No captures." }
        } @else {
            table {
                tr { th { "Captured" } th { "Page" } th { "Status" } th { "Resources" } th {} }
                @for c in captures {
                    @let good = c.status == CaptureStatus::Ok
                        && crate::archive::page_status(c).is_some_and(|s| s < 400);
                    tr {
                        td { a href={ "/ui/captures/" (c.id) } { (rfc3339_utc(&c.started_at)) } }
                        td { (c.seed_url) }
                        td class=(if good { "ok" } else { "bad" }) { (crate::archive::outcome(c)) }
                        td { (c.resources.len()) }
                        td {
                            @if let Some(p) = crate::archive::page_resource(&c.resources) {
                                a href={ "/replay/" (timestamp14(&c.started_at)) "/" (p.url) } { "replay" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How many captures a page of the home page lists.
const HOME_PAGE: u32 = 20;

#[derive(Deserialize)]
struct HomeQuery {
    /// The last capture of the page before (newest first).
    before: Option<String>,
    #[serde(flatten)]
    filter: super::api::CaptureFilter,
}

/// The home page's filters, as a query string (without the cursor).
fn filter_query(f: &super::api::CaptureFilter) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    let given = [
        ("status", &f.status),
        ("http_status", &f.http_status),
        ("schedule", &f.schedule),
        ("host", &f.host),
        ("from", &f.from),
        ("to", &f.to),
    ];
    for (name, value) in given {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            q.append_pair(name, v);
        }
    }
    q.finish()
}

/// Filters for the capture list: by outcome, the page's HTTP status,
/// schedule, host and start time.
fn capture_filters(f: &super::api::CaptureFilter) -> Markup {
    let v = |x: &Option<String>| x.clone().unwrap_or_default();
    let status = f.status.as_deref().unwrap_or("");
    let open = !filter_query(f).is_empty();
    html! {
        details.act open[open] {
            summary { "Filter the captures" }
            form method="get" action="/" {
                label { "Outcome " select name="status" {
                    option value="" selected[status.is_empty()] { "any" }
                    option value="ok" selected[status == "ok"] { "stored" }
                    option value="failed" selected[status == "failed"] { "failed" }
                } }
                " " label { "Page HTTP status " input type="text" name="http_status" size="4" value=(v(&f.http_status)) placeholder="404 or 4xx"; }
                " " label { "Schedule " input type="text" name="schedule" value=(v(&f.schedule)); }
                " " label { "Host " input type="text" name="host" value=(v(&f.host)) placeholder="aleppo24.example"; }
                br;
                label { "From " input type="text" name="from" value=(v(&f.from)) placeholder="20161101"; }
                " " label { "To " input type="text" name="to" value=(v(&f.to)) placeholder="20161231"; }
                " " button { "Filter" }
            }
        }
    }
}

/// The search form and the latest captures, a page at a time: "Older
/// captures" carries a stable cursor, so captures made meanwhile do not
/// shift the pages; the filters stay with it.
async fn home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HomeQuery>,
) -> Response {
    let body = async {
        let after = q
            .before
            .as_deref()
            .map(super::api::parse_cursor)
            .transpose()?;
        let older = after.is_some();
        let mut query = CaptureQuery {
            newest_first: true,
            after,
            limit: HOME_PAGE,
            ..Default::default()
        };
        q.filter.filters(&mut query)?;
        let recent = state.index().capture_page(&query).await?;
        let filters = filter_query(&q.filter);
        let and = if filters.is_empty() {
            String::new()
        } else {
            format!("&{filters}")
        };
        let latest = if filters.is_empty() {
            "/".to_string()
        } else {
            format!("/?{filters}")
        };
        let next = crate::index::CaptureCursor::next_page(&recent, HOME_PAGE)
            .map(|n| format!("/?before={}{and}", urlencode(&n.encode())));
        Ok(html! {
            (search_form(""))
            @if let Some(csrf) = form_token(&caller) { (home_forms(&csrf)) }
            h2 { @if older { "Older captures" } @else { "Latest captures" } }
            (capture_filters(&q.filter))
            (captures_table(&recent))
            @if older || next.is_some() {
                p {
                    @if older { a href=(latest) { "Latest captures" } }
                    @if older && next.is_some() { " · " }
                    @if let Some(next) = &next { a rel="next" href=(next) { "Older captures →" } }
                }
            }
        })
    }
    .await;
    page("Search the archive", body)
}

async fn search(
    State(state): State<AppState>,
    Query(p): Query<super::api::SearchParams>,
) -> Response {
    let text = p.q.clone().unwrap_or_default().trim().to_string();
    let body = async {
        // Words of archived pages first; a query with no word (a lone
        // symbol) finds none.
        let words = match !text.is_empty() && crate::search::parse_query(&text).is_ok() {
            true => Some(full_text(&state, &p).await?),
            false => None,
        };
        let more = text.is_empty() || p.cursor.is_some();
        let looks_like_url = !text.contains(' ') && (text.contains("://") || text.contains('.'));
        // One URL form: a fragment is never part of what was captured.
        let url_text = text.split('#').next().unwrap_or_default().to_string();
        let mut found = Vec::new();
        if !more && looks_like_url {
            let prefixes: Vec<String> = if url_text.contains("://") {
                vec![url_text.clone()]
            } else {
                vec![format!("http://{url_text}"), format!("https://{url_text}")]
            };
            for prefix in prefixes {
                found.extend(
                    state
                        .index()
                        .capture_page(&CaptureQuery {
                            url_prefix: Some(prefix),
                            newest_first: true,
                            limit: 200,
                            ..Default::default()
                        })
                        .await?,
                );
            }
            found.sort_by_key(|c| std::cmp::Reverse(c.started_at));
        }
        let claims = match more {
            true => Vec::new(),
            false => state.index().claims(Some(&text)).await?,
        };
        Ok(html! {
            (search_form_with(&p))
            @if let Some(words) = words { (words) }
            @if !more {
                @if looks_like_url {
                    h2 { "Captures of URLs starting " (url_text) }
                    (captures_table(&found))
                    @if let Some(first) = found.first() {
                        p { a href={ "/ui/timeline?url=" (urlencode(&first.seed_url)) } { "Timeline of " (first.seed_url) } }
                    }
                }
                h2 { "Claims" }
                @if claims.is_empty() {
                    p.muted { "No claim contains those words." }
                } @else {
                    ul {
                        @for c in claims.iter().take(200) {
                            li { a href={ "/ui/claims/" (c.id) } { (c.text) } }
                        }
                    }
                }
            }
        })
    }
    .await;
    page("Search", body)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Deserialize)]
struct UrlQuery {
    url: String,
    /// The last capture of the page before (newest first).
    before: Option<String>,
    limit: Option<u32>,
}

/// Captures per page of a URL's timeline.
const TIMELINE_PAGE: u32 = 100;

/// A URL's timeline: its captures on a time axis, marked where the page
/// changed (each mark links to what changed), with thumbnails of
/// browser-mode captures, a form to compare any two, and every record of
/// the URL.
async fn timeline(State(state): State<AppState>, Query(q): Query<UrlQuery>) -> Response {
    let body = async {
        let seed = crate::archive::normalize_url(&q.url).unwrap_or_else(|_| q.url.clone());
        let limit = q.limit.unwrap_or(TIMELINE_PAGE).clamp(1, 1000);
        let after = q.before.as_deref().map(super::api::parse_cursor).transpose()?;
        let older = after.is_some();
        // A page of captures, newest first, shown oldest first.
        let mut captures = state
            .index()
            .capture_page(&CaptureQuery {
                seed_url: Some(seed),
                newest_first: true,
                after,
                limit,
                ..Default::default()
            })
            .await?;
        let next = crate::index::CaptureCursor::next_page(&captures, limit).map(|c| {
            format!(
                "/ui/timeline?url={}&before={}{}",
                urlencode(&q.url),
                urlencode(&c.encode()),
                q.limit.map(|l| format!("&limit={l}")).unwrap_or_default()
            )
        });
        captures.reverse();
        // The records of the page's time span (all of them with no capture).
        let span = match (captures.first(), captures.last()) {
            (Some(a), Some(b)) => (Some(timestamp14(&a.started_at)), Some(timestamp14(&b.finished_at))),
            _ => (None, None),
        };
        let hits = super::replay::records_between(&state, &q.url, span.0, span.1).await?;
        let nav = html! {
            @if older || next.is_some() {
                p {
                    @if older { a href={ "/ui/timeline?url=" (urlencode(&q.url)) } { "Latest captures" } }
                    @if older && next.is_some() { " · " }
                    @if let Some(next) = &next { a rel="next" href=(next) { "Older captures →" } }
                }
            }
        };
        Ok(html! { (timeline_markup(&q.url, &captures, &hits)) (nav) })
    }
    .await;
    page(format!("Timeline of {}", q.url), body)
}

/// Whether a capture kept a thumbnail of the rendered page.
fn has_thumbnail(c: &Capture) -> bool {
    c.browser
        .as_ref()
        .is_some_and(|b| b.records.iter().any(|r| r.kind == "thumbnail"))
}

/// The capture's change from the one before, when the page changed.
fn changed(c: &Capture) -> Option<&crate::model::PageChange> {
    c.change.as_ref().filter(|ch| ch.changed)
}

fn diff_href(a: &CaptureId, b: &CaptureId) -> String {
    format!("/ui/diff?a={a}&b={b}")
}

fn timeline_markup(u: &str, captures: &[Capture], hits: &[crate::index::Hit]) -> Markup {
    let pictured: std::collections::HashSet<&CaptureId> = captures
        .iter()
        .filter(|c| has_thumbnail(c))
        .map(|c| &c.id)
        .collect();
    // Where each capture sits on the axis, from the first to the last.
    let (first, last) = match (captures.first(), captures.last()) {
        (Some(f), Some(l)) => (f.started_at, l.started_at),
        _ => (Utc::now(), Utc::now()),
    };
    let span = (last - first).num_milliseconds().max(1) as f64;
    let at = |c: &Capture| 100.0 * (c.started_at - first).num_milliseconds() as f64 / span;
    html! {
        p {
            (hits.len()) " record(s) of " code { (u) } ". Also as a Memento TimeMap: "
            a href={ "/timemap/link/" (u) } { "link format" } ", "
            a href={ "/timemap/json/" (u) } { "JSON" } "."
        }
        @if !captures.is_empty() {
            h2 { (captures.len()) " capture(s) of the page" }
            div.axis {
                @for c in captures {
                    @let class = if c.status != CaptureStatus::Ok { "dot failed" } else if changed(c).is_some() { "dot changed" } else { "dot" };
                    a class=(class) style=(format!("left:{:.3}%", at(c))) href={ "/ui/captures/" (c.id) }
                        title=(rfc3339_utc(&c.started_at)) {}
                }
            }
            p.muted { (rfc3339_utc(&first)) " → " (rfc3339_utc(&last)) " · a red mark: the page changed since the capture before" }
            ol.captures {
                @for c in captures {
                    li {
                        a href={ "/ui/captures/" (c.id) } { (rfc3339_utc(&c.started_at)) } " · " (crate::archive::outcome(c)) " · "
                        @match (&c.change, changed(c)) {
                            (_, Some(ch)) => { span.bad { "changed" } " (" a href=(diff_href(&ch.previous_capture, &c.id)) { "what changed" } ")" },
                            (Some(_), None) => { span.muted { "unchanged" } },
                            (None, _) => { span.muted { "first capture" } },
                        }
                        @if pictured.contains(&c.id) {
                            br;
                            a href={ "/ui/captures/" (c.id) } {
                                img src={ "/api/v1/captures/" (c.id) "/browser/thumbnail" } alt="the page as the browser rendered it" width="160" loading="lazy";
                            }
                        }
                    }
                }
            }
            @if captures.len() > 1 {
                form.compare action="/ui/diff" method="get" {
                    "Compare "
                    select name="a" { @for (n, c) in captures.iter().enumerate() {
                        option value=(c.id) selected[n + 2 == captures.len()] { (rfc3339_utc(&c.started_at)) }
                    } }
                    " with "
                    select name="b" { @for (n, c) in captures.iter().enumerate() {
                        option value=(c.id) selected[n + 1 == captures.len()] { (rfc3339_utc(&c.started_at)) }
                    } }
                    " " button { "Show what changed" }
                }
            }
        }
        h2 { "Records" }
        table {
            tr { th { "Captured" } th { "Status" } th { "Type" } th { "Payload sha256" } th { "Capture" } th { "As it looked" } }
            @for h in hits {
                tr {
                    td { a href={ "/replay/" (h.record.timestamp) "/" (h.record.target_uri.as_deref().unwrap_or("")) } { (rfc3339_utc(&h.record.date)) } }
                    td { @if let Some(s) = h.record.status { (s) } }
                    td { (h.record.warc_type) }
                    td { code { @if let Some(d) = h.record.payload_digest { (d.hex()) } } }
                    td { a href={ "/ui/captures/" (h.capture_id) } { (h.capture_id) } }
                    td {
                        @if pictured.contains(&h.capture_id) {
                            a href={ "/ui/captures/" (h.capture_id) } {
                                img src={ "/api/v1/captures/" (h.capture_id) "/browser/thumbnail" } alt="the page as the browser rendered it" width="160" loading="lazy";
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct DiffQuery {
    a: String,
    b: String,
}

/// What changed between two captures, as `custody diff` finds it: the
/// page's paragraphs side by side, and the resources that changed. Reading
/// both captures' text is recorded as an access to each.
async fn diff_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<DiffQuery>,
) -> Response {
    let body = async {
        let id = |s: &str| {
            s.trim().parse::<CaptureId>().map_err(|e| {
                AppError::bad_request(format!("{e}; pick both captures on a URL's timeline"))
            })
        };
        let (a, b) = (id(&q.a)?, id(&q.b)?);
        let d = crate::diff::diff(state.archive(), &a, &b).await?;
        for c in [&a, &b] {
            let via = json!({"via": "ui diff", "compared": [a.as_str(), b.as_str()]});
            state.accessed(&caller, c, "accessed", via).await?;
        }
        Ok(diff_markup(&d))
    }
    .await;
    page("What changed", body)
}

fn diff_markup(d: &crate::diff::CaptureDiff) -> Markup {
    let side = |s: &crate::diff::Side| {
        html! {
            a href={ "/ui/captures/" (s.capture_id) } { "capture of " (s.started_at) }
            @if let Some(p) = &s.page_url { " · " a href={ "/replay/" (s.started_at.replace(['-', ':', 'T', 'Z'], "").chars().take(14).collect::<String>()) "/" (p) } { "replay" } }
        }
    };
    html! {
        p {
            code { (d.a.seed_url) } ": " (side(&d.a)) " → " (side(&d.b)) " · page "
            @if d.page_changed { span.bad { "changed" } } @else { span.ok { "unchanged" } }
        }
        h2 { "Text" }
        @if let Some(note) = &d.text_note { p.muted { (note) } }
        @if d.text.is_empty() && d.text_note.is_none() { p.muted { "The page's text is the same." } }
        @if !d.text.is_empty() {
            table.diff {
                tr { th { "" } th { "Before" } th { "After" } }
                @for t in &d.text {
                    tr class=(t.change.as_str()) {
                        td { (t.change.as_str()) }
                        td.before { @if let Some(x) = &t.before { (x) } }
                        td.after { @if let Some(x) = &t.after { (x) } }
                    }
                }
            }
        }
        h2 { "Resources" }
        p.muted { (d.unchanged_resources) " unchanged" }
        @if !d.resources.is_empty() {
            table {
                tr { th { "" } th { "URL" } th { "Before (sha256)" } th { "After (sha256)" } }
                @for r in &d.resources {
                    tr {
                        td { (r.change.as_str()) }
                        td { (r.url) }
                        td { code { @if let Some(x) = r.a_sha256 { (x.hex()) } } }
                        td { code { @if let Some(x) = r.b_sha256 { (x.hex()) } } }
                    }
                }
            }
        }
    }
}

/// What a capture's page shows besides the capture: read before the page
/// is rendered.
struct CaptureView {
    c: Capture,
    fixity: Option<crate::model::FixityEvent>,
    /// The capture's leaf and the first signed checkpoint that holds it.
    leaf: Option<(u64, Option<u64>)>,
    timestamps: Vec<String>,
    /// Each link with its claim's latest text.
    links: Vec<(crate::model::EvidenceLink, String)>,
}

async fn capture_view(state: &AppState, id: &CaptureId) -> Result<CaptureView, AppError> {
    let index = state.index();
    let c = index
        .capture(id)
        .await?
        .ok_or_else(|| AppError::not_found(format!("no capture {id}")))?;
    let fixity = match &c.warc {
        Some(w) => index.fixity_events(&w.key).await?.pop(),
        None => None,
    };
    let checkpoints = index.checkpoints().await?;
    let leaf = index
        .log_leaves_of("capture", id.as_str())
        .await?
        .first()
        .map(|l| {
            let signed = checkpoints.iter().find(|cp| cp.tree_size > l.index);
            (l.index, signed.map(|cp| cp.tree_size))
        });
    let tokens = state.archive().capture_timestamps(id).await?;
    let timestamps = state.archive().timestamp_status(&tokens);
    let links = index
        .links(&LinkFilter {
            capture_id: Some(id.clone()),
            ..Default::default()
        })
        .await?;
    let texts: std::collections::HashMap<String, String> = match links.is_empty() {
        true => Default::default(),
        false => index
            .claims(None)
            .await?
            .into_iter()
            .map(|c| (c.id, c.text))
            .collect(),
    };
    let links = links
        .into_iter()
        .map(|l| {
            let text = texts.get(&l.claim_id).cloned().unwrap_or_default();
            (l, text)
        })
        .collect();
    Ok(CaptureView {
        c,
        fixity,
        leaf,
        timestamps,
        links,
    })
}

async fn capture_page(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let view = async {
        let id: CaptureId = id
            .parse()
            .map_err(|e: crate::model::ParseCaptureIdError| AppError::bad_request(e.to_string()))?;
        capture_view(&state, &id).await
    }
    .await;
    match view {
        Ok(v) => layout(&format!("Capture of {}", v.c.seed_url), capture_markup(&v)),
        Err(e) => error_page(e),
    }
}

fn capture_markup(v: &CaptureView) -> Markup {
    let c = &v.c;
    let id = &c.id;
    html! {
        table {
            tr { th { "Seed URL" } td { (c.seed_url) } }
            tr { th { "Status" } td { (crate::archive::outcome(c)) } }
            @if c.import.is_none() {
                tr { th { "Mode" } td {
                    @if c.browser.is_some() { "browser (rendered by Chromium)" } @else { "http (as a browser without scripts reads it)" }
                } }
            }
            tr { th { "Started" } td { (rfc3339_utc(&c.started_at)) } }
            tr { th { "Finished" } td { (rfc3339_utc(&c.finished_at)) } }
            @if let Some(s) = &c.schedule { tr { th { "Schedule" } td { (s) } } }
            @if let Some(ch) = &c.change {
                tr { th { "Change" } td {
                    @if ch.changed { "the page changed since " } @else { "the page is unchanged since " }
                    a href={ "/ui/captures/" (ch.previous_capture) } { "the capture before" }
                    " (" a href=(diff_href(&ch.previous_capture, id)) { "what changed" } ")"
                } }
            }
            @if let Some(i) = &c.import { (import_rows(i)) }
            @if let Some(w) = &c.warc {
                tr { th { "WARC" } td { code { (w.key) } " (" (w.bytes) " bytes)" } }
                tr { th { "WARC sha256" } td { code { (w.sha256.hex()) } } }
                tr { th { "Fixity" } td {
                    @match &v.fixity {
                        Some(e) => { span class=(if e.outcome == "ok" { "ok" } else { "bad" }) { (e.outcome) } " at " (rfc3339_utc(&e.at)) },
                        None => { "not checked yet (run " code { "custody audit" } ")" },
                    }
                } }
            }
            tr { th { "Transparency log" } td {
                @match v.leaf {
                    Some((leaf, Some(size))) => { "leaf " (leaf) " · in signed checkpoint of size " (size) " (" a href={ "/api/v1/captures/" (id) "/proof" } { "inclusion proof" } ")" },
                    Some((leaf, None)) => { "leaf " (leaf) " · not yet in a signed checkpoint" },
                    None => { span.bad { "not in the log" } },
                }
            } }
            tr { th { "RFC 3161 timestamps" } td {
                @for (n, t) in v.timestamps.iter().enumerate() { @if n > 0 { br; } (t) }
            } }
            @if let Some(p) = crate::archive::page_resource(&c.resources) {
                tr { th { "Replay" } td { a href={ "/replay/" (timestamp14(&c.started_at)) "/" (p.url) } { "view the archived page" } } }
            }
            tr { th { "Text" } td { a href={ "/ui/captures/" (id) "/text" } { "the page's readable text" } ", to read and to link a passage of it to a claim" } }
            tr { th { "Timeline" } td { a href={ "/ui/timeline?url=" (urlencode(&c.seed_url)) } { "every capture of this URL, and what changed" } } }
            @if c.warc.is_some() {
                tr { th { "Download" } td {
                    a href={ "/api/v1/captures/" (id) "/warc" } { "WARC" } " · "
                    a href={ "/api/v1/captures/" (id) "/wacz" } { "signed WACZ evidence package" } " · "
                    a href={ "/api/v1/captures/" (id) "/verify" } { "verify now" }
                } }
            }
        }
        @if let Some(br) = &c.browser { (browser_section(id, br)) }
        @if let Some(m) = &c.media { (media_section(id, m)) }
        h2 { "Linked claims" }
        @if v.links.is_empty() {
            p.muted { "None." }
        } @else {
            ul {
                @for (l, text) in &v.links {
                    li { (l.relation.as_str()) " " a href={ "/ui/claims/" (l.claim_id) } { (text) } }
                }
            }
        }
        h2 { "Resources" }
        table {
            tr { th { "URL" } th { "Status" } th { "Type" } th { "Bytes" } th { "Payload sha256" } }
            @for r in &c.resources {
                tr {
                    td {
                        @if r.status.is_some() {
                            a href={ "/replay/" (timestamp14(&c.started_at)) "id_/" (r.url) } { (r.url) }
                        } @else { (r.url) }
                        @if let Some(e) = &r.error { " " span.bad { (e) } }
                    }
                    td { @match r.status { Some(s) => (s), None => "—" } }
                    td { (r.mime.as_deref().unwrap_or("")) }
                    td { (r.bytes) }
                    td { code { @if let Some(d) = r.payload_sha256 { (d.hex()) } } }
                }
            }
        }
    }
}

/// An imported capture's rows: where it came from and what its arrival
/// checks found.
fn import_rows(i: &crate::model::ImportInfo) -> Markup {
    html! {
        tr { th { "Imported" } td {
            strong { "not captured by custody" } ": imported from " code { (i.name) }
            " (" (i.format) ", " (i.file.bytes) " bytes, sha256 " code { (i.file.sha256.hex()) } "), received "
            (rfc3339_utc(&i.received_at)) " by " (i.imported_by.as_deref().unwrap_or("an unnamed importer"))
            @if let Some(s) = &i.source { "; source: " (s) }
        } }
        tr { th { "File as received" } td { code { (i.file.key) } } }
        @if !i.software.is_empty() { tr { th { "Made by" } td { (i.software.join("; ")) } } }
        tr { th { "Checked on arrival" } td {
            @for (n, v) in i.verified.iter().enumerate() { @if n > 0 { br; } (v) }
        } }
        @if !i.problems.is_empty() {
            tr { th { "Problems found" } td {
                @for (n, p) in i.problems.iter().enumerate() {
                    @if n > 0 { br; }
                    span.bad { (p.problem) }
                    @if let Some(r) = &p.record { " (record " code { (r) } ")" }
                }
            } }
        }
    }
}

/// Browser mode: the screenshot, what the browser did and what it kept.
fn browser_section(id: &CaptureId, br: &crate::model::BrowserInfo) -> Markup {
    let src = |kind: &str| format!("/api/v1/captures/{id}/browser/{kind}");
    html! {
        h2 { "As the browser rendered it" }
        p {
            (br.version.as_deref().unwrap_or("no browser")) " · window " (br.window) " · "
            span class=(if br.status == "ok" { "ok" } else { "bad" }) { (br.status) }
            @if let Some(p) = &br.problem { ": " (p) }
        }
        @if !br.behaviours.is_empty() { p { "Behaviours: " (br.behaviours.join("; ")) } }
        @if br.records.iter().any(|r| r.kind == "screenshot") {
            p { a href=(src("screenshot")) {
                img src=(src("screenshot")) alt="full-page screenshot" style="max-width:100%;max-height:60em;border:1px solid #ccc";
            } }
        }
        table {
            tr { th { "Kept" } th { "Record" } th { "Bytes" } th { "sha256" } }
            @for r in &br.records {
                tr {
                    td { a href=(src(&r.kind)) { (r.kind) } }
                    td { code { (r.target_uri) } }
                    td { (r.bytes) }
                    td { code { (r.sha256.hex()) } }
                }
            }
        }
    }
}

/// The media step's outcome, with a player for each file it produced
/// (served by the API with byte ranges, so a reader can seek).
fn media_section(id: &CaptureId, m: &crate::model::MediaInfo) -> Markup {
    let tool = format!("{} {}", m.tool, m.version.as_deref().unwrap_or(""));
    html! {
        h2 { "Media" }
        p {
            (tool.trim()) " · format " code { (m.format) } " · "
            @match (&m.status[..], &m.problem) {
                ("ok", None) => { (m.files.len()) " file(s)" },
                (status, Some(p)) => { span class=(if status == "ok" { "ok" } else { "bad" }) { (status) } ": " (p) },
                (status, None) => { (status) },
            }
        }
        @for (n, f) in m.files.iter().enumerate() {
            @let src = format!("/api/v1/captures/{id}/media/{n}");
            figure {
                @if f.mime.starts_with("video/") {
                    video controls preload="metadata" src=(src) style="max-width:100%" {}
                } @else if f.mime.starts_with("audio/") {
                    audio controls preload="metadata" src=(src) {}
                }
                figcaption {
                    @if let Some(t) = &f.title { strong { (t) } " · " }
                    (f.target_uri) " · " code { (f.format_id) } " · " (f.mime) " · " (f.bytes) " bytes"
                    @if let Some(d) = f.duration_ms { " · " (format!("{:.1}", d as f64 / 1000.0)) " s" }
                    " · sha256 " code { (f.sha256.hex()) } " · " a href=(src) { "download" }
                }
            }
        }
    }
}

/// The passage a link points at, with up to `context` characters around
/// it: the text before, the passage, the text after (each with its "…"
/// where the text goes on).
fn highlighted(text: &str, selectors: &[Selector], context: usize) -> Option<[String; 3]> {
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
    Some([
        format!("{}{}", if from > 0 { "…" } else { "" }, s(from, start)),
        s(start, end),
        format!("{}{}", s(end, to), if to < chars.len() { "…" } else { "" }),
    ])
}

async fn claim_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    let read = async {
        let ev = crate::provenance::evidence(state.archive(), &id).await?;
        // Each passage in its archived text, read (and the reading
        // recorded) before the page is rendered.
        let mut passages = Vec::new();
        for e in &ev.evidence {
            let passage = match state
                .archive()
                .read_document(&e.capture_id, Some(&e.url))
                .await
            {
                Ok(doc) => {
                    let via = json!({"via": "ui claim page", "claim": ev.claim.id, "url": e.url});
                    state
                        .accessed(&caller, &e.capture_id, "accessed", via)
                        .await?;
                    crate::provenance::document_text(&doc)
                        .ok()
                        .and_then(|text| highlighted(&text, &e.selector, 400))
                }
                Err(_) => None,
            };
            passages.push(passage);
        }
        Ok::<_, AppError>((ev, passages))
    }
    .await;
    let (ev, passages) = match read {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let c = &ev.claim;
    let short: String = c.text.chars().take(60).collect();
    let body = html! {
        blockquote { (c.text) }
        table {
            tr { th { "Claim" } td { (c.id) " (version " (c.version) ")" } }
            @if let Some(p) = &c.place { tr { th { "Place" } td { (p) } } }
            @if let Some(s) = &c.event_start {
                tr { th { "Event" } td { (s) @if let Some(e) = &c.event_end { " – " (e) } } }
            }
            tr { th { "Exports" } td {
                a href={ "/api/v1/claims/" (c.id) "/wacz" } { "signed WACZ of all its evidence" } " · "
                a href={ "/api/v1/claims/" (c.id) "/jsonld" } { "JSON-LD" }
            } }
        }
        h2 { "Evidence" }
        @if ev.evidence.is_empty() { p.muted { "No evidence linked yet." } }
        @for (e, passage) in ev.evidence.iter().zip(&passages) {
            section.evidence {
                h3 { (e.relation.as_str()) " · " a href={ "/ui/captures/" (e.capture_id) } { "capture of " (rfc3339_utc(&e.captured_at)) } }
                p {
                    a href={ "/replay/" (timestamp14(&e.captured_at)) "/" (e.url) } { (e.url) } " · "
                    @if e.verified {
                        span.ok { "digest and passage verified now" }
                    } @else {
                        span.bad { "NOT VERIFIED: " (e.verification_error.as_deref().unwrap_or("")) }
                    }
                }
                @if let Some([before, quote, after]) = passage {
                    blockquote.archived-text { (before) mark { (quote) } (after) }
                } @else if let Some(Selector::FragmentSelector { value, .. }) = e.selector.first() {
                    p { "Media fragment " code { (value) } }
                }
                @if let Some(absent) = &e.passage_absent_since {
                    p.bad {
                        "The passage is absent from this page since the capture of " (rfc3339_utc(&absent.captured_at))
                        " (" a href={ "/ui/captures/" (absent.capture_id) } { (absent.capture_id) } ")."
                    }
                }
            }
        }
        h2 { "Custody record" }
        table {
            tr { th { "When" } th { "Event" } th { "Outcome" } th { "By" } }
            @for e in &ev.events {
                tr { td { (rfc3339_utc(&e.at)) } td { (e.event) } td { (e.outcome) } td { (e.actor.as_deref().unwrap_or("-")) } }
            }
        }
    };
    layout(&format!("Claim: {short}"), body)
}

async fn schedules_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(rq): Query<super::api::RunQuery>,
) -> Response {
    let body = async {
        let loaded = state.inner.settings.schedules_dir.as_ref().map(|dir| {
            let config = state.archive().config().clone();
            crate::scheduler::load_dir(dir, &config.capture)
        });
        // Each file's version, which an edit form carries back.
        let versions: std::collections::HashMap<&std::path::Path, String> = loaded
            .iter()
            .flat_map(|(files, _)| files)
            .filter_map(|f| {
                let text = std::fs::read_to_string(&f.path).ok()?;
                Some((f.path.as_path(), crate::scheduler::file_version(&text)))
            })
            .collect();
        let csrf = form_token(&caller);
        let query = rq.query(RUNS_PAGE)?;
        let runs = state.index().run_page(&query).await?;
        let older = crate::index::RunCursor::next_page(&runs, query.limit).map(|c| {
            let mut link = url::form_urlencoded::Serializer::new(String::from("/ui/schedules?"));
            for (name, value) in [("schedule", &rq.schedule), ("state", &rq.state)] {
                if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                    link.append_pair(name, v);
                }
            }
            link.append_pair("cursor", &c.encode());
            link.finish()
        });
        let run_state = rq.state.clone().unwrap_or_default();
        let now = Utc::now();
        Ok(html! {
            @if let (Some(csrf), Some(_)) = (&csrf, &loaded) { (schedule_form_markup(csrf)) }
            @match &loaded {
                Some((files, problems)) => {
                    table {
                        tr { th { "Schedule" } th { "Cron" } th { "URLs" } th { "Next run" } @if csrf.is_some() { th { "Change" } } }
                        @for s in files.iter().flat_map(|f| &f.schedules) {
                            tr {
                                td { (s.name) }
                                td { code { (s.cron_text) } " " (s.timezone.name()) }
                                td { @for (n, u) in s.urls.iter().enumerate() { @if n > 0 { br; } (u.as_str()) } }
                                td {
                                    @if !s.enabled { strong { "paused" } }
                                    @else if let Some(t) = s.next_after(now) { (rfc3339_utc(&t)) }
                                }
                                @if let Some(csrf) = &csrf {
                                    td { (schedule_edit_markup(csrf, s, versions.get(s.file.as_path()).map_or("", String::as_str))) }
                                }
                            }
                        }
                    }
                    @for p in problems { p.bad { (p.to_string()) } }
                },
                None => { p.muted { "This server reads no schedules directory." } },
            }
            h2 { @if rq.cursor.is_some() { "Older runs" } @else { "Recent runs" } }
            form method="get" action="/ui/schedules" {
                label { "Schedule " input type="text" name="schedule" value=(rq.schedule.clone().unwrap_or_default()); }
                " " label { "State " select name="state" {
                    option value="" selected[run_state.is_empty()] { "any" }
                    @for s in crate::model::RunState::ALL {
                        option value=(s.as_str()) selected[run_state == s.as_str()] { (s.as_str()) }
                    }
                } }
                " " button { "Show" }
            }
            table {
                tr { th { "Scheduled for" } th { "Schedule" } th { "URL" } th { "State" } th { "Capture" } }
                @for r in &runs {
                    @let v = serde_json::to_value(r).unwrap_or_default();
                    tr {
                        td { (v["scheduled_for"].as_str().unwrap_or("")) }
                        td { (v["schedule"].as_str().unwrap_or("")) }
                        td { (v["url"].as_str().unwrap_or("")) }
                        td { (v["state"].as_str().unwrap_or("")) }
                        td { @if let Some(c) = v["capture_id"].as_str() { a href={ "/ui/captures/" (c) } { (c) } } }
                    }
                }
            }
            @if let Some(older) = &older { p { a rel="next" href=(older) { "Older runs →" } } }
        })
    }
    .await;
    page("Schedules and runs", body)
}

/// Stored files, newest first, a page at a time, each with its last check.
async fn fixity_page(
    State(state): State<AppState>,
    Query(mut q): Query<super::api::FixityQuery>,
) -> Response {
    let body = async {
        let files = state.index().warc_files().await?;
        let quarantined = files.iter().filter(|f| f.quarantined.is_some()).count();
        if q.page.limit.is_none() {
            q.page.limit = Some(FIXITY_PAGE.to_string());
        }
        let (rows, next) = super::api::fixity_page(&state, &q, true).await?;
        let only = q.quarantined.as_deref() == Some("true");
        let older = next.map(|c| {
            let only = if only { "quarantined=true&" } else { "" };
            format!("/ui/fixity?{only}cursor={}", urlencode(&c))
        });
        Ok(html! {
            p {
                (files.len()) " stored WARC file(s); "
                span class=(if quarantined == 0 { "ok" } else { "bad" }) { (quarantined) " quarantined" } ". "
                @if only { a href="/ui/fixity" { "all files" } } @else { a href="/ui/fixity?quarantined=true" { "quarantined only" } }
            }
            table {
                tr { th { "Object" } th { "Bytes" } th { "Last check" } }
                @for (f, last) in &rows {
                    tr {
                        td {
                            code { (f.key) }
                            @if let Some(q) = &f.quarantined { " " span.bad { "quarantined: " (q) } }
                        }
                        td { (f.bytes) }
                        td {
                            @match last {
                                Some(e) => { (e.outcome) " at " (rfc3339_utc(&e.at)) " (" (e.location) ")" },
                                None => { "never" },
                            }
                        }
                    }
                }
            }
            @if let Some(older) = &older { p { a rel="next" href=(older) { "Older files →" } } }
        })
    }
    .await;
    page("Fixity", body)
}

/// Whether a form post comes from one of custody's own pages: the browser
/// says where it was made (`Origin`, which every browser sends with a
/// form post) and it is this server; `Sec-Fetch-Site`, when sent, agrees.
pub fn posted_from_here(headers: &axum::http::HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    headers.contains_key(header::ORIGIN)
        && same_origin(headers)
        && matches!(site, None | Some("same-origin"))
}

/// The form token for a caller who may change things (an archivist or
/// admin); `None` for a reader, whose pages then show no forms.
fn form_token(caller: &Caller) -> Option<String> {
    caller
        .token
        .as_ref()
        .filter(|t| t.role >= Role::Archivist)
        .and_then(super::grant::form_token)
}

/// A form's token must be the one custody's page gave the caller: a page
/// elsewhere cannot read custody's pages, so it cannot make one.
fn check_form(caller: &Caller, given: &str) -> Result<(), AppError> {
    match &caller.token {
        Some(t) if super::grant::form_token_holds(t, given) => Ok(()),
        _ => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "this form is out of date or was not made by custody; open the page again and send it from there",
        )),
    }
}

/// After a form: see what it made (303, so a reload does not post again).
fn see(path: String) -> Response {
    Redirect::to(&path).into_response()
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The archivist's forms on the home page: capture a page now, add a claim.
fn home_forms(csrf: &str) -> Markup {
    html! {
        details.act {
            summary { "Capture a page now" }
            form method="post" action="/ui/capture" {
                input type="hidden" name="csrf" value=(csrf);
                label { "URL " input type="text" name="url" size="60" placeholder="https://news.example/2016/11/29/report/"; }
                " " label { input type="checkbox" name="media" value="on"; " with its video and audio (yt-dlp)" }
                " " button { "Capture" }
            }
        }
        details.act {
            summary { "Add a claim" }
            form method="post" action="/ui/claims" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Claim " input type="text" name="text" size="70" placeholder="Nearly 25 civilians were killed in Bab Alnairab"; }
                br;
                label { "Place " input type="text" name="place"; }
                " " label { "Event date " input type="text" name="event_start" placeholder="2016-11-28"; }
                " " button { "Add" }
            }
        }
    }
}

#[derive(Deserialize)]
struct CaptureForm {
    csrf: String,
    url: String,
    media: Option<String>,
}

/// Captures a page now, as `POST /api/v1/captures` does, and shows it.
async fn capture_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<CaptureForm>,
) -> Response {
    let made = async {
        check_form(&caller, &f.csrf)?;
        let urls = vec![f.url.trim().to_string()];
        let media = f.media.as_deref().map(|m| m == "on");
        super::api::capture_now(&state, &caller, &urls, media, "ui").await
    }
    .await;
    match made {
        Ok(made) => match made.first() {
            Some(c) => see(format!("/ui/captures/{}", c.id)),
            None => see("/".into()),
        },
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ClaimForm {
    csrf: String,
    text: String,
    place: Option<String>,
    event_start: Option<String>,
}

async fn claim_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<ClaimForm>,
) -> Response {
    let made = async {
        check_form(&caller, &f.csrf)?;
        let claim = crate::provenance::add_claim(
            state.archive(),
            crate::provenance::ClaimFields {
                text: Some(f.text.clone()),
                place: given(&f.place),
                event_start: given(&f.event_start),
                author: Some(caller.actor()),
                ..Default::default()
            },
        )
        .await?;
        Ok::<_, AppError>(claim)
    }
    .await;
    match made {
        Ok(c) => see(format!("/ui/claims/{}", c.id)),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct LinkForm {
    csrf: String,
    capture_id: String,
    url: Option<String>,
    /// An existing claim, or none when `new_claim` is given.
    claim: Option<String>,
    new_claim: Option<String>,
    quote: String,
    prefix: Option<String>,
    suffix: Option<String>,
    relation: Option<String>,
}

/// Links a passage of a capture to a claim (a new one when its text is
/// given), checked as `claim link` checks it: the quote must be in the
/// archived text, once, or once with its prefix and suffix.
async fn link_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<LinkForm>,
) -> Response {
    let made = async {
        check_form(&caller, &f.csrf)?;
        let capture_id = super::api::capture_id(f.capture_id.trim())?;
        let relation = super::api::parse_relation(f.relation.as_deref())?;
        let claim_id = match (given(&f.new_claim), given(&f.claim)) {
            (Some(text), _) => {
                crate::provenance::add_claim(
                    state.archive(),
                    crate::provenance::ClaimFields {
                        text: Some(text),
                        author: Some(caller.actor()),
                        ..Default::default()
                    },
                )
                .await?
                .id
            }
            (None, Some(id)) => id,
            (None, None) => {
                return Err(AppError::bad_request(
                    "pick the claim the passage is evidence for, or write a new one",
                ))
            }
        };
        let link = crate::provenance::link(
            state.archive(),
            crate::provenance::LinkRequest {
                claim_id: claim_id.clone(),
                capture_id,
                target: given(&f.url),
                quote: Some(f.quote.clone()),
                prefix: given(&f.prefix),
                suffix: given(&f.suffix),
                position: None,
                fragment: None,
                relation,
                rationale: Some("linked from the UI's text view".into()),
                author: Some(caller.actor()),
            },
        )
        .await?;
        Ok::<_, AppError>(link)
    }
    .await;
    match made {
        Ok(l) => see(format!("/ui/claims/{}", l.claim_id)),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ScheduleForm {
    csrf: String,
    name: String,
    cron: String,
    timezone: Option<String>,
    /// One URL per line.
    urls: String,
}

/// Writes a schedule file as `POST /api/v1/schedules` does.
async fn schedule_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<ScheduleForm>,
) -> Response {
    let made = (|| {
        check_form(&caller, &f.csrf)?;
        let schedule = super::api::NewSchedule {
            name: f.name.trim().to_string(),
            cron: f.cron.trim().to_string(),
            urls: f.urls.split_whitespace().map(str::to_string).collect(),
            timezone: given(&f.timezone),
            ..Default::default()
        };
        super::api::write_schedule(&state, &schedule)
    })();
    match made {
        Ok(_) => see("/ui/schedules".into()),
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct ScheduleEditForm {
    csrf: String,
    name: String,
    /// The file's version when the page was made.
    version: String,
    /// `pause`, `resume` or `save` (the edited values).
    action: String,
    cron: Option<String>,
    timezone: Option<String>,
    /// One URL per line.
    urls: Option<String>,
}

/// Pauses, resumes or edits a schedule as `PATCH /api/v1/schedules/NAME`
/// does, refused when its file changed since the page was made.
async fn schedule_edit_form(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Form(f): Form<ScheduleEditForm>,
) -> Response {
    let made = (|| {
        check_form(&caller, &f.csrf)?;
        let mut change = super::api::ScheduleChange {
            version: Some(f.version.clone()),
            ..Default::default()
        };
        match f.action.as_str() {
            "pause" => change.enabled = Some(false),
            "resume" => change.enabled = Some(true),
            "save" => {
                change.cron = Some(f.cron.clone().unwrap_or_default());
                change.timezone = Some(given(&f.timezone).unwrap_or_else(|| "UTC".into()));
                let urls = f.urls.as_deref().unwrap_or_default();
                change.urls = Some(urls.split_whitespace().map(str::to_string).collect());
            }
            other => {
                return Err(AppError::bad_request(format!(
                    "unknown action {other:?}: pause, resume or save"
                )))
            }
        }
        super::api::edit_schedule(&state, f.name.trim(), &change)
    })();
    match made {
        Ok(_) => see("/ui/schedules".into()),
        Err(e) => error_page(e),
    }
}

/// A schedule's row of changes: pause or resume, and the edit form with
/// its values filled in.
fn schedule_edit_markup(csrf: &str, s: &crate::scheduler::Schedule, version: &str) -> Markup {
    let urls: Vec<&str> = s.urls.iter().map(|u| u.as_str()).collect();
    html! {
        form method="post" action="/ui/schedules/edit" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="name" value=(s.name);
            input type="hidden" name="version" value=(version);
            @if s.enabled {
                button name="action" value="pause" { "Pause" }
            } @else {
                button name="action" value="resume" { "Resume" }
            }
        }
        details.act {
            summary { "Edit" }
            form method="post" action="/ui/schedules/edit" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="name" value=(s.name);
                input type="hidden" name="version" value=(version);
                label { "Cron " input type="text" name="cron" value=(s.cron_text); }
                " " label { "Time zone " input type="text" name="timezone" value=(s.timezone.name()); }
                br;
                label { "URLs, one per line" br; textarea name="urls" rows="3" cols="50" { (urls.join("\n")) } }
                br;
                button name="action" value="save" { "Save" }
                p.muted { "Only these values change in " code { (s.file.display()) } "; its comments and other keys stay." }
            }
        }
    }
}

fn schedule_form_markup(csrf: &str) -> Markup {
    html! {
        details.act {
            summary { "Add a schedule" }
            form method="post" action="/ui/schedules" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Name " input type="text" name="name" placeholder="aleppo-daily"; }
                " " label { "Cron " input type="text" name="cron" placeholder="0 6 * * *"; }
                " " label { "Time zone " input type="text" name="timezone" placeholder="UTC"; }
                br;
                label { "URLs, one per line" br; textarea name="urls" rows="3" cols="70" {} }
                br;
                button { "Add" }
                p.muted { "Checked as " code { "custody schedule validate" } " checks it, and kept as a file in the server's schedules directory; the daemon picks it up on its next reload. Edit, pause and resume a schedule in its row below." }
            }
        }
    }
}

#[derive(Deserialize)]
struct TextQuery {
    url: Option<String>,
}

/// Script of the text view: a selection in the text fills the link form's
/// quote, prefix and suffix (without it, the form takes a pasted quote).
const SELECT_JS: &str = "const t=document.getElementById('text');\
document.addEventListener('selectionchange',()=>{const s=document.getSelection();\
if(!s||s.rangeCount===0||s.isCollapsed||!t.contains(s.anchorNode))return;\
const r=s.getRangeAt(0),pre=document.createRange();pre.selectNodeContents(t);pre.setEnd(r.startContainer,r.startOffset);\
const all=t.textContent,start=pre.toString().length,q=r.toString(),end=start+q.length;\
const f=document.getElementById('link');f.quote.value=q;\
f.prefix.value=all.slice(Math.max(0,start-32),start);f.suffix.value=all.slice(end,end+32);});";

async fn select_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SELECT_JS,
    )
        .into_response()
}

/// A capture's readable text (what quotes are matched in), with the form
/// that links a passage of it to a claim. Reading it is recorded.
async fn text_page(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<TextQuery>,
) -> Response {
    let read = async {
        let id: CaptureId = id
            .parse()
            .map_err(|e: crate::model::ParseCaptureIdError| AppError::bad_request(e.to_string()))?;
        let doc = state.archive().read_document(&id, q.url.as_deref()).await?;
        let text = crate::provenance::document_text(&doc)
            .map_err(|e| AppError::bad_request(e.to_string()))?;
        let via = json!({"via": "ui text", "url": doc.url});
        state.accessed(&caller, &id, "accessed", via).await?;
        let claims = match form_token(&caller) {
            Some(_) => state.index().claims(None).await?,
            None => Vec::new(),
        };
        Ok::<_, AppError>((id, doc.url, text, claims))
    }
    .await;
    let (id, url, text, claims) = match read {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let body = html! {
        p { "The readable text of " code { (url) } " in " a href={ "/ui/captures/" (id) } { "capture " (id) } ": what a quote is matched in." }
        @if let Some(csrf) = form_token(&caller) {
            form #link method="post" action="/ui/links" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="capture_id" value=(id);
                input type="hidden" name="url" value=(url);
                p.muted { "Select a passage below (or paste it) to link it to a claim." }
                label { "Quote " br; textarea name="quote" rows="3" cols="90" required {} }
                br;
                label { "Before it " input type="text" name="prefix" size="34"; }
                " " label { "After it " input type="text" name="suffix" size="34"; }
                br;
                label { "Claim " select name="claim" {
                    option value="" { "— a new claim —" }
                    @for c in &claims { option value=(c.id) { (c.text.chars().take(90).collect::<String>()) } }
                } }
                " " label { "or a new claim " input type="text" name="new_claim" size="50"; }
                br;
                label { "Relation " select name="relation" {
                    option value="supports" { "supports" }
                    option value="refutes" { "refutes" }
                    option value="context" { "context" }
                    option value="first_appearance" { "first appearance" }
                } }
                " " button { "Link the passage" }
            }
        }
        pre #text .readable { (text) }
        @if form_token(&caller).is_some() { script src="/ui/select.js" {} }
    };
    let mut resp = layout(&format!("Text of {url}"), body);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(TEXT_CSP),
    );
    resp
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
            [
                "…ists said ",
                "nearly 25 civilians were killed",
                " in Bab Al…"
            ]
        );
    }
}
