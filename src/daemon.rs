//! The scheduled capture daemon.
//!
//! One loop, woken every half second, plans due runs (`scheduler::plan`),
//! claims as many as the worker pool and per-host limits allow, and hands
//! each to a worker task that captures through the pipeline while renewing
//! its lease. Schedule files are re-read when they change and on SIGHUP; a
//! file that stops validating is reported and its last good version keeps
//! running. The HTTP surface (`http::app`: API, replay, UI, `/healthz`,
//! `/metrics`) is served on the listen address, with a header timeout and a
//! connection cap (`http::serve`).
//!
//! Several daemons may share one index. Each tick a daemon takes or renews
//! the scheduler-leader lease (`daemon.leader_lease_secs`); only the leader
//! plans, signs checkpoints, scrubs and fetches timestamps, and a leader
//! that dies or freezes is replaced when its lease expires. Every daemon
//! claims and captures runs.
//!
//! Exactly once: a run's attempt holds the run's lease and commits its
//! capture under a fence (`index::Fence`): if the lease was lost (the
//! daemon froze and another took the run over), the commit is refused and
//! the attempt records nothing; an instant already captured is finished
//! with that capture instead of being captured again, and a dead attempt's
//! uploaded capture is adopted (see `recovery`).
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use url::Url;

use crate::archive::{Archive, ArchiveError};
use crate::config::DaemonSettings;
use crate::http;
use crate::index::{Fence, Index, IndexError};
use crate::model::{CaptureId, CaptureStatus, Run, RunFinish};
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
    #[error("{0}")]
    Keys(String),
}

/// The daemon's log key, and that the index's log was signed with it: a
/// daemon with another key would sign checkpoints no one can check
/// against the log's published key (two origins in one log).
async fn log_key_for(archive: &Archive) -> Result<crate::tlog::LogKey, DaemonError> {
    let key = crate::tlog::LogKey::for_config(archive.config())
        .map_err(|e| DaemonError::Keys(e.to_string()))?;
    crate::wacz::sign::PackageKey::for_config(archive.config())
        .map_err(|e| DaemonError::Keys(e.to_string()))?;
    match crate::tlog::same_signer(archive.index().as_ref(), &key).await {
        Ok(()) => Ok(key),
        Err(crate::tlog::TlogError::Index(e)) => Err(e.into()),
        Err(e) => Err(DaemonError::Keys(format!(
            "{e} ({})",
            archive
                .config()
                .keys_dir
                .join(crate::tlog::KEY_FILE)
                .display()
        ))),
    }
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
    /// Turns true when the grace period is over: running captures stop.
    cancel: watch::Receiver<bool>,
}

/// A file's modification time and size: when they change, it is read again.
type Stamp = Option<(SystemTime, u64)>;

/// Schedule files as last read, each with its last good schedules.
#[derive(Default)]
struct Loaded {
    files: BTreeMap<PathBuf, (Stamp, Vec<Schedule>)>,
}

