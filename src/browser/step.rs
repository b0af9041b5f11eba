//! Browser mode's step of a capture: the page loaded in a fresh context of
//! the capturer's Chromium, every request through a recording proxy of
//! the capture, the bounded behaviours a reader's visit would trigger, and
//! what the page looked like (screenshot, thumbnail, PDF, rendered DOM and
//! its text), handed back for the pipeline to write.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use super::ca::InterceptCa;
use super::chromium::{Chromium, Loaded, Tab};
use super::proxy::{ProxyLimits, RecordingProxy, Refused};
use crate::capture::{CaptureSettings, Exchange, Fetcher};
use crate::model::BrowserInfo;

/// How long the network must be quiet, in the page's own time, to count
/// as idle after the load ...
const IDLE: Duration = Duration::from_millis(500);

/// ... and after a scroll (what scrolling loads starts at once).
const SCROLL_IDLE: Duration = Duration::from_millis(200);

/// ... and then in real time (what the page's last timers asked for).
const REAL_QUIET: Duration = Duration::from_millis(50);

/// Longest wait for network idle after load and after each scroll.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Largest rendered DOM or text kept.
const MAX_DOM: usize = 64 << 20;

/// What the browser made of the page (`info.records` is filled in by the
/// pipeline when it writes the rest).
pub struct BrowserOutput {
    pub info: BrowserInfo,
    pub screenshot: Option<Vec<u8>>,
    pub thumbnail: Option<Vec<u8>>,
    pub pdf: Option<Vec<u8>>,
    pub dom: Option<String>,
    pub text: Option<String>,
    /// Every URL the page fetched through the proxy, with its response's
    /// type of payload.
    pub fetched: Vec<(String, Option<String>)>,
    pub refused: Vec<Refused>,
}

impl BrowserOutput {
    /// No browser ran: `status` and why.
    pub fn without_browser(window: (u32, u32), status: &str, problem: String) -> BrowserOutput {
        BrowserOutput {
            info: BrowserInfo {
                status: status.into(),
                problem: Some(problem),
                version: None,
                user_agent: None,
                window: format!("{}x{}", window.0, window.1),
                final_url: None,
                behaviours: Vec::new(),
                records: Vec::new(),
            },
            screenshot: None,
            thumbnail: None,
            pdf: None,
            dom: None,
            text: None,
            fetched: Vec::new(),
            refused: Vec::new(),
        }
    }
}

/// The page once its behaviours ran, handed over before its pictures are
/// taken, so that the crawler reads it meanwhile.
#[derive(Debug, Default)]
pub struct Rendered {
    pub final_url: Option<String>,
    pub dom: Option<String>,
    /// Every URL fetched so far, with its response's type of payload.
    pub fetched: Vec<(String, Option<String>)>,
    /// The documents among them, as the crawler reads them.
    pub documents: Vec<crate::capture::Seen>,
}

/// Loads `page` in `browser` through a new recording proxy whose exchanges
/// go to `tx`, within the settings' budget. What the page became is sent
/// to `rendered` as soon as it is known (whatever happens, before this
/// returns).
pub async fn run(
    browser: &Chromium,
    ca: Arc<InterceptCa>,
    settings: &CaptureSettings,
    fetcher: &Fetcher,
    page: &Url,
    tx: mpsc::Sender<Exchange>,
    rendered: Option<oneshot::Sender<Rendered>>,
) -> BrowserOutput {
    let mut rendered = rendered;
    let b = &settings.browser;
    let mut out = BrowserOutput::without_browser(b.window, "failed", String::new());
    out.info.problem = None;
    out.info.version = Some(browser.version.clone());
    out.info.user_agent = Some(browser.user_agent.clone());
    let ends = tokio::time::Instant::now() + b.timeout;
    let fetcher = Arc::new(fetcher.ending_at(ends, "browser", "capture.browser_timeout_secs"));
    let budget = Arc::new(AtomicU64::new(settings.max_capture_bytes));
    // Only this capture's browser context knows the credential: another
    // local process cannot put exchanges into the capture.
    let credential = super::proxy::new_credential();
    let limits = ProxyLimits {
        max_exchanges: settings.max_resources + settings.max_stream_segments,
        idle: settings.limits.read_timeout,
        credential: Some(credential.clone()),
        ..ProxyLimits::default()
    };
    let proxy = match RecordingProxy::start(fetcher, ca, budget, tx, limits).await {
        Ok(p) => p,
        Err(e) => {
            out.info.problem = Some(format!("the recording proxy could not listen: {e}"));
            return out;
        }
    };
    let began = std::time::Instant::now();
    match browser.tab(proxy.addr(), &credential).await {
        Ok(tab) => {
            tracing::debug!(
                took_ms = began.elapsed().as_millis() as u64,
                "browser tab opened"
            );
            visit(&tab, &proxy, settings, page, ends, &mut out, &mut rendered).await;
            tab.close().await;
        }
        Err(e) => out.info.problem = Some(format!("the browser could not open a page: {e}")),
    }
    hand_over(&mut rendered, &out, &proxy);
    out.fetched = proxy.fetched();
    out.refused = proxy.refused();
    out
}

