//! The HTTP surface, served by `custody serve` and by the daemon: the JSON
//! API under `/api/v1` (with its OpenAPI document), replay with link
//! rewriting, Memento (RFC 7089) TimeGates and TimeMaps, pywb's CDX server
//! API, the web UI, `/healthz` and `/metrics`.
//!
//! The only module that knows HTTP. It reads through the `Index` trait and
//! the pipeline, never SQL, and renders its own DTOs rather than serialising
//! database rows. Every request passes [`auth`] first: a token with the
//! route's role, or nothing for reading when `--public-read` is set. Every
//! access to evidence becomes a custody event, committed before the
//! evidence is served; one task ([`AccessLog`]) group-commits them, so
//! concurrent requests share transactions.

mod api;
mod cache;
mod cdx;
pub mod grant;
mod isolation;
mod openapi;
mod replay;
pub mod rewrite;
pub mod serve;
mod ui;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::archive::{Archive, ArchiveError};
use crate::index::Index;
use crate::model::{ApiToken, CaptureId, CustodyEvent, Role};
use crate::pipeline::Capturer;

/// How the HTTP surface is served.
#[derive(Clone, Debug, Default)]
pub struct ServeSettings {
    /// Reading (API reads, replay, Memento, CDX, UI) needs no token.
    pub public_read: bool,
    /// Where schedule files live (listed and written by the API).
    pub schedules_dir: Option<PathBuf>,
    /// Keep small verified payloads in memory between replays (they are
    /// re-hashed each time they are served).
    pub replay_cache: bool,
    /// How connections are bounded.
    pub limits: serve::Limits,
    /// The replay origin's address (scheme, host, port), when replay is
    /// served apart ([`isolation`]); filled from the bound address by
    /// [`Listeners::bind`] when not configured.
    pub replay_url: Option<String>,
    /// custody's own address, for links from the replay origin back to the
    /// UI; likewise filled when not configured.
    pub public_url: Option<String>,
    /// Largest upload (`daemon.max_upload_bytes`; [`DEFAULT_MAX_UPLOAD`]
    /// when unset).
    pub max_upload_bytes: Option<u64>,
}

/// `daemon.max_upload_bytes` unless set: 16 GiB.
pub const DEFAULT_MAX_UPLOAD: u64 = 16 << 30;

impl ServeSettings {
    /// The HTTP settings of a `[daemon]` table.
    pub fn of(daemon: &crate::config::DaemonSettings) -> ServeSettings {
        ServeSettings {
            public_read: daemon.public_read,
            schedules_dir: Some(daemon.schedules_dir.clone()),
            replay_cache: daemon.replay_cache,
            limits: serve::Limits {
                header_timeout: daemon.header_timeout,
                max_connections: daemon.max_connections,
            },
            replay_url: daemon.replay.as_ref().and_then(|r| r.url.clone()),
            public_url: daemon.public_url.clone(),
            max_upload_bytes: Some(daemon.max_upload_bytes),
        }
    }
}