/// What the scheduler leader does, and whether this daemon leads.
struct Leadership {
    leading: Arc<AtomicBool>,
    log_key: crate::tlog::LogKey,
    last_checkpoint: tokio::time::Instant,
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        let one = |kind| signal(kind).map_err(DaemonError::Signals);
        Ok(Signals {
            term: one(SignalKind::terminate())?,
            int: one(SignalKind::interrupt())?,
            hup: one(SignalKind::hangup())?,
        })
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
/// One line for whoever started the daemon: where to look, and when the
/// first capture is due (often hours away).
fn where_to_look(
    loaded: &Loaded,
    listen: std::net::SocketAddr,
    settings: &DaemonSettings,
    config: &crate::config::Config,
) {
    let now = Utc::now();
    let first = loaded
        .files
        .values()
        .flat_map(|(_, schedules)| schedules)
        .filter(|s| s.enabled)
        .filter_map(|s| s.next_after(now).map(|t| (t, s.name.clone())))
        .min();
    let first = match first {
        Some((t, name)) => format!(
            "the first capture is due at {} (schedule {name})",
            crate::model::rfc3339_utc(&t)
        ),
        None => format!(
            "no schedule is enabled in {}",
            settings.schedules_dir.display()
        ),
    };
    let sign_in = if settings.public_read {
        "reading is public"
    } else {
        "sign in with a token from `custody token create --role reader`"
    };
    tracing::info!(
        "custody is running: the UI and API at http://{listen}/ ({sign_in}); captures are kept in {}; {first}; `custody captures` lists them",
        config.data_dir.display()
    );
    if let Some(note) = &config.capture.browser.mode_note {
        tracing::warn!("{note}");
    }
}

/// With the embedded SQLite index, a second daemon on one data directory
/// is almost always a mistake (a second terminal, a second unit): it is
/// kept safe (leadership and fencing), but it only waits. Warns when
/// another daemon holds the directory's lock; the lock is held while the
/// returned file lives.
fn warn_if_sqlite_is_shared(config: &crate::config::Config) -> Option<std::fs::File> {
    if !config.index_url.starts_with("sqlite:") {
        return None;
    }
    let path = config.data_dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ok()?;
    if file.try_lock().is_err() {
        tracing::warn!(
            lock = %path.display(),
            "another custody daemon is running on this data directory; with the SQLite index run one daemon per data directory (several daemons need PostgreSQL: see the README's scale-out section)"
        );
        return None;
    }
    Some(file)
}

pub async fn run(capturer: Arc<Capturer>, settings: DaemonSettings) -> Result<(), DaemonError> {
    let archive = capturer.archive().clone();
    let index = archive.index().clone();
    let log_key = log_key_for(&archive).await?;
    let mut serving = http::ServeSettings::of(&settings);
    let listeners = http::Listeners::bind(settings.listen, settings.replay.as_ref(), &mut serving)
        .await
        .map_err(|e| match e {
            http::ServeError::Listen { addr, source } => DaemonError::Listen { addr, source },
        })?;
    let listen = listeners.local_addr();
    let replay_listen = listeners.replay_addr();
    let mut signals = Signals::install()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let limits = serving.limits;
    let (state, access_writer) = http::AppState::new(capturer.clone(), serving);
    let server = tokio::spawn(listeners.serve(state, limits, stop_rx.clone()));
    match replay_listen {
        Some(replay) => {
            tracing::info!(listen = %listen, replay = %replay, schedules = %settings.schedules_dir.display(), "daemon started")
        }
        None => {
            tracing::info!(listen = %listen, schedules = %settings.schedules_dir.display(), "daemon started")
        }
    }

    let _one_daemon = warn_if_sqlite_is_shared(archive.config());
    // What a crash left behind: finished, adopted or cleared before new work.
    crate::recovery::recover(&archive).await;
    // Captures not yet searchable (made before search existed, or whose
    // text indexing failed): indexed beside the daemon's work.
    let backfill = archive.clone();
    tokio::spawn(async move {
        match crate::search::backfill(&backfill).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(captures = n, "captures made searchable"),
            Err(e) => {
                tracing::warn!(error = %e, "indexing earlier captures for search stopped; the next start goes on")
            }
        }
    });
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
        capturer,
        index: index.clone(),
        settings: settings.clone(),
        schedules: RwLock::new(Vec::new()),
        hosts: Mutex::new(HashMap::new()),
        cancel: cancel_rx,
    });
    let mut loaded = Loaded::default();
    reload(&shared, &mut loaded, true);
    where_to_look(&loaded, listen, &settings, archive.config());
    let mut lead = Leadership {
        leading: Arc::new(AtomicBool::new(false)),
        // The leader signs a checkpoint of the transparency log now and then.
        log_key,
        last_checkpoint: tokio::time::Instant::now(),
    };
    spawn_leader_chores(&archive, &settings, &lead.leading, &stop_rx);

    let permits = Arc::new(Semaphore::new(settings.workers));
    let mut workers: JoinSet<()> = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reload_tick = tokio::time::interval(settings.reload);
    reload_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let signal_name = loop {
        tokio::select! {
            _ = signals.term.recv() => break "SIGTERM",
            _ = signals.int.recv() => break "SIGINT",
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading schedules");
                reload(&shared, &mut loaded, true);
            }
            _ = reload_tick.tick() => reload(&shared, &mut loaded, false),
            _ = tick.tick() => {
                lead_tick(&shared, &mut lead).await;
                dispatch(&shared, &permits, &mut workers).await;
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
    if lead.leading.load(Ordering::Relaxed) {
        if let Err(e) = index.resign(&shared.owner).await {
            tracing::warn!(error = %e, "giving up the scheduler lease failed; it expires by itself");
        }
    }
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

/// Scrubbing and timestamping, beside the loop (a slow TSA or a large store
/// delays nothing); each works only while this daemon leads.
fn spawn_leader_chores(
    archive: &Arc<Archive>,
    settings: &DaemonSettings,
    leading: &Arc<AtomicBool>,
    stop: &watch::Receiver<bool>,
) {
    if !settings.scrub_period.is_zero() {
        let (archive, flag, stop) = (archive.clone(), leading.clone(), stop.clone());
        let (period, rate) = (settings.scrub_period, settings.scrub_bytes_per_sec);
        tokio::spawn(async move {
            crate::integrity::scrub(&archive, period, rate, &flag, stop).await;
        });
    }
    let timestamps = archive.config().timestamps.clone();
    if !timestamps.tsa_urls.is_empty() {
        let (index, flag, mut stop) = (archive.index().clone(), leading.clone(), stop.clone());
        let archive = archive.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = http::serve::stopped(&mut stop) => return,
                }
                if flag.load(Ordering::Relaxed) {
                    crate::tlog::tsa::process_due(
                        index.as_ref(),
                        &timestamps,
                        archive.scratch_dir(),
                    )
                    .await;
                }
            }
        });
    }
}

