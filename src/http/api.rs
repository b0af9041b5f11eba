//! The JSON API under `/api/v1`. Lists are pages: `{"items": [...],
//! "next_offset": N | null}` with `limit` (default 100, at most 1000) and
//! `offset`; captures also page by a stable `cursor` (the `next_cursor`
//! of the page before) and filter by `url` (a prefix of the seed URL), `from`
//! and `to` (RFC 3339 or 4 to 14 digits). Every response is a DTO built
//! here; errors are `{"error": "..."}` with a status that means something.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AppError, AppState, Caller};
use crate::index::{CaptureCursor, CaptureQuery, LinkFilter, RecordQuery};
use crate::model::{surt, Capture, CaptureId, Role};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/captures", get(list_captures).post(create_capture))
        .route("/api/v1/captures/{id}", get(show_capture))
        .route("/api/v1/captures/{id}/records", get(capture_records))
        .route("/api/v1/captures/{id}/events", get(capture_events))
        .route("/api/v1/captures/{id}/verify", get(verify_capture))
        .route("/api/v1/captures/{id}/proof", get(capture_proof))
        .route("/api/v1/captures/{id}/warc", get(download_warc))
        .route("/api/v1/captures/{id}/wacz", get(download_wacz))
        .route("/api/v1/captures/{id}/media/{n}", get(media_file))
        .route("/api/v1/captures/{id}/browser/{kind}", get(browser_record))
        .route("/api/v1/imports", post(create_import))
        .route("/api/v1/records", get(list_records))
        .route("/api/v1/search", get(search))
        .route("/api/v1/claims", get(list_claims).post(create_claim))
        .route("/api/v1/claims/{id}", get(show_claim))
        .route("/api/v1/claims/{id}/jsonld", get(claim_jsonld))
        .route("/api/v1/claims/{id}/links", post(link_claim))
        .route("/api/v1/claims/{id}/wacz", get(download_claim_wacz))
        .route("/api/v1/links", get(list_links))
        .route(
            "/api/v1/schedules",
            get(list_schedules).post(create_schedule),
        )
        .route("/api/v1/schedules/{name}", patch(change_schedule))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/log/key", get(log_key))
        .route("/api/v1/log/checkpoints", get(log_checkpoints))
        .route("/api/v1/log/consistency", get(log_consistency))
        .route("/api/v1/fixity", get(fixity))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .layer(axum::middleware::map_response(json_errors))
}

/// Errors axum answers by itself (a body that is not JSON, or not the
/// JSON asked for; a query it cannot read) in the API's one form,
/// `{"error": "..."}`, keeping their status and headers.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let message = match text.is_empty() {
        true => status.canonical_reason().unwrap_or("error").to_string(),
        false => text,
    };
    let mut answer = (status, Json(json!({ "error": message }))).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

async fn openapi() -> Response {
    Json(super::openapi::document()).into_response()
}

/// `limit` and `offset` of a list.
/// (Text fields: query strings flattened into a filter arrive as text.)
#[derive(Debug, Deserialize, Default)]
pub struct Page {
    pub(super) limit: Option<String>,
    pub(super) offset: Option<String>,
}

impl Page {
    fn limit(&self) -> u32 {
        self.limit
            .as_deref()
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(100)
            .clamp(1, 1000)
    }
    fn offset(&self) -> u64 {
        self.offset
            .as_deref()
            .and_then(|o| o.parse().ok())
            .unwrap_or(0)
    }
}

/// A page of items as the API returns it.
fn page(items: Vec<Value>, limit: u32, offset: u64) -> Response {
    let next = (items.len() as u32 == limit).then(|| offset + limit as u64);
    Json(json!({"items": items, "next_offset": next})).into_response()
}

/// `from`/`to`: RFC 3339, or 4 to 14 digits (a Wayback timestamp).
pub fn parse_time(name: &str, s: &str) -> Result<DateTime<Utc>, AppError> {
    Ok(crate::search::parse_time(name, s)?)
}

/// A link's relation; `supports` when none is given.
pub(super) fn parse_relation(r: Option<&str>) -> Result<crate::model::Relation, AppError> {
    match r.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(crate::model::Relation::Supports),
        Some(r) => crate::model::Relation::parse(r).ok_or_else(|| {
            AppError::bad_request(format!(
                "relation {r:?} is not one of supports, refutes, context, first_appearance"
            ))
        }),
    }
}

pub(super) fn capture_id(s: &str) -> Result<CaptureId, AppError> {
    s.parse()
        .map_err(|e: crate::model::ParseCaptureIdError| AppError::bad_request(e.to_string()))
}

async fn known_capture(state: &AppState, id: &CaptureId) -> Result<Capture, AppError> {
    state.index().capture(id).await?.ok_or_else(|| {
        AppError::not_found(format!("no capture {id}; list them at /api/v1/captures"))
    })
}