/// The visit: load, behaviours, then what the page looks like. Each part
/// that fails or runs out of time is noted; what was gathered is kept.
async fn visit(
    tab: &Tab<'_>,
    proxy: &RecordingProxy,
    settings: &CaptureSettings,
    page: &Url,
    ends: tokio::time::Instant,
    out: &mut BrowserOutput,
    rendered: &mut Option<oneshot::Sender<Rendered>>,
) {
    let b = &settings.browser;
    let left = || ends.saturating_duration_since(tokio::time::Instant::now());
    let began = std::time::Instant::now();
    let lap = |what: &str| {
        tracing::debug!(
            at_ms = began.elapsed().as_millis() as u64,
            "browser step: {what}"
        )
    };
    match tab.navigate(page.as_str(), left()).await {
        Ok(Loaded::Load) => out.info.behaviours.push("load".into()),
        Ok(Loaded::TimedOut) => {
            out.info.status = "timed out".into();
            out.info.behaviours.push(format!(
                "load did not finish within {} s (capture.browser_timeout_secs)",
                b.timeout.as_secs()
            ));
        }
        Err(e) => {
            out.info.problem = Some(format!("the page did not load: {e}"));
            return;
        }
    }
    lap("loaded");
    if settle(tab, proxy, IDLE, left().min(IDLE_WAIT)).await {
        out.info.behaviours.push("network idle".into());
    }
    lap("idle");
    let behaviours = async {
        let mut done = Vec::new();
        if let Ok(Value::Number(n)) = tab.evaluate(START_MEDIA).await {
            if n.as_u64().unwrap_or(0) > 0 {
                done.push(format!("started {n} media element(s), muted"));
            }
        }
        if let Ok(Value::Number(n)) = tab.evaluate(OPEN_DETAILS).await {
            if n.as_u64().unwrap_or(0) > 0 {
                done.push(format!("opened {n} details element(s)"));
            }
        }
        let (mut steps, mut reached) = (0usize, 0u64);
        for _ in 0..b.max_scroll_steps {
            let Ok(v) = tab.evaluate(SCROLL).await else {
                break;
            };
            steps += 1;
            reached = v[0].as_u64().unwrap_or(0);
            // The scroll's events and observers run at the next frames:
            // two of them first (at most a moment, whatever the page did
            // to `requestAnimationFrame`), then the quiet; what they added
            // counts in the height.
            let _ = tokio::time::timeout(FRAME_WAIT, tab.evaluate(TWO_FRAMES)).await;
            settle(tab, proxy, SCROLL_IDLE, IDLE_WAIT).await;
            let height = match tab.evaluate(HEIGHT).await {
                Ok(h) => h.as_u64().unwrap_or(0),
                Err(_) => v[1].as_u64().unwrap_or(0),
            };
            if reached >= height || reached >= b.max_page_height as u64 {
                break;
            }
        }
        if steps > 0 {
            done.push(format!("scrolled {steps} step(s), to {reached} px"));
        }
        let _ = tab.evaluate("window.scrollTo(0, 0)").await;
        settle(tab, proxy, SCROLL_IDLE, IDLE_WAIT).await;
        done
    };
    match tokio::time::timeout(left(), behaviours).await {
        Ok(done) => out.info.behaviours.extend(done),
        Err(_) => {
            out.info.status = "timed out".into();
            out.info
                .behaviours
                .push("the behaviours ran out of time".into());
        }
    }
    lap("behaviours");
    // What it looks like now, whatever the time: a few more seconds each.
    let grace = Duration::from_secs(20);
    let text = |v: Value| {
        v.as_str()
            .map(|s| s.chars().take(MAX_DOM).collect::<String>())
    };
    out.info.final_url = within(grace, tab.evaluate("location.href"))
        .await
        .and_then(text);
    out.dom = within(grace, tab.evaluate(DOM)).await.and_then(text);
    out.text = within(
        grace,
        tab.evaluate("document.body ? document.body.innerText : ''"),
    )
    .await
    .and_then(text);
    lap("dom and text");
    hand_over(rendered, out, proxy);
    // Asked together: the browser makes them side by side.
    (out.screenshot, out.thumbnail, out.pdf) = tokio::join!(
        within(grace, tab.screenshot(b.max_page_height)),
        within(grace, tab.thumbnail(4)),
        within(grace, tab.pdf()),
    );
    lap("pictures");
    if out.info.status == "failed" {
        out.info.status = "ok".into();
    }
}

