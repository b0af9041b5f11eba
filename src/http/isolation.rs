//! Replay isolation: archived code runs where it can reach nothing of
//! custody's.
//!
//! - Every replay response is sandboxed (`Content-Security-Policy:
//!   sandbox allow-scripts allow-forms`, without `allow-same-origin`): a
//!   replayed document runs in an opaque origin, so it is sent no cookies,
//!   cannot read custody's API or UI, cannot register a service worker,
//!   cannot open popups and cannot navigate the top window. In custody's
//!   frame page (see `replay`) it cannot navigate its own frame out of
//!   custody either. Requests with `Service-Worker: script` are
//!   refused outright, and `Referrer-Policy: no-referrer` and
//!   `X-Content-Type-Options: nosniff` are sent. Replay answers carry
//!   `Access-Control-Allow-Origin: *` (and preflights are answered), so the
//!   sandboxed page may load its modules, fonts and data: what a
//!   credential-less request may read anyway.
//! - A signed-in investigator's navigation to `/replay/...` is redirected
//!   to `/g/{grant}/replay/...` (see [`super::grant`]): the page and what
//!   it embeds are loaded with the grant in the path, never the cookie.
//! - With `daemon.replay_listen`, replay is also served apart, on its own
//!   origin ([`replay_app`]), which honours no cookie and no token, only
//!   grants (or nothing, when reading is public), and serves nothing but
//!   replay; the main origin redirects replay navigations there.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use chrono::Utc;

use super::{grant, AppError, AppState, Caller};

/// How a replayed page is written: the prefix its URLs keep (a grant's
/// `/g/{grant}`, or nothing) and where its links to the UI point (the main
/// origin, when the page is on the replay origin; empty on the main one).
#[derive(Clone, Debug, Default)]
pub struct ReplayContext {
    pub prefix: String,
    pub ui_base: String,
}

/// What every replay response carries (the rest of the CSP is the
/// replay's own, see `replay::REPLAY_CSP`).
const SANDBOX: &str = "sandbox allow-scripts allow-forms";