/// A capture as the API shows it: the CLI's JSON plus where to get more.
pub fn capture_dto(c: &Capture) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    let id = c.id.as_str();
    let page = crate::archive::page_resource(&c.resources);
    // What the page answered (a 404 is captured too): null when its
    // redirects never reached a page.
    v["page_status"] = json!(crate::archive::page_status(c));
    v["final_page"] = json!(page.is_some());
    v["outcome"] = json!(crate::archive::outcome(c));
    if let Some(mode) = c.mode() {
        v["mode"] = json!(mode);
    }
    v["links"] = json!({
        "self": format!("/api/v1/captures/{id}"),
        "records": format!("/api/v1/captures/{id}/records"),
        "warc": format!("/api/v1/captures/{id}/warc"),
        "wacz": format!("/api/v1/captures/{id}/wacz"),
        "verify": format!("/api/v1/captures/{id}/verify"),
        "proof": format!("/api/v1/captures/{id}/proof"),
        "replay": page.map(|p| format!("/replay/{}/{}", crate::model::timestamp14(&c.started_at), p.url)),
        "ui": format!("/ui/captures/{id}"),
    });
    if let Some(m) = &c.media {
        v["links"]["media"] = json!((0..m.files.len())
            .map(|n| format!("/api/v1/captures/{id}/media/{n}"))
            .collect::<Vec<_>>());
    }
    v
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CaptureFilter {
    pub(super) url: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) status: Option<String>,
    pub(super) http_status: Option<String>,
    pub(super) schedule: Option<String>,
    pub(super) host: Option<String>,
    pub(super) order: Option<String>,
    pub(super) cursor: Option<String>,
    #[serde(flatten)]
    page: Page,
}

impl CaptureFilter {
    /// The filters of a capture list (an empty field is no filter), each
    /// refused in one line when it cannot be read.
    pub(super) fn filters(&self, q: &mut CaptureQuery) -> Result<(), AppError> {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        q.url_prefix = given(&self.url);
        q.from = given(&self.from)
            .map(|s| parse_time("from", &s))
            .transpose()?;
        q.to = given(&self.to).map(|s| parse_time("to", &s)).transpose()?;
        q.status = given(&self.status)
            .map(|s| {
                crate::model::CaptureStatus::parse(s.trim()).ok_or_else(|| {
                    AppError::bad_request(format!("status={s:?} is not ok or failed"))
                })
            })
            .transpose()?;
        q.page_status = given(&self.http_status)
            .map(|s| parse_http_status(&s))
            .transpose()?;
        q.schedule = given(&self.schedule);
        q.host = given(&self.host)
            .map(|h| crate::search::parse_site(&h).map_err(AppError::from))
            .transpose()?;
        Ok(())
    }
}

/// `http_status`: one status (`404`) or a class (`4xx`), as an inclusive
/// range.
fn parse_http_status(s: &str) -> Result<(u16, u16), AppError> {
    let s = s.trim().to_ascii_lowercase();
    let bad = || {
        AppError::bad_request(format!(
            "http_status={s:?} is not a status; give one such as 404, or a class such as 4xx"
        ))
    };
    if let Some(class) = s.strip_suffix("xx") {
        let c: u16 = class.parse().map_err(|_| bad())?;
        return match c {
            1..=5 => Ok((c * 100, c * 100 + 99)),
            _ => Err(bad()),
        };
    }
    match s.parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok((n, n)),
        _ => Err(bad()),
    }
}

