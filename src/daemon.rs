//! The scheduled capture daemon.
//!
//! One loop, woken every half second, plans due runs (`scheduler::plan`),
//! claims as many as the worker pool and per-host limits allow, and hands
//! each to a worker task that captures through the pipeline while renewing
//! its lease. Schedule files are re-read when they change and on SIGHUP; a
//! file that stops validating is reported and its last good version keeps
//! running. The HTTP surface (`http::app`: API, replay, UI, `/healthz`,
//! `/metrics`) is served on the listen address.
//!
//! Shutdown (SIGTERM or SIGINT): stop planning and claiming, give in-flight
//! captures the grace period to finish, then cancel the rest. A cancelled
//! capture stops before anything is stored and its run is recorded as
//! interrupted (and taken up again at the next start); a capture already
//! storing finishes storing and indexing first. The process then exits 0.
//! After a crash (`kill -9`) nothing is recorded at all; the run's lease
//! expires and the run is claimed again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use url::Url;

use crate::archive::{Archive, ArchiveError};
use crate::config::DaemonSettings;
use crate::http;
use crate::index::{Index, IndexError};
use crate::model::{CaptureStatus, Run, RunFinish};
use crate::pipeline::{CaptureRequest, Capturer, NoProgress};
use crate::provenance;
use crate::scheduler::{self, schedule, Schedule};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}; choose another address with --listen")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Fire times later than this behind the clock count as missed.
const MISSED_GRACE: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_millis(500);

/// Per-host bookkeeping for the concurrency limit and politeness delay.
#[derive(Default)]
struct HostState {
    running: usize,
    last_finished: Option<Instant>,
}

struct Shared {
    archive: Arc<Archive>,
    capturer: Arc<Capturer>,
    index: Arc<dyn Index>,
    settings: DaemonSettings,
    owner: String,
    schedules: RwLock<Vec<Schedule>>,
    hosts: Mutex<HashMap<String, HostState>>,
}

/// A file's modification time and size: when they change, it is read again.
type Stamp = Option<(SystemTime, u64)>;