/// Refuses service worker scripts and sets the isolation headers on every
/// response of the replay routes.
pub async fn isolate(req: Request, next: Next) -> Response {
    if req.headers().contains_key("service-worker") {
        return AppError::new(
            StatusCode::FORBIDDEN,
            "archived pages may not register service workers",
        )
        .into_response();
    }
    let mut resp = if req.method() == axum::http::Method::OPTIONS {
        // A CORS preflight from a replayed page (a script's request with
        // headers of its own): what replay answers is readable from there.
        let mut r = StatusCode::NO_CONTENT.into_response();
        insert_all(r.headers_mut(), PREFLIGHT);
        r
    } else {
        next.run(req).await
    };
    let headers = resp.headers_mut();
    insert_all(headers, REPLAY_HEADERS);
    let csp = format!("{}; {SANDBOX}", super::replay::REPLAY_CSP);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// Headers on every replay answer. A sandboxed page has an opaque origin,
/// so everything it loads in CORS mode (module scripts, fonts, a script's
/// fetch) is cross-origin to it: replay is readable without credentials
/// from anywhere (a credentialed request is not answered under `*`); the
/// API and the UI send no such header.
const REPLAY_HEADERS: &[(header::HeaderName, &str)] = &[
    (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
];

/// The answer to a CORS preflight under replay.
const PREFLIGHT: &[(header::HeaderName, &str)] = &[
    (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD"),
    (header::ACCESS_CONTROL_ALLOW_HEADERS, "*"),
    (header::ACCESS_CONTROL_MAX_AGE, "600"),
];

fn insert_all(headers: &mut HeaderMap, values: &[(header::HeaderName, &'static str)]) {
    for (name, value) in values {
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
}

/// Whether a request is a browser navigation (or from something that is
/// not a browser, which sends no `Sec-Fetch-Mode`).
pub fn navigation(headers: &HeaderMap) -> bool {
    matches!(
        headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()),
        None | Some("navigate")
    )
}

fn path_and_query(uri: &Uri) -> String {
    uri.path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string())
}

/// On the main origin, where a replay navigation should go instead: a
/// signed-in (cookie) navigation to its grant URL, a public one to the
/// replay origin when there is one. `None`: serve it here (a script with
/// `Authorization: Bearer`, or what a page embeds).
pub fn redirect(
    state: &AppState,
    req: &Request,
    caller: &Caller,
    via_cookie: bool,
) -> Option<Response> {
    if !navigation(req.headers()) {
        return None;
    }
    let target = path_and_query(req.uri());
    let replay_url = state.inner.settings.replay_url.as_deref();
    if via_cookie {
        let token = caller.token.as_ref()?;
        let g = grant::issue(token, Utc::now())?;
        let base = replay_url.unwrap_or("");
        return Some(Redirect::to(&format!("{base}/g/{g}{target}")).into_response());
    }
    match (&caller.token, replay_url) {
        (None, Some(base)) => Some(Redirect::to(&format!("{base}{target}")).into_response()),
        _ => None,
    }
}

/// Marks a request opened by a replay grant (the token checks are done).
#[derive(Clone, Copy, Debug)]
pub struct Granted;

/// Wraps a router so that `/g/{grant}/{rest}` is served as `/{rest}`
/// before routing: replay, as the grant's token, with the grant kept on
/// every URL the page is given. Nothing but replay. `ui_base` is where the
/// page's links to the UI point.
pub fn with_grants(router: Router, state: AppState, ui_base: String) -> Router {
    Router::new()
        .fallback_service(router)
        .layer(axum::middleware::from_fn_with_state(
            (state, ui_base),
            grants,
        ))
}

async fn grants(
    State((state, ui_base)): State<(AppState, String)>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/g/") else {
        return next.run(req).await;
    };
    let Some((g, tail)) = rest.split_once('/') else {
        return AppError::not_found("a replay link is /g/{grant}/replay/{timestamp}/{url}")
            .into_response();
    };
    if !tail.starts_with("replay/") {
        return AppError::not_found("a replay grant opens replay only").into_response();
    }
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let token = match grant::check(state.index().as_ref(), g, Utc::now()).await {
        Ok(t) => t,
        Err(grant::GrantError::Expired) if navigation(req.headers()) => {
            // Opened again from the main origin, it gets a fresh grant.
            return Redirect::to(&format!("{ui_base}/{tail}{query}")).into_response();
        }
        Err(e) => return AppError::new(StatusCode::FORBIDDEN, e.to_string()).into_response(),
    };
    let Ok(uri) = format!("/{tail}{query}").parse::<Uri>() else {
        return AppError::bad_request("not a replay path").into_response();
    };
    *req.uri_mut() = uri;
    req.extensions_mut().insert(Granted);
    req.extensions_mut().insert(Caller { token: Some(token) });
    req.extensions_mut().insert(ReplayContext {
        prefix: format!("/g/{g}"),
        ui_base,
    });
    next.run(req).await
}

/// The replay origin: replay and `/healthz`, nothing else; no cookie and
/// no token is honoured there, only grants (and nothing at all when
/// reading is public).
pub fn replay_app(state: AppState) -> Router {
    let ui_base = state.inner.settings.public_url.clone().unwrap_or_default();
    let router = Router::new()
        .route("/healthz", get(super::healthz))
        .merge(super::replay::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            replay_origin,
        ))
        .with_state(state.clone());
    with_grants(router, state, ui_base)
}

async fn replay_origin(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let ui_base = state.inner.settings.public_url.clone().unwrap_or_default();
    let path = req.uri().path().to_string();
    if req.extensions().get::<Granted>().is_some() || path == "/healthz" {
        return next.run(req).await;
    }
    if !path.starts_with("/replay/") {
        return AppError::not_found(format!(
            "this is custody's replay origin, which serves archived pages only; custody is at {ui_base}/"
        ))
        .into_response();
    }
    if !state.inner.settings.public_read {
        let target = path_and_query(req.uri());
        if navigation(req.headers()) {
            // Opened on the main origin (signed in), it comes back granted.
            return Redirect::to(&format!("{ui_base}{target}")).into_response();
        }
        return AppError::new(
            StatusCode::UNAUTHORIZED,
            format!("open archived pages from custody at {ui_base}/ (signed in)"),
        )
        .into_response();
    }
    req.extensions_mut().insert(Caller { token: None });
    req.extensions_mut().insert(ReplayContext {
        prefix: String::new(),
        ui_base,
    });
    next.run(req).await
}
