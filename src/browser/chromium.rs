//! One headless Chromium process, driven over [`Cdp`], serving captures
//! in fresh browser contexts.
//!
//! The browser never reaches the network itself. Its default proxy is a
//! closed loopback port, so its own traffic (updates, safe browsing,
//! anything a page of the default context asks) goes nowhere; each
//! capture gets a context of its own (`Target.createBrowserContext`, no
//! cookies or storage shared) whose proxy is that capture's recording
//! proxy, loopback included (`<-loopback>`). TLS from the proxy is
//! trusted through `--ignore-certificate-errors-spki-list` with the
//! browser's [`InterceptCa`](super::ca::InterceptCa) key, for this
//! process only; nothing is installed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::process::Command;

use super::cdp::{Cdp, CdpError};

/// How long one protocol command may take.
const COMMAND: Duration = Duration::from_secs(30);

/// A running Chromium, serving captures side by side (a context each);
/// killed when dropped.
pub struct Chromium {
    child: std::sync::Mutex<tokio::process::Child>,
    cdp: std::sync::Arc<Cdp>,
    _profile: tempfile::TempDir,
    /// `Browser.getVersion`'s product (`Chrome/131.0...`).
    pub version: String,
    pub user_agent: String,
    pub window: (u32, u32),
}

/// The Chromium to run: the configured one, or the first of Debian's and
/// Google's names on `PATH`.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, String> {
    super::locate_tool(
        configured,
        "capture.browser_path",
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
        "install Chromium (apt install chromium)",
    )
}