/// Schedule files as last read, each with its last good schedules.
#[derive(Default)]
struct Loaded {
    files: BTreeMap<PathBuf, (Stamp, Vec<Schedule>)>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(capturer: Arc<Capturer>, settings: DaemonSettings) -> Result<(), DaemonError> {
    let archive = capturer.archive().clone();
    let index = archive.index().clone();
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: settings.listen,
            source,
        })?;
    let listen = listener.local_addr().unwrap_or(settings.listen);
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let stop_watch = stop_rx.clone();
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let (state, access_writer) = http::AppState::new(
        capturer.clone(),
        http::ServeSettings {
            public_read: settings.public_read,
            schedules_dir: Some(settings.schedules_dir.clone()),
            replay_cache: settings.replay_cache,
        },
    );
    let app = http::app(state);
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "http server failed");
        }
    });
    tracing::info!(listen = %listen, schedules = %settings.schedules_dir.display(), "daemon started");

    // What a crash left behind: finished, adopted or cleared before new work.
    crate::recovery::recover(&archive).await;
    let requeued = index.requeue_interrupted(Utc::now()).await?;
    if requeued > 0 {
        tracing::info!(runs = requeued, "interrupted runs queued again");
    }
    let shared = Arc::new(Shared {
        owner: format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        archive: archive.clone(),
        capturer: capturer.clone(),
        index: index.clone(),
        settings: settings.clone(),
        schedules: RwLock::new(Vec::new()),
        hosts: Mutex::new(HashMap::new()),
    });
    let mut loaded = Loaded::default();
    reload(&shared, &mut loaded, true);

    let permits = Arc::new(Semaphore::new(settings.workers));
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reload_tick = tokio::time::interval(settings.reload);
    reload_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = false;
    // The leader signs a checkpoint of the transparency log now and then.
    let log_key = match crate::tlog::LogKey::load_or_create(&archive.config().data_dir) {
        Ok(k) => Some(k),
        Err(e) => {
            tracing::error!(error = %e, "no log signing key: checkpoints are disabled");
            None
        }
    };
    let mut last_checkpoint = tokio::time::Instant::now();
    // The leader scrubs the store continuously (see integrity::scrub).
    let leader_flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if !settings.scrub_period.is_zero() {
        let (archive, flag, stop) = (archive.clone(), leader_flag.clone(), stop_watch.clone());
        let (period, rate) = (settings.scrub_period, settings.scrub_bytes_per_sec);
        tokio::spawn(async move {
            crate::integrity::scrub(&archive, period, rate, &flag, stop).await;
        });
    }
    // Timestamps are fetched beside the loop, so a slow TSA delays nothing.
    if !archive.config().timestamps.tsa_urls.is_empty() {
        let (index, flag, settings) = (
            index.clone(),
            leader_flag.clone(),
            archive.config().timestamps.clone(),
        );
        let mut stop = stop_watch.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    crate::tlog::tsa::process_due(index.as_ref(), &settings).await;
                }
            }
        });
    }
    let signal_name = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading schedules");
                reload(&shared, &mut loaded, true);
            }
            _ = reload_tick.tick() => reload(&shared, &mut loaded, false),
                        _ = tick.tick() => {
                // Only the leader plans; every daemon claims and captures.
                let leading = match index.try_lead().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "checking scheduler leadership failed");
                        false
                    }
                };
                leader_flag.store(leading, std::sync::atomic::Ordering::Relaxed);
                if leading != was_leader {
                    if leading {
                        tracing::info!(owner = %shared.owner, "this daemon is now the scheduler leader");
                    } else {
                        tracing::info!(owner = %shared.owner, "another daemon is the scheduler leader");
                    }
                    was_leader = leading;
                }
                let schedules = if leading { shared.schedules.read().map(|s| s.clone()).unwrap_or_default() } else { Vec::new() };
                match scheduler::plan(index.as_ref(), &schedules, Utc::now(), MISSED_GRACE).await {
                    Ok(p) if p.runs > 0 => tracing::debug!(runs = p.runs, catch_up = p.catch_up, missed_skipped = p.missed_skipped, "runs planned"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "planning runs failed; retrying"),
                }
                dispatch(&shared, &permits, &mut workers, &cancel_rx).await;
                if let (true, Some(key)) = (leading, &log_key) {
                    if last_checkpoint.elapsed() >= settings.checkpoint {
                        last_checkpoint = tokio::time::Instant::now();
                        match crate::tlog::make_checkpoint(index.as_ref(), archive.store(), key, &archive.config().timestamps.tsa_urls).await {
                            Ok(c) => tracing::debug!(tree_size = c.tree_size, root = %c.root, "log checkpoint"),
                            Err(crate::tlog::TlogError::NotFound(_)) => {}
                            Err(e) => tracing::error!(error = %e, "signing a log checkpoint failed; retrying"),
                        }
                    }
                }
            }
            Some(done) = workers.join_next(), if !workers.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "capture worker crashed");
                }
            }
        }
    };

    // Shutdown: no new work; let the running captures finish in time.
    let _ = stop_tx.send(true);
    tracing::info!(
        signal = signal_name,
        in_flight = workers.len(),
        grace_secs = settings.shutdown_grace.as_secs_f64(),
        "stopping"
    );
    let deadline = tokio::time::sleep(settings.shutdown_grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = workers.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                tracing::warn!(in_flight = workers.len(), "grace period over: interrupting captures");
                let _ = cancel_tx.send(true);
                break;
            }
        }
    }
    while workers.join_next().await.is_some() {}
    let _ = server.await;
    // The server and its state are gone: the access writer drains and ends.
    let _ = access_writer.await;
    tracing::info!("daemon stopped");
    Ok(())
}

/// Claims runs while workers and hosts have room.
async fn dispatch(
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    workers: &mut JoinSet<()>,
    cancel: &watch::Receiver<bool>,
) {
    loop {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            return;
        };
        let busy = busy_hosts(shared);
        let now = Utc::now();
        let lease_until = now
            + chrono::Duration::from_std(shared.settings.lease)
                .unwrap_or_else(|_| chrono::Duration::seconds(120));
        let run = match shared
            .index
            .claim_run(&shared.owner, now, lease_until, &busy)
            .await
        {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "claiming a run failed");
                return;
            }
        };
        let host = host_of(&run.url);
        if let Ok(mut hosts) = shared.hosts.lock() {
            hosts.entry(host.clone()).or_default().running += 1;
        }
        let shared = shared.clone();
        let cancel = cancel.clone();
        workers.spawn(async move {
            let _permit = permit;
            work(&shared, run, cancel).await;
            if let Ok(mut hosts) = shared.hosts.lock() {
                let h = hosts.entry(host).or_default();
                h.running = h.running.saturating_sub(1);
                h.last_finished = Some(Instant::now());
            }
        });
    }
}

fn busy_hosts(shared: &Shared) -> Vec<String> {
    let Ok(hosts) = shared.hosts.lock() else {
        return Vec::new();
    };
    hosts
        .iter()
        .filter(|(_, h)| {
            h.running >= shared.settings.per_host
                || h.last_finished
                    .is_some_and(|t| t.elapsed() < shared.settings.politeness)
        })
        .map(|(name, _)| name.clone())
        .collect()
}

fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

/// One attempt at one run.
async fn work(shared: &Shared, run: Run, cancel: watch::Receiver<bool>) {
    let started = Instant::now();
    let schedule = shared
        .schedules
        .read()
        .ok()
        .and_then(|all| all.iter().find(|s| s.name == run.schedule).cloned());
    let settings = schedule
        .as_ref()
        .map(|s| s.capture.clone())
        .unwrap_or_else(|| shared.archive.config().capture.clone());
    let claims = schedule.map(|s| s.claims).unwrap_or_default();
    let lease = shared.settings.lease;
    let renewer = {
        let index = shared.index.clone();
        let owner = shared.owner.clone();
        let id = run.id;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = Utc::now()
                    + chrono::Duration::from_std(lease)
                        .unwrap_or_else(|_| chrono::Duration::seconds(120));
                match index.renew_lease(id, &owner, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(run = id, "lease lost: another worker took the run over");
                        return;
                    }
                    Err(e) => tracing::error!(run = id, error = %e, "renewing a lease failed"),
                }
            }
        })
    };
    // A retried run whose earlier attempt died may have uploaded its capture
    // without indexing it: adopt that instead of capturing the instant twice.
    if run.attempts > 1 {
        match adopt_lost(shared, &run).await {
            Ok(Some(capture_id)) => {
                renewer.abort();
                let finish = RunFinish::Done {
                    capture_id: capture_id.clone(),
                };
                if let Err(e) = shared
                    .index
                    .finish_run(run.id, &shared.owner, &finish, Utc::now())
                    .await
                {
                    tracing::error!(run = run.id, error = %e, "recording the end of a run failed");
                }
                tracing::info!(schedule = %run.schedule, url = %run.url, capture = %capture_id, status = "adopted", "run finished");
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(run = run.id, error = %e, "adopting a lost attempt's capture failed; capturing again")
            }
        }
    }
    let finish = match Url::parse(&run.url) {
        Err(e) => RunFinish::Failed {
            capture_id: None,
            error: format!("invalid URL: {e}"),
        },
        Ok(seed) => {
            let request = CaptureRequest {
                seed,
                settings: Some(settings),
                schedule: Some((run.schedule.clone(), run.scheduled_for)),
                cancel: Some(cancel),
            };
            let result = shared.capturer.capture_with(request, &NoProgress).await;
            if let Ok(report) = &result {
                // Re-check linked passages, and link the schedule's claims.
                if let Err(e) = provenance::after_capture(
                    &shared.archive,
                    &report.capture,
                    Some(&run.schedule),
                    &claims,
                )
                .await
                {
                    tracing::error!(capture = %report.capture.id, error = %e, "checking claims after the capture failed");
                }
            }
            decide(result, &run, &shared.settings)
        }
    };
    renewer.abort();
    if let Err(e) = shared
        .index
        .finish_run(run.id, &shared.owner, &finish, Utc::now())
        .await
    {
        tracing::error!(run = run.id, error = %e, "recording the end of a run failed; its lease will expire and it will run again");
    }
    let (status, capture, error) = match &finish {
        RunFinish::Done { capture_id } => ("done", Some(capture_id.to_string()), None),
        RunFinish::Retry {
            capture_id, error, ..
        } => (
            "retry",
            capture_id.as_ref().map(|c| c.to_string()),
            Some(error.as_str()),
        ),
        RunFinish::Failed { capture_id, error } => (
            "failed",
            capture_id.as_ref().map(|c| c.to_string()),
            Some(error.as_str()),
        ),
        RunFinish::Interrupted { error } => ("interrupted", None, Some(error.as_str())),
    };
    tracing::info!(
        schedule = %run.schedule,
        url = %run.url,
        scheduled_for = %crate::model::rfc3339_utc(&run.scheduled_for),
        attempt = run.attempts,
        capture = capture.as_deref().unwrap_or("-"),
        status,
        error = error.unwrap_or(""),
        duration_ms = started.elapsed().as_millis() as u64,
        "run finished"
    );
}

/// The capture a dead attempt at `run` uploaded, indexed now, if any.
async fn adopt_lost(
    shared: &Shared,
    run: &Run,
) -> Result<Option<crate::model::CaptureId>, ArchiveError> {
    for pending in shared
        .index
        .pending_objects(&run.schedule, &run.url, run.scheduled_for)
        .await?
    {
        if let Some(capture) = crate::recovery::adopt_pending(&shared.archive, &pending).await? {
            return Ok(Some(capture.id));
        }
    }
    Ok(None)
}