/// The main listener (API, UI, replay) and, when configured, the replay
/// origin's.
pub struct Listeners {
    main: tokio::net::TcpListener,
    replay: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds `listen` and the replay origin's address, and fills the
    /// settings' addresses that were left to the bound ones.
    pub async fn bind(
        listen: std::net::SocketAddr,
        replay: Option<&crate::config::ReplayOrigin>,
        settings: &mut ServeSettings,
    ) -> Result<Listeners, ServeError> {
        let bind = |addr: std::net::SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Listen { addr, source })
        };
        let main = bind(listen).await?;
        let replay = match replay {
            Some(r) => Some(bind(r.listen).await?),
            None => None,
        };
        let listeners = Listeners { main, replay };
        if settings.public_url.is_none() {
            settings.public_url = Some(format!("http://{}", listeners.local_addr()));
        }
        if let (None, Some(addr)) = (&settings.replay_url, listeners.replay_addr()) {
            settings.replay_url = Some(format!("http://{addr}"));
        }
        Ok(listeners)
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.main
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn replay_addr(&self) -> Option<std::net::SocketAddr> {
        self.replay.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves the app (and the replay origin) until `stop` turns true.
    pub async fn serve(
        self,
        state: AppState,
        limits: serve::Limits,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let main = serve::serve(self.main, app(state.clone()), limits, stop.clone());
        match self.replay {
            Some(replay) => {
                let replay = serve::serve(replay, isolation::replay_app(state), limits, stop);
                tokio::join!(main, replay);
            }
            None => main.await,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    archive: Arc<Archive>,
    capturer: Arc<Capturer>,
    settings: ServeSettings,
    access: AccessLog,
    cache: cache::ReplayCache,
}

impl AppState {
    /// The state and the task that writes access events; await the task
    /// after the server stops so the last accesses are recorded.
    pub fn new(
        capturer: Arc<Capturer>,
        settings: ServeSettings,
    ) -> (AppState, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(10_000);
        let archive = capturer.archive().clone();
        let writer = tokio::spawn(write_access(archive.index().clone(), rx));
        (
            AppState {
                inner: Arc::new(Inner {
                    archive,
                    capturer,
                    settings,
                    access: AccessLog(tx),
                    cache: cache::ReplayCache::default(),
                }),
            },
            writer,
        )
    }

    /// The largest upload taken.
    fn max_upload(&self) -> u64 {
        self.inner
            .settings
            .max_upload_bytes
            .unwrap_or(DEFAULT_MAX_UPLOAD)
    }

    fn archive(&self) -> &Archive {
        &self.inner.archive
    }

    fn capturer(&self) -> &Capturer {
        &self.inner.capturer
    }

    fn index(&self) -> &Arc<dyn Index> {
        self.inner.archive.index()
    }
}

pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(api::routes())
        .merge(replay::routes())
        .merge(ui::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state.clone());
    isolation::with_grants(router, state, String::new())
}

/// Why the HTTP surface could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; choose another address with --listen")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The HTTP surface bound to its address, ready to serve (`custody serve`).
pub struct Server {
    listeners: Listeners,
    capturer: Arc<Capturer>,
    settings: ServeSettings,
}

impl Server {
    pub async fn bind(
        capturer: Arc<Capturer>,
        listen: std::net::SocketAddr,
        replay: Option<&crate::config::ReplayOrigin>,
        mut settings: ServeSettings,
    ) -> Result<Server, ServeError> {
        let listeners = Listeners::bind(listen, replay, &mut settings).await?;
        Ok(Server {
            listeners,
            capturer,
            settings,
        })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listeners.local_addr()
    }

    /// The replay origin's address, when replay is served apart.
    pub fn replay_addr(&self) -> Option<std::net::SocketAddr> {
        self.listeners.replay_addr()
    }

    /// Serves until SIGTERM or SIGINT, lets open requests finish, then
    /// records the last accesses and returns.
    pub async fn run_until_signal(self) -> Result<(), ServeError> {
        let addr = self.local_addr();
        let (public, limits) = (self.settings.public_read, self.settings.limits);
        let (state, writer) = AppState::new(self.capturer, self.settings);
        tracing::info!(listen = %addr, public_read = public, "serving");
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let signalled = async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
            }
            let _ = stop_tx.send(true);
        };
        tokio::join!(self.listeners.serve(state, limits, stop), signalled);
        let _ = writer.await;
        Ok(())
    }
}

/// Who is calling: the token's id and role, or nobody (public reading).
#[derive(Clone, Debug)]
pub struct Caller {
    pub token: Option<ApiToken>,
}

impl Caller {
    /// How the caller appears in custody events.
    pub fn actor(&self) -> String {
        match &self.token {
            Some(t) => format!("token:{}", t.id),
            None => "public".into(),
        }
    }

    pub fn role(&self) -> Option<Role> {
        self.token.as_ref().map(|t| t.role)
    }
}

/// The role a request needs; `None` for open routes.
fn required_role(method: &Method, path: &str) -> Option<Role> {
    if matches!(
        path,
        "/healthz" | "/metrics" | "/login" | "/logout" | "/api/v1/openapi.json" | "/ui/select.js"
    ) {
        return None;
    }
    if path.starts_with("/api/v1/tokens") {
        return Some(Role::Admin);
    }
    if method == Method::OPTIONS && path.starts_with("/replay/") {
        // A CORS preflight of a replayed page's request: it carries no
        // credentials and is answered with nothing archived.
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        Some(Role::Reader)
    } else {
        Some(Role::Archivist)
    }
}