async fn list_captures(
    State(state): State<AppState>,
    Query(q): Query<CaptureFilter>,
) -> Result<Response, AppError> {
    let mut query = CaptureQuery {
        newest_first: q.order.as_deref() == Some("desc"),
        after: q.cursor.as_deref().map(parse_cursor).transpose()?,
        limit: q.page.limit(),
        offset: q.page.offset(),
        ..Default::default()
    };
    q.filters(&mut query)?;
    let captures = state.index().capture_page(&query).await?;
    let full = captures.len() as u32 == query.limit;
    // An offset counts from the cursor, so it is offered only without one.
    let next_offset = (full && query.after.is_none()).then(|| query.offset + query.limit as u64);
    let next_cursor = CaptureCursor::next_page(&captures, query.limit).map(|c| c.encode());
    Ok(Json(json!({
        "items": captures.iter().map(capture_dto).collect::<Vec<_>>(),
        "next_offset": next_offset,
        "next_cursor": next_cursor,
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchParams {
    pub(super) q: Option<String>,
    pub(super) site: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) schedule: Option<String>,
    pub(super) claim: Option<String>,
    pub(super) order: Option<String>,
    pub(super) cursor: Option<String>,
    pub(super) limit: Option<String>,
}

impl SearchParams {
    /// The request these parameters make (`limit` by default).
    pub(super) fn request(&self, limit: u32) -> Result<crate::search::SearchRequest, AppError> {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        Ok(crate::search::SearchRequest {
            q: self.q.clone().unwrap_or_default(),
            site: given(&self.site),
            from: given(&self.from)
                .map(|s| parse_time("from", &s))
                .transpose()?,
            to: given(&self.to).map(|s| parse_time("to", &s)).transpose()?,
            schedule: given(&self.schedule),
            claim: given(&self.claim),
            oldest_first: self.order.as_deref() == Some("asc"),
            cursor: given(&self.cursor),
            limit: Page {
                limit: self.limit.clone().or(Some(limit.to_string())),
                offset: None,
            }
            .limit(),
        })
    }
}

/// Full-text search: documents holding every word and "phrase", newest
/// capture first.
async fn search(
    State(state): State<AppState>,
    Query(q): Query<SearchParams>,
) -> Result<Response, AppError> {
    let page = crate::search::search(state.archive(), &q.request(100)?).await?;
    Ok(Json(page).into_response())
}

/// A list's `cursor` parameter (the `next_cursor` of the page before).
pub fn parse_cursor(s: &str) -> Result<CaptureCursor, AppError> {
    CaptureCursor::decode(s).ok_or_else(|| {
        AppError::bad_request(format!(
            "cursor={s:?} is not a cursor; pass the next_cursor of the page before"
        ))
    })
}

#[derive(Debug, Deserialize)]
struct NewCapture {
    url: Option<String>,
    urls: Option<Vec<String>>,
    /// Run the media step (yt-dlp) or not; the configuration's choice
    /// when absent.
    media: Option<bool>,
}

/// Captures now (archivist): the response is the capture, as `capture
/// --json` prints it.
async fn create_capture(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<NewCapture>,
) -> Result<Response, AppError> {
    let mut urls = body.urls.unwrap_or_default();
    urls.extend(body.url);
    if urls.is_empty() {
        return Err(AppError::bad_request(
            "give the page to capture: {\"url\": \"https://...\"}",
        ));
    }
    let made = capture_now(&state, &caller, &urls, body.media, "api").await?;
    let out: Vec<Value> = made.iter().map(capture_dto).collect();
    let status = StatusCode::CREATED;
    Ok((status, Json(json!({"items": out}))).into_response())
}

/// Captures each URL now (every seed checked before anything is fetched),
/// with the media step on or off when `media` says so; each capture's
/// request is recorded in its custody record, `via` the API or the UI.
pub(super) async fn capture_now(
    state: &AppState,
    caller: &Caller,
    urls: &[String],
    media: Option<bool>,
    via: &str,
) -> Result<Vec<crate::model::Capture>, AppError> {
    let configured = &state.archive().config().capture;
    let allow_private = configured.allow_private;
    let settings = media.filter(|m| *m != configured.media.enabled).map(|m| {
        let mut s = configured.clone();
        s.media.enabled = m;
        s
    });
    let mut seeds = Vec::new();
    for u in urls {
        seeds.push(
            crate::capture::check_seed(u, allow_private)
                .map_err(|e| AppError::bad_request(e.to_string()))?,
        );
    }
    let mut out = Vec::new();
    for (u, seed) in urls.iter().zip(seeds) {
        let mut request = crate::pipeline::CaptureRequest::new(seed);
        request.settings = settings.clone();
        let capture = state
            .capturer()
            .capture_with(request, &crate::pipeline::NoProgress)
            .await?
            .capture;
        state
            .accessed(
                caller,
                &capture.id,
                "requested",
                json!({"via": via, "url": u}),
            )
            .await?;
        out.push(capture);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct NewImport {
    name: Option<String>,
    source: Option<String>,
}

/// Imports the request's body, a WARC or WACZ file (archivist): the
/// response is the capture it became, as `import --json` prints it.
async fn create_import(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<NewImport>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    use http_body_util::BodyExt;
    let archive = state.archive();
    // A file past the cap is refused before it fills the disk: at once
    // when its length is declared, else when the cap is passed (what was
    // written is removed).
    let cap = state.max_upload();
    let too_large = || {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is larger than daemon.max_upload_bytes ({cap} bytes); raise it in custody.toml, or run `custody import FILE` where the file is"
            ),
        )
    };
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut rx = crate::import::Receiver::new(archive)?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            AppError::bad_request(format!("the upload broke off before its end: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if rx.bytes() + data.len() as u64 > cap {
                return Err(too_large());
            }
            rx.write(&data).await?;
        }
    }
    let received = rx.finish().await?;
    let request = crate::import::ImportRequest {
        name: q
            .name
            .unwrap_or_else(|| format!("upload-{}", received.sha256)),
        source: q.source,
        actor: Some(caller.actor()),
    };
    let capture = crate::import::import(archive, received, &request).await?;
    Ok((StatusCode::CREATED, Json(capture_dto(&capture))).into_response())
}

async fn show_capture(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let c = known_capture(&state, &id).await?;
    let mut v = capture_dto(&c);
    v["records"] = json!(state.index().records(&id).await?);
    Ok(Json(v).into_response())
}

async fn capture_records(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    known_capture(&state, &id).await?;
    let records = state.index().records(&id).await?;
    Ok(Json(json!({"items": records, "next_offset": null})).into_response())
}

async fn capture_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let events = state.index().events("capture", id.as_str()).await?;
    Ok(Json(json!({"items": events, "next_offset": null})).into_response())
}

async fn verify_capture(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let key = crate::tlog::LogKey::for_config(state.archive().config())?;
    let v = crate::integrity::verify_capture(state.archive(), &key, &id).await?;
    state
        .accessed(&caller, &id, "verified", json!({"via": "api", "ok": v.ok}))
        .await?;
    let status = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    Ok((status, Json(v)).into_response())
}

async fn capture_proof(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let c = known_capture(&state, &id).await?;
    let warc = c
        .warc
        .ok_or_else(|| AppError::not_found(format!("capture {id} failed and has no WARC")))?;
    Ok(Json(state.archive().proof(&id, &warc).await?).into_response())
}

/// Streams a finished export file and removes it afterwards.
async fn send_file(path: PathBuf, name: &str, content_type: &str) -> Result<Response, AppError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| AppError::internal(&e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| AppError::internal(&e))?
        .len();
    // Unlinked now; the open handle keeps the bytes until streamed.
    let _ = tokio::fs::remove_file(&path).await;
    let mut resp = Response::new(Body::from_stream(super::replay::file_stream(file, len)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type.parse().expect("static"));
    h.insert(header::CONTENT_LENGTH, len.into());
    if let Ok(v) = format!("attachment; filename=\"{name}\"").parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn export_path(state: &AppState) -> Result<PathBuf, AppError> {
    let scratch = state.archive().scratch_dir();
    Ok(scratch.join(format!("export-{}", uuid::Uuid::new_v4().simple())))
}

async fn download_warc(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let path = export_path(&state)?;
    let exported = state.archive().write_export(&id, &path).await?;
    state
        .accessed(
            &caller,
            &id,
            "exported",
            json!({"format": "warc", "via": "api", "sha256": exported.sha256}),
        )
        .await?;
    send_file(path, &format!("{id}.warc.gz"), "application/warc").await
}

async fn download_wacz(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let name = format!("{id}.wacz");
    send_wacz(&state, &caller, crate::wacz::Scope::Capture(id), &name).await
}

/// A file the capture's media step produced, from its `resource` record
/// (digests checked on read), with byte ranges so a player can seek. Only
/// audio and video are typed as such; anything else is an attachment, and
/// nothing it holds can run on custody's origin.
async fn media_file(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, n)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let capture = known_capture(&state, &id).await?;
    let files = capture
        .media
        .as_ref()
        .map(|m| m.files.as_slice())
        .unwrap_or_default();
    let file = n
        .parse::<usize>()
        .ok()
        .and_then(|n| files.get(n))
        .ok_or_else(|| {
            AppError::not_found(format!(
                "capture {id} has {} media file(s); ask for one from 0",
                files.len()
            ))
        })?;
    let made = Made {
        record_id: &file.record_id,
        sha256: file.sha256,
        mime: if crate::media::is_media_type(&file.mime) {
            &file.mime
        } else {
            "application/octet-stream"
        },
        inline: crate::media::is_media_type(&file.mime),
        via: "media",
    };
    serve_made(&state, &caller, &id, made, &headers).await
}

/// A record a capture step made (a media file, a screenshot), as the
/// capture names it.
struct Made<'a> {
    record_id: &'a str,
    sha256: crate::model::Sha256,
    /// The type it is served as (only types that cannot run on custody's
    /// origin are shown inline).
    mime: &'a str,
    inline: bool,
    /// The access event's `via`.
    via: &'a str,
}

/// Serves `made` from its record (digests checked on read) with byte
/// ranges, `nosniff` and a sandbox policy; the access is logged once per
/// viewing, not once per range a player asks for.
async fn serve_made(
    state: &AppState,
    caller: &Caller,
    id: &CaptureId,
    made: Made<'_>,
    headers: &axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let hit = state
        .index()
        .record_hit(made.record_id)
        .await?
        .filter(|h| &h.capture_id == id && h.record.block_digest == made.sha256)
        .ok_or_else(|| {
            AppError::internal(&format!(
                "capture {id}: its record {} is not in the index as the capture names it",
                made.record_id
            ))
        })?;
    let (_, payload) = super::replay::read_payload(state, &hit).await?;
    let first = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().starts_with("bytes=0-"));
    if first {
        state
            .accessed(
                caller,
                id,
                "accessed",
                json!({"via": made.via, "record": made.record_id, "sha256": made.sha256}),
            )
            .await?;
    }
    let mut resp = super::replay::serve_payload(payload, headers)?;
    let h = resp.headers_mut();
    let value = |s: &str| {
        axum::http::HeaderValue::from_str(s)
            .unwrap_or_else(|_| axum::http::HeaderValue::from_static("application/octet-stream"))
    };
    h.insert(header::CONTENT_TYPE, value(made.mime));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(if made.inline { "inline" } else { "attachment" }),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, value("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        value("sandbox; default-src 'none'"),
    );
    h.insert("x-custody-record", value(made.record_id));
    Ok(resp)
}