/// Sends the crawler what the page is now, unless it was sent already.
fn hand_over(
    rendered: &mut Option<oneshot::Sender<Rendered>>,
    out: &BrowserOutput,
    proxy: &RecordingProxy,
) {
    if let Some(to) = rendered.take() {
        let _ = to.send(Rendered {
            final_url: out.info.final_url.clone(),
            dom: out.dom.clone(),
            fetched: proxy.fetched(),
            documents: proxy.documents(),
        });
    }
}

async fn within<T, E: std::fmt::Display>(
    wait: Duration,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(wait, f).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::info!(error = %e, "a browser step did not complete");
            None
        }
        Err(_) => None,
    }
}

/// Lets the page run `quiet` of its own time with no request pending
/// ([`Tab::settle`]: its timers fire without the wait), then waits for
/// the network to be quiet for a moment in real time, all within `wait`:
/// whether it was reached.
async fn settle(tab: &Tab<'_>, proxy: &RecordingProxy, quiet: Duration, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let spent = matches!(tab.settle(quiet, wait).await, Ok(true));
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    idle(proxy, REAL_QUIET, left).await && spent
}

/// Waits until no request has been in flight for `quiet`, up to `wait`:
/// whether it was reached.
async fn idle(proxy: &RecordingProxy, quiet: Duration, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let q = proxy.quiet_for();
        if q >= quiet {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        let nap = (quiet - q).clamp(Duration::from_millis(5), Duration::from_millis(50));
        tokio::time::sleep(nap).await;
    }
}

/// Starts every audio and video element muted, so its sources load.
const START_MEDIA: &str = "(() => { let n = 0; for (const m of document.querySelectorAll('video, audio')) { m.muted = true; m.preload = 'auto'; const p = m.play(); if (p) p.catch(() => {}); n++; } return n; })()";

/// Resolves after the page's next two animation frames.
const TWO_FRAMES: &str =
    "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))";

/// Longest wait for those frames.
const FRAME_WAIT: Duration = Duration::from_millis(250);

/// Opens every `<details>`.
const OPEN_DETAILS: &str = "(() => { let n = 0; for (const d of document.querySelectorAll('details:not([open])')) { d.open = true; n++; } return n; })()";

/// One window height down: where the bottom of the window is, and how
/// tall the page is.
const SCROLL: &str = "(() => { window.scrollBy(0, window.innerHeight); const e = document.scrollingElement || document.documentElement; return [Math.round(window.scrollY + window.innerHeight), Math.round(e.scrollHeight)]; })()";

/// How tall the page is now.
const HEIGHT: &str =
    "Math.round((document.scrollingElement || document.documentElement).scrollHeight)";

/// The rendered DOM, with its doctype.
const DOM: &str = "(() => { const d = document.doctype; const t = d ? '<!DOCTYPE ' + d.name + '>\\n' : ''; return t + document.documentElement.outerHTML; })()";