/// Takes or renews the leader lease; the leader plans due runs and signs a
/// checkpoint when one is due.
async fn lead_tick(shared: &Shared, lead: &mut Leadership) {
    let index = shared.index.as_ref();
    let now = Utc::now();
    let until = now + chrono_duration(shared.settings.leader_lease);
    let leading = match index.try_lead(&shared.owner, now, until).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "checking scheduler leadership failed");
            false
        }
    };
    if lead.leading.swap(leading, Ordering::Relaxed) != leading {
        if leading {
            tracing::info!(owner = %shared.owner, "this daemon is now the scheduler leader");
        } else {
            tracing::info!(owner = %shared.owner, "another daemon is the scheduler leader");
        }
    }
    if !leading {
        return;
    }
    let schedules = shared
        .schedules
        .read()
        .map(|s| s.clone())
        .unwrap_or_default();
    match scheduler::plan(index, &schedules, Utc::now(), MISSED_GRACE).await {
        Ok(p) if p.runs > 0 => tracing::debug!(
            runs = p.runs,
            catch_up = p.catch_up,
            missed_skipped = p.missed_skipped,
            "runs planned"
        ),
        Ok(p) if p.paused_skipped > 0 => tracing::info!(
            runs = p.paused_skipped,
            "waiting runs of a paused schedule recorded as skipped"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "planning runs failed; retrying"),
    }
    let key = &lead.log_key;
    if lead.last_checkpoint.elapsed() < shared.settings.checkpoint {
        return;
    }
    lead.last_checkpoint = tokio::time::Instant::now();
    let archive = &shared.archive;
    let tsa_urls = &archive.config().timestamps.tsa_urls;
    match crate::tlog::make_checkpoint(index, archive.store(), key, tsa_urls).await {
        Ok(c) => tracing::debug!(tree_size = c.tree_size, root = %c.root, "log checkpoint"),
        Err(crate::tlog::TlogError::NotFound(_)) => {}
        Err(e) => tracing::error!(error = %e, "signing a log checkpoint failed; retrying"),
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(1))
}

/// Claims runs while workers and hosts have room.
async fn dispatch(shared: &Arc<Shared>, permits: &Arc<Semaphore>, workers: &mut JoinSet<()>) {
    loop {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            return;
        };
        let busy = busy_hosts(shared);
        let now = Utc::now();
        let lease_until = now + chrono_duration(shared.settings.lease);
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
        workers.spawn(async move {
            let _permit = permit;
            work(&shared, run).await;
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

/// A run's lease, renewed while the attempt works. Its `cancel` turns true
/// at the end of the shutdown grace period or when the lease is lost.
struct LeaseGuard {
    cancel: watch::Receiver<bool>,
    lost: Arc<AtomicBool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    fn hold(shared: &Shared, run: &Run) -> LeaseGuard {
        let (tx, cancel) = watch::channel(false);
        let lost = Arc::new(AtomicBool::new(false));
        let (index, owner, id) = (shared.index.clone(), shared.owner.clone(), run.id);
        let (lease, flag) = (shared.settings.lease, lost.clone());
        let mut shutdown = shared.cancel.clone();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(lease / 3) => {}
                    _ = http::serve::stopped(&mut shutdown) => {
                        let _ = tx.send(true);
                        return;
                    }
                }
                let until = Utc::now() + chrono_duration(lease);
                match index.renew_lease(id, &owner, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            run = id,
                            "lease lost: another worker took the run over; this attempt stops"
                        );
                        flag.store(true, Ordering::Relaxed);
                        let _ = tx.send(true);
                        return;
                    }
                    Err(e) => tracing::error!(run = id, error = %e, "renewing a lease failed"),
                }
            }
        });
        LeaseGuard {
            cancel,
            lost,
            renewer,
        }
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// One attempt at one run.
async fn work(shared: &Shared, run: Run) {
    let started = Instant::now();
    let guard = LeaseGuard::hold(shared, &run);
    let finish = match already_captured(shared, &run).await {
        Some(capture_id) => Some(RunFinish::Done { capture_id }),
        None => attempt(shared, &run, &guard).await,
    };
    drop(guard);
    let Some(finish) = finish else {
        tracing::warn!(schedule = %run.schedule, url = %run.url, attempt = run.attempts, "run left to the daemon that took it over; this attempt recorded nothing");
        return;
    };
    if let Err(e) = shared
        .index
        .finish_run(run.id, &shared.owner, &finish, Utc::now())
        .await
    {
        tracing::error!(run = run.id, error = %e, "recording the end of a run failed; its lease will expire and it will run again");
    }
    log_finish(&run, &finish, started);
}