/// Where a request's token came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presented {
    Bearer,
    /// The login cookie: honoured for reading only.
    Cookie,
}

/// The token a request presents: `Authorization: Bearer ...`, or the
/// `custody_token` cookie the login page sets: for reading, and for the
/// UI's own forms (posted to `/ui/`, from this origin, each with its form
/// token: see `ui::check_form`). The API never takes the cookie for a
/// change.
fn presented_token(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<(String, Presented)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some((t.trim().to_string(), Presented::Bearer));
        }
    }
    if method != Method::GET && method != Method::HEAD && !ui_form_post(method, path) {
        return None;
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("custody_token=").map(str::to_string))
        .map(|t| (t, Presented::Cookie))
}

/// A form of the UI's own posted: the only change a cookie may sign.
fn ui_form_post(method: &Method, path: &str) -> bool {
    method == Method::POST && path.starts_with("/ui/")
}

/// Whether a cookie-signed request is a page navigation. Replayed pages run
/// archived scripts on this origin; the browser's `Sec-Fetch-*` headers
/// tell their `fetch()` calls and frames apart from an investigator opening
/// a page, so archived code cannot read the API or the UI with the
/// investigator's cookie. (Replay itself, which archived pages embed, is
/// exempt; the UI uses no scripts, so it loses nothing.)
fn cookie_navigation(path: &str, headers: &HeaderMap) -> bool {
    if path.starts_with("/replay/") {
        return true;
    }
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    matches!(value("sec-fetch-mode"), None | Some("navigate"))
        && matches!(value("sec-fetch-dest"), None | Some("document"))
}

/// Checks the caller's token against the route's role: 401 without a valid
/// token, 403 when its role is not enough.
async fn auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.extensions().get::<isolation::Granted>().is_some() {
        // Opened by a replay grant: the cookie and any token are not
        // consulted.
        return next.run(req).await;
    }
    let needed = required_role(req.method(), req.uri().path());
    let presented = presented_token(req.method(), req.uri().path(), req.headers());
    let via_cookie = matches!(presented, Some((_, Presented::Cookie)));
    if let Some((_, Presented::Cookie)) = &presented {
        if needed.is_some() && !cookie_navigation(req.uri().path(), req.headers()) {
            return AppError::new(
                StatusCode::FORBIDDEN,
                "the sign-in cookie opens pages only; scripts and frames must send `Authorization: Bearer TOKEN`",
            )
            .into_response();
        }
        if ui_form_post(req.method(), req.uri().path()) && !ui::posted_from_here(req.headers()) {
            return AppError::new(
                StatusCode::FORBIDDEN,
                "this form was not sent from custody's own page; open the page in custody and send it from there",
            )
            .into_response();
        }
    }
    let token = match presented {
        Some((t, _)) => match crate::access::authenticate(state.index().as_ref(), &t).await {
            Ok(Some(t)) => Some(t),
            Ok(None) => {
                if needed.is_none() {
                    None
                } else {
                    return unauthorized(
                        req.uri().path(),
                        "the token is not valid (unknown or revoked)",
                    );
                }
            }
            Err(e) => return AppError::from(e).into_response(),
        },
        None => None,
    };
    let caller = Caller { token };
    if let Some(needed) = needed {
        let open = needed == Role::Reader && state.inner.settings.public_read;
        match caller.role() {
            None if !open => {
                let role = needed.as_str();
                let why = if state.inner.settings.public_read {
                    format!("reading is public here, but this needs a token with the {role} role: send `Authorization: Bearer TOKEN` (make one with `custody token create --role {role}`)")
                } else {
                    format!("this needs an API token with the {role} role: send `Authorization: Bearer TOKEN` (make one with `custody token create --role {role}`)")
                };
                return unauthorized(req.uri().path(), &why);
            }
            Some(role) if role < needed => {
                return AppError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "a {} token cannot do this; it needs the {} role",
                        role.as_str(),
                        needed.as_str()
                    ),
                )
                .into_response()
            }
            _ => {}
        }
    }
    let replay = req.uri().path().starts_with("/replay/");
    if replay {
        if let Some(elsewhere) = isolation::redirect(&state, &req, &caller, via_cookie) {
            return elsewhere;
        }
    }
    req.extensions_mut().insert(caller);
    req.extensions_mut()
        .insert(isolation::ReplayContext::default());
    let mut resp = next.run(req).await;
    if !replay {
        // Only replayed pages may be framed (by each other).
        resp.headers_mut().insert(
            header::X_FRAME_OPTIONS,
            header::HeaderValue::from_static("DENY"),
        );
    }
    resp
}