/// What the browser made of a browser-mode capture's page: `screenshot`
/// and `thumbnail` (PNG, inline), `pdf`, `view` (the rendered DOM, as
/// text: archived markup never runs here) and `text`.
async fn browser_record(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, kind)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let id = capture_id(&id)?;
    let capture = known_capture(&state, &id).await?;
    let record = capture
        .browser
        .as_ref()
        .and_then(|b| b.records.iter().find(|r| r.kind == kind))
        .ok_or_else(|| {
            AppError::not_found(format!(
                "capture {id} has no browser {kind:?}; a browser-mode capture has screenshot, thumbnail, pdf, view and text"
            ))
        })?;
    let (mime, inline) = match record.kind.as_str() {
        "screenshot" | "thumbnail" => ("image/png", true),
        "pdf" => ("application/pdf", false),
        _ => ("text/plain; charset=utf-8", true),
    };
    let made = Made {
        record_id: &record.record_id,
        sha256: record.sha256,
        mime,
        inline,
        via: "browser",
    };
    serve_made(&state, &caller, &id, made, &headers).await
}

async fn download_claim_wacz(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let name = format!("claim-{id}.wacz");
    send_wacz(&state, &caller, crate::wacz::Scope::Claim(id), &name).await
}

/// Writes a package to the spool and streams it (the export is recorded
/// as a custody event of each capture in it).
async fn send_wacz(
    state: &AppState,
    caller: &Caller,
    scope: crate::wacz::Scope,
    name: &str,
) -> Result<Response, AppError> {
    let path = export_path(state)?;
    crate::wacz::export(state.archive(), &scope, &path, Some(&caller.actor())).await?;
    send_file(path, name, "application/wacz").await
}