/// Whether a result is done, worth retrying, or failed for good.
fn decide(
    result: Result<crate::pipeline::CaptureReport, ArchiveError>,
    run: &Run,
    settings: &DaemonSettings,
) -> RunFinish {
    let can_retry = run.attempts < settings.max_attempts;
    let backoff = settings
        .retry_base
        .saturating_mul(1u32 << run.attempts.saturating_sub(1).min(16))
        .min(Duration::from_secs(86_400));
    let at = Utc::now()
        + chrono::Duration::from_std(backoff).unwrap_or_else(|_| chrono::Duration::days(1));
    match result {
        Ok(report) if report.capture.status == CaptureStatus::Ok => {
            let id = report.capture.id;
            match report.seed_status {
                Some(status) if status >= 500 && can_retry => RunFinish::Retry {
                    capture_id: Some(id),
                    error: format!("the page answered HTTP {status}"),
                    at,
                },
                _ => RunFinish::Done { capture_id: id },
            }
        }
        Ok(report) => {
            let error = report
                .capture
                .error
                .clone()
                .unwrap_or_else(|| "capture failed".into());
            let transient = report.seed_error.as_ref().is_some_and(|e| {
                matches!(e.kind(), "dns" | "connect" | "timeout" | "disconnected")
            });
            let capture_id = Some(report.capture.id);
            if transient && can_retry {
                RunFinish::Retry {
                    capture_id,
                    error,
                    at,
                }
            } else {
                RunFinish::Failed { capture_id, error }
            }
        }
        Err(ArchiveError::Interrupted) => RunFinish::Interrupted {
            error: "the daemon shut down during the capture".into(),
        },
        Err(e) if can_retry => RunFinish::Retry {
            capture_id: None,
            error: e.to_string(),
            at,
        },
        Err(e) => RunFinish::Failed {
            capture_id: None,
            error: e.to_string(),
        },
    }
}

/// Re-reads changed schedule files. A file that no longer validates keeps
/// its last good schedules; its problems are logged once per change.
fn reload(shared: &Shared, loaded: &mut Loaded, force: bool) {
    let dir = &shared.settings.schedules_dir;
    let paths = match schedule::schedule_paths(dir) {
        Ok(p) => p,
        Err(e) => {
            if force {
                tracing::error!(dir = %dir.display(), error = %e, "cannot read the schedules directory");
            }
            return;
        }
    };
    let mut changed = false;
    let before: Vec<PathBuf> = loaded.files.keys().cloned().collect();
    for gone in before.iter().filter(|p| !paths.contains(p)) {
        loaded.files.remove(gone);
        tracing::info!(file = %gone.display(), "schedule file removed");
        changed = true;
    }
    let base = &shared.archive.config().capture;
    for path in &paths {
        let stamp = file_stamp(path);
        let known = loaded.files.get(path).map(|(s, _)| *s);
        if !force && known == Some(stamp) {
            continue;
        }
        changed = true;
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read schedule file");
                continue;
            }
        };
        match schedule::parse_file(path, &text, base) {
            Ok(file) => {
                tracing::info!(file = %path.display(), schedules = file.schedules.len(), "schedule file loaded");
                for s in &file.schedules {
                    let next = s
                        .next_after(Utc::now())
                        .map(|t| crate::model::rfc3339_utc(&t))
                        .unwrap_or_else(|| "never".into());
                    tracing::info!(schedule = %s.name, urls = s.urls.len(), enabled = s.enabled, next_run = %next, "schedule ready");
                }
                loaded.files.insert(path.clone(), (stamp, file.schedules));
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!(problem = %p, "invalid schedule file; its last good version keeps running");
                }
                let last_good = loaded
                    .files
                    .remove(path)
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                loaded.files.insert(path.clone(), (stamp, last_good));
            }
        }
    }
    if !changed {
        return;
    }
    // Names must be unique across files: the first file (in name order) wins.
    let mut all: Vec<Schedule> = Vec::new();
    for (path, (_, schedules)) in &loaded.files {
        for s in schedules {
            if let Some(first) = all.iter().find(|o| o.name == s.name) {
                tracing::error!(file = %path.display(), schedule = %s.name, other = %first.file.display(), "schedule name used in two files; ignoring this one");
                continue;
            }
            all.push(s.clone());
        }
    }
    if let Ok(mut current) = shared.schedules.write() {
        *current = all;
    }
}

fn file_stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "custody".into())
}