/// 401: JSON for machines, the login form for pages.
fn unauthorized(path: &str, message: &str) -> Response {
    let mut resp = if ui::is_page(path) {
        ui::login_page(path, Some(message))
    } else {
        AppError::new(StatusCode::UNAUTHORIZED, message.to_string()).into_response()
    };
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"custody\""),
    );
    resp
}

/// An error as the API returns it: a status and one line saying what to do,
/// as `{"error": "..."}`. Details of internal failures go to the log only.
#[derive(Debug)]
pub struct AppError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the index is unavailable; try again shortly",
        )
    }

    fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the detail",
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<ArchiveError> for AppError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::NotFound(m) => AppError::not_found(m),
            ArchiveError::Invalid(m) => AppError::bad_request(m),
            ArchiveError::Index(e) => AppError::from(e),
            ArchiveError::Warc(e) => {
                // A digest that does not match is never served.
                tracing::error!(error = %e, "evidence failed its digest check on read");
                AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the archived record failed its integrity check ({e}); run `custody audit`"
                    ),
                )
            }
            other => AppError::internal(&other),
        }
    }
}

impl From<crate::index::IndexError> for AppError {
    /// By kind: what is not there is 404, what repeats something the index
    /// holds is 409, a database that is down or cannot write now is 503;
    /// anything else is a server fault (500, detail in the log).
    fn from(e: crate::index::IndexError) -> Self {
        use crate::index::ErrorKind;
        match e.kind() {
            ErrorKind::NotFound => AppError::not_found(e.to_string()),
            ErrorKind::Conflict => AppError::new(StatusCode::CONFLICT, e.to_string()),
            ErrorKind::Unavailable => {
                tracing::error!(error = %e, "index unavailable");
                AppError::unavailable()
            }
            ErrorKind::Corrupt => {
                tracing::error!(error = %e, "the index holds a row it cannot read");
                AppError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the index holds a row it cannot read; run `custody verify --all`",
                )
            }
            ErrorKind::Config | ErrorKind::Internal => AppError::internal(&e),
        }
    }
}

impl From<crate::tlog::TlogError> for AppError {
    fn from(e: crate::tlog::TlogError) -> Self {
        use crate::tlog::TlogError as T;
        match e {
            T::NotFound(m) => AppError::not_found(m),
            T::Index(e) => e.into(),
            // The stored log does not give what was signed: say so.
            T::Mismatch(m) => AppError::new(StatusCode::CONFLICT, m),
            other => AppError::internal(&other),
        }
    }
}

impl From<crate::provenance::ProvenanceError> for AppError {
    fn from(e: crate::provenance::ProvenanceError) -> Self {
        use crate::provenance::ProvenanceError as P;
        match e {
            P::NotFound(m) => AppError::not_found(m),
            P::NotAsLogged(_) => AppError::new(StatusCode::CONFLICT, e.to_string()),
            P::Index(e) => e.into(),
            P::Archive(e) => e.into(),
            other => AppError::bad_request(other.to_string()),
        }
    }
}

/// Accesses to evidence, queued for [`write_access`], each with a channel
/// that says when it is recorded.
#[derive(Clone)]
struct AccessLog(mpsc::Sender<(CustodyEvent, oneshot::Sender<bool>)>);

impl AppState {
    /// Records that `caller` accessed evidence of a capture, and returns
    /// once the event is committed: evidence is never served unrecorded.
    async fn accessed(
        &self,
        caller: &Caller,
        capture: &CaptureId,
        event: &str,
        detail: serde_json::Value,
    ) -> Result<(), AppError> {
        let e = CustodyEvent {
            object_kind: "capture".into(),
            object_id: capture.to_string(),
            event: event.into(),
            actor: Some(caller.actor()),
            at: Utc::now(),
            outcome: "ok".into(),
            detail,
        };
        let (done, recorded) = oneshot::channel();
        if self.inner.access.0.send((e, done)).await.is_ok() && recorded.await == Ok(true) {
            return Ok(());
        }
        Err(AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the access could not be recorded in the custody log, so the evidence is not served; try again shortly",
        ))
    }
}