#[derive(Debug, Deserialize)]
struct RecordFilter {
    url: String,
    #[serde(rename = "matchType")]
    match_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    #[serde(flatten)]
    page: Page,
}

async fn list_records(
    State(state): State<AppState>,
    Query(q): Query<RecordFilter>,
) -> Result<Response, AppError> {
    let full = if q.url.contains("://") {
        q.url.clone()
    } else {
        format!("http://{}", q.url)
    };
    let parsed = url::Url::parse(&full)
        .map_err(|_| AppError::bad_request(format!("url {:?} is not a URL", q.url)))?;
    let key = surt(&parsed);
    let ts = |name: &str, s: &Option<String>| -> Result<Option<String>, AppError> {
        s.as_deref()
            .map(|s| parse_time(name, s).map(|t| crate::model::timestamp14(&t)))
            .transpose()
    };
    let prefix = q.match_type.as_deref() == Some("prefix");
    let query = RecordQuery {
        surt: (!prefix).then(|| key.clone()),
        surt_prefix: prefix.then(|| key.clone()),
        from: ts("from", &q.from)?,
        to: ts("to", &q.to)?,
        reverse: false,
        limit: q.page.limit(),
        offset: q.page.offset(),
    };
    let hits = state.index().find_records(&query).await?;
    let items = hits
        .iter()
        .map(|h| {
            let mut v = serde_json::to_value(&h.record).unwrap_or(Value::Null);
            v["capture_id"] = json!(h.capture_id);
            v["warc"] = json!(h.warc);
            v["replay"] = json!(format!(
                "/replay/{}id_/{}",
                h.record.timestamp,
                h.record.target_uri.as_deref().unwrap_or_default()
            ));
            v
        })
        .collect();
    Ok(page(items, query.limit, query.offset))
}

#[derive(Debug, Deserialize)]
struct ClaimSearch {
    q: Option<String>,
    order: Option<String>,
    cursor: Option<String>,
    #[serde(flatten)]
    page: Page,
}