/// The capture that already answers `run`: one indexed for its instant, or
/// (for a later attempt) one a dead attempt uploaded, adopted now.
async fn already_captured(shared: &Shared, run: &Run) -> Option<CaptureId> {
    match shared
        .index
        .capture_of_instant(&run.schedule, &run.url, run.scheduled_for)
        .await
    {
        Ok(Some(id)) => return Some(id),
        Ok(None) => {}
        Err(e) => tracing::error!(run = run.id, error = %e, "looking up the run's instant failed"),
    }
    if run.attempts <= 1 {
        return None;
    }
    match adopt_lost(shared, run).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(run = run.id, error = %e, "adopting a lost attempt's capture failed; capturing again");
            None
        }
    }
}

/// Captures the run; `None` when the attempt lost its lease and must record
/// nothing.
async fn attempt(shared: &Shared, run: &Run, guard: &LeaseGuard) -> Option<RunFinish> {
    let seed = match Url::parse(&run.url) {
        Ok(seed) => seed,
        Err(e) => {
            return Some(RunFinish::Failed {
                capture_id: None,
                error: format!("invalid URL: {e}"),
            })
        }
    };
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
    let request = CaptureRequest {
        seed,
        settings: Some(settings),
        schedule: Some((run.schedule.clone(), run.scheduled_for)),
        cancel: Some(guard.cancel.clone()),
        fence: Some(Fence {
            run_id: run.id,
            attempt: run.attempts,
            owner: shared.owner.clone(),
        }),
    };
    let result = shared.capturer.capture_with(request, &NoProgress).await;
    match &result {
        Ok(report) => {
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
        Err(ArchiveError::Index(IndexError::Fenced(why))) => {
            tracing::warn!(run = run.id, reason = %why, "capture not committed");
            // Still this attempt's run (captured meanwhile, by recovery
            // say)? Then it finishes with that capture; if not, the daemon
            // that took it over finishes it.
            let until = Utc::now() + chrono_duration(shared.settings.lease);
            let index = &shared.index;
            let holds = !guard.lost()
                && matches!(
                    index.renew_lease(run.id, &shared.owner, until).await,
                    Ok(true)
                );
            let done = index
                .capture_of_instant(&run.schedule, &run.url, run.scheduled_for)
                .await;
            return match done {
                Ok(Some(capture_id)) if holds => Some(RunFinish::Done { capture_id }),
                _ => None,
            };
        }
        Err(ArchiveError::Interrupted) if guard.lost() => return None,
        Err(_) => {}
    }
    Some(decide(result, run, &shared.settings))
}

fn log_finish(run: &Run, finish: &RunFinish, started: Instant) {
    let (status, capture, error) = match finish {
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
async fn adopt_lost(shared: &Shared, run: &Run) -> Result<Option<CaptureId>, ArchiveError> {
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

/// Whether a result is done, worth retrying, or failed for good. A failure
/// on custody's side (its disk, store or index) is never the page's fault:
/// it is retried however many attempts it took, never recorded as failed.
fn decide(
    result: Result<crate::pipeline::CaptureReport, ArchiveError>,
    run: &Run,
    settings: &DaemonSettings,
) -> RunFinish {
    let can_retry = run.attempts < settings.max_attempts;
    let backoff = settings
        .retry_base
        .saturating_mul(1u32 << run.attempts.saturating_sub(1).min(16))
        .min(Duration::from_secs(3600));
    let at = Utc::now() + chrono_duration(backoff);
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
        Err(e @ (ArchiveError::Capture(_) | ArchiveError::Invalid(_))) if !can_retry => {
            RunFinish::Failed {
                capture_id: None,
                error: e.to_string(),
            }
        }
        Err(e @ (ArchiveError::Capture(_) | ArchiveError::Invalid(_))) => RunFinish::Retry {
            capture_id: None,
            error: e.to_string(),
            at,
        },
        Err(e) => RunFinish::Retry {
            capture_id: None,
            error: format!("custody could not capture (not the page's fault; fix it and the run is retried): {e}"),
            at,
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