/// Writes access events as a group commit: whatever is queued (up to 1000)
/// goes in one transaction, then every request in it is told. Under load
/// many requests share one commit; alone, a request waits for its own.
async fn write_access(
    index: Arc<dyn Index>,
    mut rx: mpsc::Receiver<(CustodyEvent, oneshot::Sender<bool>)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1000 {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let (events, waiting): (Vec<CustodyEvent>, Vec<oneshot::Sender<bool>>) =
            batch.into_iter().unzip();
        let ok = match index.add_events(&events).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, events = events.len(), "recording access events failed");
                false
            }
        };
        for w in waiting {
            let _ = w.send(ok);
        }
    }
}

/// 200 when the index answers; 503 (with the reason logged) when not.
async fn healthz(State(state): State<AppState>) -> Response {
    match state.index().stats(Utc::now()).await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: index unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "index unavailable\n").into_response()
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let now = Utc::now();
    let stats = match state.index().stats(now).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "metrics: index unavailable");
            return (StatusCode::SERVICE_UNAVAILABLE, "index unavailable\n").into_response();
        }
    };
    let mut out = String::new();
    out.push_str("# HELP custody_captures_total Captures recorded in the index, by status.\n");
    out.push_str("# TYPE custody_captures_total counter\n");
    out.push_str(&format!(
        "custody_captures_total{{status=\"ok\"}} {}\n",
        stats.captures_ok
    ));
    out.push_str(&format!(
        "custody_captures_total{{status=\"failed\"}} {}\n",
        stats.captures_failed
    ));
    out.push_str("# HELP custody_stored_bytes Bytes of WARC files in the store.\n");
    out.push_str("# TYPE custody_stored_bytes gauge\n");
    out.push_str(&format!("custody_stored_bytes {}\n", stats.stored_bytes));
    out.push_str("# HELP custody_runs Scheduled runs, by state.\n");
    out.push_str("# TYPE custody_runs gauge\n");
    for (state, n) in &stats.runs {
        out.push_str(&format!(
            "custody_runs{{state=\"{}\"}} {n}\n",
            state.as_str()
        ));
    }
    out.push_str("# HELP custody_queue_depth Runs that may start now and wait for a worker.\n");
    out.push_str("# TYPE custody_queue_depth gauge\n");
    out.push_str(&format!("custody_queue_depth {}\n", stats.queue_depth));
    out.push_str(
        "# HELP custody_timestamp_backlog RFC 3161 timestamp requests waiting for their TSA.\n",
    );
    out.push_str("# TYPE custody_timestamp_backlog gauge\n");
    out.push_str(&format!(
        "custody_timestamp_backlog {}\n",
        stats.timestamp_backlog
    ));
    out.push_str(
        "# HELP custody_quarantined_objects Stored objects whose last fixity check failed.\n",
    );
    out.push_str("# TYPE custody_quarantined_objects gauge\n");
    out.push_str(&format!(
        "custody_quarantined_objects {}\n",
        stats.quarantined
    ));
    out.push_str("# HELP custody_run_lag_seconds How long the oldest waiting run is past its scheduled instant.\n");
    out.push_str("# TYPE custody_run_lag_seconds gauge\n");
    let lag = stats
        .oldest_waiting
        .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    out.push_str(&format!("custody_run_lag_seconds {lag}\n"));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexError;

    #[test]
    fn index_errors_answer_by_kind_and_only_an_unreachable_database_is_503() {
        let status = |e: IndexError| AppError::from(e).status;
        assert_eq!(
            status(IndexError::NotFound("no claim x".into())),
            StatusCode::NOT_FOUND
        );
        let conflict = AppError::from(IndexError::Conflict(
            "claim x already has a version 2".into(),
        ));
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert!(conflict.message.contains("version 2"));
        assert_eq!(
            status(IndexError::Unavailable(sqlx::Error::PoolTimedOut)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(IndexError::Corrupt("instant \"yesterday\"".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(IndexError::Database(sqlx::Error::RowNotFound)),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