/// Claims, oldest first (`order=desc` for newest), by a stable cursor (the
/// last claim's id) or by offset.
async fn list_claims(
    State(state): State<AppState>,
    Query(q): Query<ClaimSearch>,
) -> Result<Response, AppError> {
    let (limit, offset) = (q.page.limit(), q.page.offset());
    let newest_first = q.order.as_deref() == Some("desc");
    let after = q.cursor.as_deref().filter(|c| !c.is_empty());
    let read = match after {
        Some(_) => limit,
        None => (offset + limit as u64).min(100_000) as u32,
    };
    let mut claims = state
        .index()
        .claim_page(q.q.as_deref(), after, newest_first, read)
        .await?;
    if after.is_none() {
        claims.drain(..(offset as usize).min(claims.len()));
    }
    let full = claims.len() as u32 == limit;
    let next_cursor = claims.last().filter(|_| full).map(|c| c.id.clone());
    let items: Vec<Value> = claims
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
            v["links"] = json!({"self": format!("/api/v1/claims/{}", c.id), "ui": format!("/ui/claims/{}", c.id)});
            v
        })
        .collect();
    Ok(Json(json!({
        "items": items,
        "next_offset": (full && after.is_none()).then(|| offset + limit as u64),
        "next_cursor": next_cursor,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct NewClaim {
    text: String,
    event_start: Option<String>,
    event_end: Option<String>,
    place: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    tags: Option<Vec<String>>,
    language: Option<String>,
}

async fn create_claim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<NewClaim>,
) -> Result<Response, AppError> {
    let claim = crate::provenance::add_claim(
        state.archive(),
        crate::provenance::ClaimFields {
            text: Some(b.text),
            event_start: b.event_start,
            event_end: b.event_end,
            place: b.place,
            latitude: b.latitude,
            longitude: b.longitude,
            tags: b.tags,
            language: b.language,
            author: Some(caller.actor()),
            origin: None,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(claim)).into_response())
}

async fn show_claim(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let ev = crate::provenance::evidence(state.archive(), &id).await?;
    Ok(Json(ev).into_response())
}

async fn claim_jsonld(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let ev = crate::provenance::evidence(state.archive(), &id).await?;
    let doc = crate::provenance::jsonld::claim_document(&ev);
    Ok((
        [(header::CONTENT_TYPE, "application/ld+json")],
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct NewLink {
    capture_id: String,
    url: Option<String>,
    quote: Option<String>,
    prefix: Option<String>,
    suffix: Option<String>,
    fragment: Option<String>,
    relation: Option<String>,
    rationale: Option<String>,
}

async fn link_claim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(b): Json<NewLink>,
) -> Result<Response, AppError> {
    let relation = parse_relation(b.relation.as_deref())?;
    let link = crate::provenance::link(
        state.archive(),
        crate::provenance::LinkRequest {
            claim_id: id,
            capture_id: capture_id(&b.capture_id)?,
            target: b.url,
            quote: b.quote,
            prefix: b.prefix,
            suffix: b.suffix,
            position: None,
            fragment: b.fragment,
            relation,
            rationale: b.rationale,
            author: Some(caller.actor()),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

#[derive(Debug, Deserialize)]
struct LinkQuery {
    claim: Option<String>,
    capture: Option<String>,
}

async fn list_links(
    State(state): State<AppState>,
    Query(q): Query<LinkQuery>,
) -> Result<Response, AppError> {
    let filter = LinkFilter {
        claim_id: q.claim,
        capture_id: q.capture.as_deref().map(capture_id).transpose()?,
        target_uri: None,
    };
    let links = state.index().links(&filter).await?;
    Ok(Json(json!({"items": links, "next_offset": null})).into_response())
}

fn schedules_dir(state: &AppState) -> Result<PathBuf, AppError> {
    state.inner.settings.schedules_dir.clone().ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_FOUND,
            "this server has no schedules directory; start it with --schedules DIR",
        )
    })
}

async fn list_schedules(State(state): State<AppState>) -> Result<Response, AppError> {
    let dir = schedules_dir(&state)?;
    let config = state.archive().config().clone();
    let (files, problems) = crate::scheduler::load_dir(&dir, &config.capture);
    let now = Utc::now();
    let mut items = Vec::new();
    for f in &files {
        let version = std::fs::read_to_string(&f.path)
            .map(|t| crate::scheduler::file_version(&t))
            .unwrap_or_default();
        for s in &f.schedules {
            items.push(json!({
                "name": s.name,
                "cron": s.cron_text,
                "timezone": s.timezone.name(),
                "urls": s.urls.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                "enabled": s.enabled,
                "next": s.next_after(now).map(|t| crate::model::rfc3339_utc(&t)),
                "file": f.path.display().to_string(),
                "version": version,
            }));
        }
    }
    let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    Ok(Json(json!({"items": items, "problems": problems, "next_offset": null})).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NewSchedule {
    pub(super) name: String,
    pub(super) cron: String,
    pub(super) urls: Vec<String>,
    pub(super) timezone: Option<String>,
    pub(super) on_missed: Option<String>,
    pub(super) overlap: Option<String>,
}

/// Writes a new schedule file (archivist), checked as `schedule validate`
/// checks one; the daemon picks it up on its next reload.
async fn create_schedule(
    State(state): State<AppState>,
    Json(b): Json<NewSchedule>,
) -> Result<Response, AppError> {
    let path = write_schedule(&state, &b)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": b.name, "file": path.display().to_string()})),
    )
        .into_response())
}

/// This server writes schedule files one at a time, so what a write checked
/// (a name not in use, the version of the file an edit was made on) still
/// holds when it writes.
static SCHEDULE_WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A change to one schedule: the values given are set, the others kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleChange {
    pub(super) cron: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) urls: Option<Vec<String>>,
    pub(super) on_missed: Option<String>,
    pub(super) overlap: Option<String>,
    /// `false` pauses the schedule, `true` resumes it.
    pub(super) enabled: Option<bool>,
    /// The file's `version` as listed: the change is refused when the file
    /// changed since.
    pub(super) version: Option<String>,
}

/// Edits, pauses or resumes a schedule (archivist), in its file.
async fn change_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(b): Json<ScheduleChange>,
) -> Result<Response, AppError> {
    let (path, version) = edit_schedule(&state, &name, &b)?;
    Ok(Json(json!({
        "name": name,
        "file": path.display().to_string(),
        "version": version,
    }))
    .into_response())
}

/// Changes one schedule in its file, as `scheduler::edit_text` does it
/// (values rewritten in place, the result checked as `schedule validate`
/// checks a file), and writes the file whole, by rename. Refused with 409
/// when the file is no longer the `version` the change was made on. The
/// API and the UI's forms both edit through here; returns the file and its
/// new version.
pub(super) fn edit_schedule(
    state: &AppState,
    name: &str,
    b: &ScheduleChange,
) -> Result<(PathBuf, String), AppError> {
    let dir = schedules_dir(state)?;
    let edit = crate::scheduler::ScheduleEdit {
        cron: b.cron.clone(),
        timezone: b.timezone.clone(),
        urls: b.urls.clone(),
        on_missed: b.on_missed.clone(),
        overlap: b.overlap.clone(),
        enabled: b.enabled,
    };
    if edit == crate::scheduler::ScheduleEdit::default() {
        return Err(AppError::bad_request(
            "nothing to change: give cron, timezone, urls, on_missed, overlap or enabled",
        ));
    }
    let config = state.archive().config().clone();
    let _one = SCHEDULE_WRITES.lock().unwrap_or_else(|e| e.into_inner());
    let (files, problems) = crate::scheduler::load_dir(&dir, &config.capture);
    let Some(file) = files
        .iter()
        .find(|f| f.schedules.iter().any(|s| s.name == name))
    else {
        let hint = if problems.is_empty() {
            ""
        } else {
            " (a schedule file that does not validate is not read: run `custody schedule validate`)"
        };
        return Err(AppError::not_found(format!(
            "no schedule named {name:?}{hint}"
        )));
    };
    // A link (a mounted configuration) is edited where it points.
    let target = std::fs::canonicalize(&file.path).map_err(|e| AppError::internal(&e))?;
    let text = std::fs::read_to_string(&target).map_err(|e| AppError::internal(&e))?;
    if b.version
        .as_deref()
        .is_some_and(|v| v != crate::scheduler::file_version(&text))
    {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            format!(
                "{} changed since it was read; read the schedule again and repeat the change",
                file.path.display()
            ),
        ));
    }
    let edited = crate::scheduler::edit_text(&file.path, &text, name, &edit, &config.capture)
        .map_err(|e| match e {
            crate::scheduler::EditError::NoSuchSchedule => {
                AppError::not_found(format!("no schedule named {name:?}"))
            }
            crate::scheduler::EditError::Refused(why) => AppError::bad_request(why),
        })?;
    replace_file(&target, &edited).map_err(|e| {
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "cannot write {}: {e}; the server needs write access to its schedules directory",
                file.path.display()
            ),
        )
    })?;
    Ok((file.path.clone(), crate::scheduler::file_version(&edited)))
}