/// Whether this process runs as root (Chromium's sandbox refuses root).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Chromium {
    /// Starts `path` headless with a profile under `scratch`, trusting TLS
    /// whose key hashes to `spki` (base64 SHA-256 of the SPKI).
    pub async fn launch(
        path: &Path,
        spki: &str,
        scratch: &Path,
        window: (u32, u32),
    ) -> Result<Chromium, CdpError> {
        let failed = |m: String| CdpError::Connection(m);
        let profile = tempfile::Builder::new()
            .prefix("chromium-")
            .tempdir_in(scratch)
            .map_err(|e| {
                failed(format!(
                    "no profile directory in {}: {e}",
                    scratch.display()
                ))
            })?;
        // Nothing past the proxy: WebRTC would send UDP straight to any
        // STUN server a page names. Chrome takes this policy from the
        // profile's preferences (the command line's switch is only read by
        // content_shell), and the captures' contexts inherit it.
        let prefs = json!({"webrtc": {
            "ip_handling_policy": "disable_non_proxied_udp",
            "multiple_routes_enabled": false,
            "nonproxied_udp_enabled": false,
        }});
        std::fs::create_dir_all(profile.path().join("Default"))
            .and_then(|_| {
                std::fs::write(
                    profile.path().join("Default").join("Preferences"),
                    prefs.to_string(),
                )
            })
            .map_err(|e| failed(format!("the browser profile could not be written: {e}")))?;
        let mut cmd = Command::new(path);
        cmd.args([
            "--headless=new",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-breakpad",
            "--metrics-recording-only",
            "--mute-audio",
            "--hide-scrollbars",
            "--autoplay-policy=no-user-gesture-required",
            // The default context reaches nothing; captures' contexts get
            // their own proxy.
            "--proxy-server=http://127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            // QUIC is UDP, which no HTTP proxy carries (WebRTC's is
            // turned off in the profile's preferences below).
            "--disable-quic",
            // It resolves no name itself either: every request goes to a
            // proxy at a loopback address, and custody's fetcher resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--ignore-certificate-errors-spki-list={spki}"))
        .arg(format!("--window-size={},{}", window.0, window.1))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        // No page of its own: each capture opens one in its context.
        .arg("--no-startup-window")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        if is_root() {
            cmd.arg("--no-sandbox");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| failed(format!("{} cannot be started: {e}", path.display())))?;
        // Chromium writes the port and the browser target's path here.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = tokio::time::Instant::now();
        let ws_url = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(failed(format!("Chromium exited at start ({status})")));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(failed(
                    "Chromium did not open its DevTools port in 30 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let cdp = std::sync::Arc::new(Cdp::connect(&ws_url).await?);
        let v = cdp
            .call(None, "Browser.getVersion", json!({}), COMMAND)
            .await?;
        Ok(Chromium {
            child: std::sync::Mutex::new(child),
            cdp,
            _profile: profile,
            version: v["product"].as_str().unwrap_or_default().to_string(),
            user_agent: v["userAgent"].as_str().unwrap_or_default().to_string(),
            window,
        })
    }

    /// Whether the browser still answers.
    pub async fn alive(&self) -> bool {
        let exited = self
            .child
            .lock()
            .map(|mut c| matches!(c.try_wait(), Ok(Some(_))))
            .unwrap_or(true);
        if exited || !self.cdp.is_open() {
            return false;
        }
        self.cdp
            .call(
                None,
                "Browser.getVersion",
                json!({}),
                Duration::from_secs(5),
            )
            .await
            .is_ok()
    }

    /// A fresh, isolated context whose every request goes to `proxy`
    /// (which demands `credential`, `user:password`), with one page in it.
    pub async fn tab(&self, proxy: SocketAddr, credential: &str) -> Result<Tab<'_>, CdpError> {
        let ctx = self
            .cdp
            .call(
                None,
                "Target.createBrowserContext",
                json!({
                    "disposeOnDetach": true,
                    "proxyServer": format!("http://{proxy}"),
                    "proxyBypassList": "<-loopback>",
                }),
                COMMAND,
            )
            .await?;
        let context = ctx["browserContextId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let target = self
            .cdp
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
                COMMAND,
            )
            .await?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
                COMMAND,
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let handler = tokio::spawn(answer_page(
            self.cdp.clone(),
            session.clone(),
            self.cdp.session_events(&session),
            credential.to_string(),
        ));
        let tab = Tab {
            browser: self,
            context,
            session,
            handler,
        };
        for domain in ["Page.enable", "Runtime.enable"] {
            tab.call(domain, json!({})).await?;
        }
        // Every request pauses until it is let go, so that the proxy's
        // challenge is answered with the capture's credential.
        tab.call(
            "Fetch.enable",
            json!({"handleAuthRequests": true, "patterns": [{"urlPattern": "*"}]}),
        )
        .await?;
        Ok(tab)
    }
}

/// Answers what a page waits on, as it comes: its requests are let go,
/// the recording proxy's challenge gets the capture's `credential`
/// (`user:password`), a site's own challenge is cancelled (its 401 page
/// is kept), and `alert`, `confirm` and `prompt` are dismissed, so a page
/// cannot hold a command (or the capture) waiting.
async fn answer_page(
    cdp: std::sync::Arc<Cdp>,
    session: String,
    mut events: tokio::sync::mpsc::UnboundedReceiver<super::cdp::Event>,
    credential: String,
) {
    let (user, password) = credential.split_once(':').unwrap_or((&credential, ""));
    while let Some(e) = events.recv().await {
        let request = e.params["requestId"].clone();
        let (method, params) = match e.method.as_str() {
            "Fetch.requestPaused" => ("Fetch.continueRequest", json!({"requestId": request})),
            "Fetch.authRequired" => {
                let answer = if e.params["authChallenge"]["source"] == "Proxy" {
                    json!({"response": "ProvideCredentials", "username": user, "password": password})
                } else {
                    json!({"response": "CancelAuth"})
                };
                (
                    "Fetch.continueWithAuth",
                    json!({"requestId": request, "authChallengeResponse": answer}),
                )
            }
            "Page.javascriptDialogOpening" => {
                ("Page.handleJavaScriptDialog", json!({"accept": false}))
            }
            _ => continue,
        };
        if cdp.send(&session, method, params).await.is_err() {
            return;
        }
    }
}

/// One page in its own context; the context is disposed of with
/// [`Tab::close`] (or when the browser goes).
pub struct Tab<'a> {
    browser: &'a Chromium,
    context: String,
    session: String,
    handler: tokio::task::JoinHandle<()>,
}

impl Drop for Tab<'_> {
    fn drop(&mut self) {
        self.handler.abort();
        self.browser.cdp.forget_session(&self.session);
    }
}

/// How a navigation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// The load event fired.
    Load,
    /// The time ran out first; what arrived is there.
    TimedOut,
}