/// Replaces a file whole: the new text is written and synced beside it,
/// with the old file's permissions, and renamed over it, so a reader (the
/// daemon's reload) sees the old text or the new, never a part.
fn replace_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    let permissions = std::fs::metadata(path)?.permissions();
    std::fs::set_permissions(tmp.path(), permissions)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A new schedule file in the server's schedules directory, refused (one
/// line each) when the name is not a plain name, when `schedule validate`
/// would refuse it, or when a schedule of that name exists. The API and the
/// UI's form both write through here.
pub(super) fn write_schedule(state: &AppState, b: &NewSchedule) -> Result<PathBuf, AppError> {
    let dir = schedules_dir(state)?;
    if b.name.is_empty()
        || !b
            .name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(AppError::bad_request(
            "a schedule name is letters, digits, '-' and '_'",
        ));
    }
    let mut text = String::from("# Created through the HTTP API.\n\n[[schedule]]\n");
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    text.push_str(&format!("name = {}\ncron = {}\n", q(&b.name), q(&b.cron)));
    if let Some(tz) = &b.timezone {
        text.push_str(&format!("timezone = {}\n", q(tz)));
    }
    text.push_str(&format!(
        "urls = [{}]\n",
        b.urls.iter().map(|u| q(u)).collect::<Vec<_>>().join(", ")
    ));
    if let Some(v) = &b.on_missed {
        text.push_str(&format!("on_missed = {}\n", q(v)));
    }
    if let Some(v) = &b.overlap {
        text.push_str(&format!("overlap = {}\n", q(v)));
    }
    let path = dir.join(format!("{}.toml", b.name));
    let config = state.archive().config().clone();
    crate::scheduler::parse_file(&path, &text, &config.capture).map_err(|problems| {
        AppError::bad_request(crate::scheduler::schedule::one_line(&problems))
    })?;
    let _one = SCHEDULE_WRITES.lock().unwrap_or_else(|e| e.into_inner());
    let (files, _) = crate::scheduler::load_dir(&dir, &config.capture);
    if files
        .iter()
        .flat_map(|f| &f.schedules)
        .any(|s| s.name == b.name)
    {
        return Err(AppError::new(
            StatusCode::CONFLICT,
            format!("a schedule named {:?} exists already", b.name),
        ));
    }
    let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| AppError::internal(&e))?;
    std::fs::write(tmp.path(), &text).map_err(|e| AppError::internal(&e))?;
    tmp.persist_noclobber(&path).map_err(|_| {
        AppError::new(
            StatusCode::CONFLICT,
            format!("{} exists already", path.display()),
        )
    })?;
    Ok(path)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RunQuery {
    pub(super) schedule: Option<String>,
    pub(super) state: Option<String>,
    pub(super) host: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) order: Option<String>,
    pub(super) cursor: Option<String>,
    #[serde(flatten)]
    page: Page,
}

impl RunQuery {
    /// The index's query for these parameters (newest instant first unless
    /// `order=asc`), each refused in one line when it cannot be read.
    pub(super) fn query(&self, limit: u32) -> Result<crate::index::RunListQuery, AppError> {
        let given = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        let state = given(&self.state)
            .map(|s| {
                crate::model::RunState::parse(s.trim()).ok_or_else(|| {
                    AppError::bad_request(format!(
                        "state={s:?} is not a run state; give due, running, done, failed, skipped or interrupted"
                    ))
                })
            })
            .transpose()?;
        let after = given(&self.cursor)
            .map(|c| {
                crate::index::RunCursor::decode(&c).ok_or_else(|| {
                    AppError::bad_request(format!(
                        "cursor={c:?} is not a cursor; pass the next_cursor of the page before"
                    ))
                })
            })
            .transpose()?;
        Ok(crate::index::RunListQuery {
            schedule: given(&self.schedule),
            state,
            host: given(&self.host)
                .map(|h| crate::search::parse_site(&h).map_err(AppError::from))
                .transpose()?,
            from: given(&self.from)
                .map(|s| parse_time("from", &s))
                .transpose()?,
            to: given(&self.to).map(|s| parse_time("to", &s)).transpose()?,
            newest_first: self.order.as_deref() != Some("asc"),
            after,
            limit: match self.page.limit {
                Some(_) => self.page.limit(),
                None => limit,
            },
        })
    }
}

/// Runs, newest instant first: by a stable cursor (`next_cursor`), or by
/// offset as before.
async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<RunQuery>,
) -> Result<Response, AppError> {
    let query = q.query(100)?;
    let offset = q.page.offset();
    let runs = match (offset, &query.after) {
        (0, _) | (_, Some(_)) => state.index().run_page(&query).await?,
        // An offset reads the pages before it (kept for clients of the
        // offset form; a cursor reads only its page).
        (offset, None) => {
            let mut skipped = query.clone();
            skipped.limit = (offset + query.limit as u64).min(100_000) as u32;
            let mut all = state.index().run_page(&skipped).await?;
            all.drain(..(offset as usize).min(all.len()));
            all
        }
    };
    let full = runs.len() as u32 == query.limit;
    let next_offset = (full && query.after.is_none()).then(|| offset + query.limit as u64);
    let next_cursor = crate::index::RunCursor::next_page(&runs, query.limit).map(|c| c.encode());
    Ok(Json(json!({
        "items": runs.iter().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).collect::<Vec<_>>(),
        "next_offset": next_offset,
        "next_cursor": next_cursor,
    }))
    .into_response())
}