impl Tab<'_> {
    async fn call(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.browser
            .cdp
            .call(Some(&self.session), method, params, COMMAND)
            .await
    }

    /// Navigates to `url` and waits for its load event, up to `within`.
    pub async fn navigate(&self, url: &str, within: Duration) -> Result<Loaded, CdpError> {
        let mut events = self.browser.cdp.events();
        let deadline = tokio::time::Instant::now() + within;
        // Page.navigate answers once the response has begun, which a page
        // that never answers never does: it is held to the budget too.
        let nav = self
            .browser
            .cdp
            .call(
                Some(&self.session),
                "Page.navigate",
                json!({"url": url}),
                within,
            )
            .await;
        let nav = match nav {
            Err(CdpError::Timeout { .. }) => return Ok(self.stop().await),
            other => other?,
        };
        if let Some(e) = nav["errorText"].as_str() {
            return Err(CdpError::Command {
                method: "Page.navigate".into(),
                message: e.to_string(),
            });
        }
        if self
            .event(&mut events, "Page.loadEventFired", deadline)
            .await?
        {
            Ok(Loaded::Load)
        } else {
            Ok(self.stop().await)
        }
    }

    /// Waits for this page's event `method` until `deadline`: whether it
    /// came.
    async fn event(
        &self,
        events: &mut tokio::sync::broadcast::Receiver<super::cdp::Event>,
        method: &str,
        deadline: tokio::time::Instant,
    ) -> Result<bool, CdpError> {
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Ok(false),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(_)) => return Err(CdpError::Closed),
                Ok(Ok(e)) => {
                    if e.session.as_deref() == Some(self.session.as_str()) && e.method == method {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Lets the page run `budget` of its own time with no fetch pending
    /// (its timers fire at once; its clock pauses while a request is in
    /// flight), up to `within` of real time: whether the budget was spent.
    pub async fn settle(&self, budget: Duration, within: Duration) -> Result<bool, CdpError> {
        let mut events = self.browser.cdp.events();
        self.call(
            "Emulation.setVirtualTimePolicy",
            json!({"policy": "pauseIfNetworkFetchesPending", "budget": budget.as_millis() as u64}),
        )
        .await?;
        let deadline = tokio::time::Instant::now() + within;
        let spent = self
            .event(&mut events, "Emulation.virtualTimeBudgetExpired", deadline)
            .await?;
        self.call(
            "Emulation.setVirtualTimePolicy",
            json!({"policy": "advance"}),
        )
        .await?;
        Ok(spent)
    }

    /// Stops loading: what arrived stays.
    async fn stop(&self) -> Loaded {
        let _ = self.call("Page.stopLoading", json!({})).await;
        Loaded::TimedOut
    }

    /// Evaluates `expression` in the page; its value, as JSON.
    pub async fn evaluate(&self, expression: &str) -> Result<Value, CdpError> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(CdpError::Command {
                method: "Runtime.evaluate".into(),
                message: e["exception"]["description"]
                    .as_str()
                    .or(e["text"].as_str())
                    .unwrap_or("exception")
                    .to_string(),
            });
        }
        Ok(r["result"]["value"].clone())
    }

    /// A PNG of the whole page (beyond the viewport), at most
    /// `max_height` pixels tall.
    pub async fn screenshot(&self, max_height: u32) -> Result<Vec<u8>, CdpError> {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"]
            .as_f64()
            .unwrap_or(self.browser.window.0 as f64);
        let height = size["height"]
            .as_f64()
            .unwrap_or(self.browser.window.1 as f64)
            .min(max_height as f64);
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width.max(1.0), "height": height.max(1.0), "scale": 1},
                }),
            )
            .await?;
        decode(&shot["data"], "Page.captureScreenshot")
    }

    /// The window's view, scaled down `factor` times (a thumbnail).
    pub async fn thumbnail(&self, factor: u32) -> Result<Vec<u8>, CdpError> {
        let (w, h) = self.browser.window;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1.0 / factor.max(1) as f64},
                }),
            )
            .await?;
        decode(&shot["data"], "Page.captureScreenshot")
    }

    /// The page printed to PDF.
    pub async fn pdf(&self) -> Result<Vec<u8>, CdpError> {
        let printed = self
            .call("Page.printToPDF", json!({"printBackground": true}))
            .await?;
        decode(&printed["data"], "Page.printToPDF")
    }

    /// Disposes of the context: its pages, cookies and storage.
    pub async fn close(self) {
        let _ = self
            .browser
            .cdp
            .call(
                None,
                "Target.disposeBrowserContext",
                json!({"browserContextId": self.context}),
                COMMAND,
            )
            .await;
    }
}

fn decode(data: &Value, method: &str) -> Result<Vec<u8>, CdpError> {
    base64::engine::general_purpose::STANDARD
        .decode(data.as_str().unwrap_or_default())
        .map_err(|e| CdpError::Command {
            method: method.into(),
            message: format!("its data is not base64: {e}"),
        })
}