async fn log_key(State(state): State<AppState>) -> Result<Response, AppError> {
    let key = crate::tlog::LogKey::for_config(state.archive().config())?;
    let size = state.index().log_size().await?;
    Ok(
        Json(json!({"verifier_key": key.verifier_key(), "origin": key.name(), "size": size}))
            .into_response(),
    )
}

async fn log_checkpoints(State(state): State<AppState>) -> Result<Response, AppError> {
    let cps = state.index().checkpoints().await?;
    Ok(Json(json!({"items": cps, "next_offset": null})).into_response())
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

/// The consistency proof between two checkpoints (the latest when `new` is
/// absent), checked against both signed notes before it is sent.
async fn log_consistency(
    State(state): State<AppState>,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Response, AppError> {
    let key = crate::tlog::LogKey::for_config(state.archive().config())?;
    let new = match q.new {
        Some(n) => n,
        None => state
            .index()
            .checkpoints()
            .await?
            .last()
            .map(|c| c.tree_size)
            .ok_or_else(|| AppError::not_found("no checkpoint has been signed yet"))?,
    };
    let proof = crate::tlog::consistency(state.index().as_ref(), &key, q.old, new).await?;
    Ok(Json(proof).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FixityQuery {
    pub(super) quarantined: Option<String>,
    pub(super) order: Option<String>,
    pub(super) cursor: Option<String>,
    #[serde(flatten)]
    pub(super) page: Page,
}

/// A page of stored files with their last fixity check (read in one
/// query), by when each was stored.
pub(super) async fn fixity_page(
    state: &AppState,
    q: &FixityQuery,
    newest_first: bool,
) -> Result<(FixityRows, Option<String>), AppError> {
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            crate::index::decode_cursor::<crate::model::Sha256>(c).ok_or_else(|| {
                AppError::bad_request(format!(
                    "cursor={c:?} is not a cursor; pass the next_cursor of the page before"
                ))
            })
        })
        .transpose()?;
    let quarantined_only = match q.quarantined.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(AppError::bad_request(format!(
                "quarantined={other:?} is not true or false"
            )))
        }
    };
    let query = crate::index::WarcFileQuery {
        quarantined_only,
        newest_first,
        after,
        limit: q.page.limit(),
    };
    let files = state.index().warc_file_page(&query).await?;
    let last: std::collections::HashMap<String, crate::model::FixityEvent> = state
        .index()
        .latest_fixity_events()
        .await?
        .into_iter()
        .map(|e| (e.object_key.clone(), e))
        .collect();
    let next = files
        .last()
        .filter(|_| files.len() as u32 == query.limit)
        .map(|(f, at)| crate::index::encode_cursor(at, f.sha256.hex()));
    let rows = files
        .into_iter()
        .map(|(f, _)| {
            let check = last.get(&f.key).cloned();
            (f, check)
        })
        .collect();
    Ok((rows, next))
}

/// Stored files, each with its last fixity check.
pub(super) type FixityRows = Vec<(crate::model::WarcFile, Option<crate::model::FixityEvent>)>;

/// Fixity status of the stored files, oldest stored first
/// (`order=desc` for newest), a page at a time.
async fn fixity(
    State(state): State<AppState>,
    Query(q): Query<FixityQuery>,
) -> Result<Response, AppError> {
    let (rows, next_cursor) = fixity_page(&state, &q, q.order.as_deref() == Some("desc")).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|(f, last)| {
            json!({
                "key": f.key,
                "sha256": f.sha256,
                "bytes": f.bytes,
                "quarantined": f.quarantined,
                "last_check": last,
            })
        })
        .collect();
    let stats = state.index().stats(Utc::now()).await?;
    Ok(Json(json!({
        "quarantined": stats.quarantined,
        "items": items,
        "next_offset": null,
        "next_cursor": next_cursor,
    }))
    .into_response())
}

async fn list_tokens(State(state): State<AppState>) -> Result<Response, AppError> {
    let tokens = state.index().tokens().await?;
    Ok(Json(json!({"items": tokens, "next_offset": null})).into_response())
}

#[derive(Debug, Deserialize)]
struct NewToken {
    role: String,
    label: Option<String>,
}

/// Makes a token (admin); the response is the only time it is shown.
async fn create_token(
    State(state): State<AppState>,
    Json(b): Json<NewToken>,
) -> Result<Response, AppError> {
    let role = Role::parse(&b.role).ok_or_else(|| {
        AppError::bad_request(format!(
            "role {:?} is not one of reader, archivist, admin",
            b.role
        ))
    })?;
    let t = crate::access::create(state.index().as_ref(), role, b.label).await?;
    let mut v = serde_json::to_value(&t.record).unwrap_or(Value::Null);
    v["token"] = json!(t.token);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    if state.index().revoke_token(&id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(AppError::not_found(format!("no active token {id}")))
    }
}
