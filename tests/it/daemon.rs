//! The scheduled daemon, run as a process against the fixture site: runs per
//! instant, shutdown, downtime and catch-up, bad schedule files, crashes.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use custody::index::Index;
use custody::model::{CaptureStatus, RunState};

use crate::cli::{stderr_text, Workdir};
use crate::site;

const DAEMON_CONFIG: &str = "[daemon]\npoliteness_secs = 0\nlease_secs = 3\nshutdown_grace_secs = 2\nretry_base_secs = 1\nreload_secs = 0.5\nleader_lease_secs = 2\n";

/// A scratch directory with a schedules folder and daemon settings for tests.
struct Setup {
    work: Workdir,
}

impl Setup {
    fn new() -> Setup {
        let work = Workdir::new("");
        let config =
            std::fs::read_to_string(work.path().join("custody.toml")).unwrap() + DAEMON_CONFIG;
        std::fs::write(work.path().join("custody.toml"), config).unwrap();
        std::fs::create_dir_all(work.path().join("schedules")).unwrap();
        Setup { work }
    }

    fn schedules(&self) -> PathBuf {
        self.work.path().join("schedules")
    }

    /// `once.toml`: a schedule named `once` that fires at `cron` for `url`.
    fn schedule_once(&self, cron: &str, url: &str) {
        self.write_schedule(
            "once.toml",
            &format!("[[schedule]]\nname = \"once\"\ncron = \"{cron}\"\nurls = [\"{url}\"]\n"),
        );
    }

    fn write_schedule(&self, file: &str, text: &str) {
        // Write then rename, so the daemon never reads half a file.
        let tmp = self.work.path().join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.schedules().join(file)).unwrap();
    }

    /// Everything every daemon of this setup logged, for failure messages.
    fn daemon_logs(&self) -> String {
        let mut logs: Vec<_> = std::fs::read_dir(self.work.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("daemon-")
            })
            .collect();
        logs.sort();
        logs.iter()
            .map(|p| {
                format!(
                    "== {}\n{}",
                    p.display(),
                    std::fs::read_to_string(p).unwrap_or_default()
                )
            })
            .collect()
    }

    fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    fn start_with(&self, env: &[(&str, &str)]) -> Daemon {
        let mut daemon = self.spawn_with(env);
        daemon.wait_healthy();
        daemon
    }

    /// Starts a daemon without waiting for it to listen.
    fn spawn_with(&self, env: &[(&str, &str)]) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = self.work.path().join(format!("daemon-{port}.log"));
        let child = self
            .work
            .command(&[
                "daemon",
                "--schedules",
                "schedules",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--allow-private",
            ])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log,
            port,
        }
    }

    async fn index(&self) -> Arc<dyn Index> {
        let url = format!(
            "sqlite://{}",
            self.work.path().join("custody-data/index.db").display()
        );
        custody::index::open(&url).await.unwrap()
    }
}

struct Daemon {
    child: Option<Child>,
    log: PathBuf,
    port: u16,
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn wait_healthy(&mut self) {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited ({status}): {}", self.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "daemon did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the daemon's log holds `needle`.
    async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.log_text().contains(needle) {
            assert!(
                started.elapsed() < timeout,
                "no {needle:?} in the log within {timeout:?}: {}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits for the exit; returns the status and how long it took.
    fn stop_with(&mut self, signal: &str) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        crate::cli::signal(self.pid(), signal);
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "daemon did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_for_run(
    index: &dyn Index,
    schedule: &str,
    state: RunState,
    timeout: Duration,
) -> custody::model::Run {
    let started = Instant::now();
    loop {
        if let Some(run) = index
            .runs(Some(schedule))
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.state == state)
        {
            return run;
        }
        assert!(
            started.elapsed() < timeout,
            "no {state:?} run of {schedule} in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a run of `schedule` in `state`, then stops `daemon` with
/// SIGTERM, which must exit 0.
async fn stop_after_run(
    daemon: &mut Daemon,
    index: &dyn Index,
    schedule: &str,
    state: RunState,
    timeout: Duration,
) -> custody::model::Run {
    let run = wait_for_run(index, schedule, state, timeout).await;
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success(), "{}", daemon.log_text());
    run
}

/// The captures of a scheduled instant.
async fn captures_at(index: &dyn Index, at: DateTime<Utc>) -> Vec<custody::model::Capture> {
    index
        .captures(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.scheduled_for == Some(at))
        .collect()
}

/// Every stored object is named by the index.
async fn store_matches_index(setup: &Setup, index: &dyn Index) {
    let known: std::collections::HashSet<String> = index
        .captures(None)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.warc.map(|w| w.key))
        .collect();
    for path in setup.work.objects() {
        let key = path
            .strip_prefix(setup.work.path().join("custody-data/objects"))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if key.starts_with("log/") {
            continue; // the transparency log's own objects
        }
        assert!(
            known.contains(&key),
            "object {key} is in the store but not in the index (which names {known:?}); the daemons logged:\n{}",
            setup.daemon_logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_five_second_schedule_captures_each_url_once_per_instant() {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    let short = format!("http://{addr}/short-link");
    setup.write_schedule(
        "fast.toml",
        &format!("[[schedule]]\nname = \"every-five\"\ncron = \"*/5 * * * * *\"\nurls = [\"{article}\", \"{short}\"]\n"),
    );
    let mut daemon = setup.start();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let metrics = daemon.metrics();
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success(), "{}", daemon.log_text());
    assert!(
        metrics.contains("custody_captures_total{status=\"ok\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("custody_run_lag_seconds"), "{metrics}");

    let index = setup.index().await;
    let captures = index.captures(None).await.unwrap();
    for url in [&article, &short] {
        let mine: Vec<_> = captures.iter().filter(|c| &c.seed_url == url).collect();
        assert!(
            (5..=7).contains(&mine.len()),
            "{url}: {} captures in 30 s",
            mine.len()
        );
        let mut instants: Vec<DateTime<Utc>> = mine
            .iter()
            .map(|c| c.scheduled_for.expect("scheduled_for"))
            .collect();
        let n = instants.len();
        instants.sort();
        instants.dedup();
        assert_eq!(instants.len(), n, "{url}: an instant was captured twice");
        assert!(
            instants.iter().all(|t| t.timestamp() % 5 == 0),
            "{instants:?}"
        );
        assert!(mine
            .iter()
            .all(|c| c.status == CaptureStatus::Ok && c.schedule.as_deref() == Some("every-five")));
    }
    let log = daemon.log_text();
    assert!(
        log.lines()
            .filter(|l| l.contains("run finished") && l.contains("schedule=every-five"))
            .count()
            >= 10,
        "{log}"
    );
    store_matches_index(&setup, index.as_ref()).await;

    // `captures --json` carries the schedule and instant.
    let listed = String::from_utf8(setup.work.ok(&["captures", "--json"])).unwrap();
    let first: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(first["schedule"], "every-five");
    assert!(first["scheduled_for"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_slow_capture_exits_within_the_grace_period_and_leaves_nothing_half_done()
{
    let slow = site::serve_drip().await;
    let setup = Setup::new();
    setup.write_schedule(
        "slow.toml",
        &format!("[[schedule]]\nname = \"slow\"\ncron = \"*/2 * * * * *\"\nurls = [\"http://{slow}/slow-article\"]\n"),
    );
    let mut daemon = setup.start();
    let index = setup.index().await;
    wait_for_run(
        index.as_ref(),
        "slow",
        RunState::Running,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, took) = daemon.stop_with("TERM");
    assert!(status.success(), "exit {status}: {}", daemon.log_text());
    assert!(
        took < Duration::from_secs(6),
        "took {took:?} with a 2 s grace period"
    );
    let runs = index.runs(Some("slow")).await.unwrap();
    assert!(
        runs.iter().any(|r| r.state == RunState::Interrupted),
        "{runs:?}"
    );
    assert!(
        runs.iter().all(|r| r.state != RunState::Running),
        "{runs:?}"
    );
    assert!(
        index.captures(None).await.unwrap().is_empty(),
        "an interrupted capture is not indexed"
    );
    assert!(
        setup.work.objects().is_empty(),
        "nothing was stored: {:?}",
        setup.work.objects()
    );
    let spool: Vec<_> = std::fs::read_dir(setup.work.path().join("custody-data/spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "spool is clean: {spool:?}");
    assert!(
        daemon.log_text().contains("status=\"interrupted\""),
        "{}",
        daemon.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_downtime_run_once_makes_one_catch_up_run_and_skip_makes_none() {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let schedule = |name: &str, policy: &str, path: &str| {
        format!("[[schedule]]\nname = \"{name}\"\ncron = \"*/5 * * * * *\"\non_missed = \"{policy}\"\nurls = [\"http://{addr}{path}\"]\n")
    };
    setup.write_schedule(
        "downtime.toml",
        &(schedule("catch-up-once", "run_once", site::ARTICLE_PATH)
            + &schedule("catch-up-skip", "skip", "/short-link")),
    );
    let mut daemon = setup.start();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success());
    let stopped = Utc::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let restarted = Utc::now();
    let mut daemon = setup.start();
    // Long enough for at least one five-second instant after the restart.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success(), "{}", daemon.log_text());

    let index = setup.index().await;
    // Instants in the downtime that were not caught up: with no run at all.
    // (The restarted daemon treats fire times more than 3 s old as missed.)
    let ordinary_in_downtime = |runs: &[custody::model::Run]| {
        let until = restarted - chrono::Duration::seconds(3);
        runs.iter()
            .filter(|r| !r.catch_up && r.scheduled_for > stopped && r.scheduled_for < until)
            .count()
    };
    let once = index.runs(Some("catch-up-once")).await.unwrap();
    let catch_up: Vec<_> = once.iter().filter(|r| r.catch_up).collect();
    assert_eq!(
        catch_up.len(),
        1,
        "exactly one catch-up run (stopped {stopped}, restarted {restarted}): {once:#?}"
    );
    assert!(
        catch_up[0].scheduled_for > stopped && catch_up[0].scheduled_for < restarted,
        "{once:#?}"
    );
    assert_eq!(catch_up[0].state, RunState::Done);
    assert_eq!(ordinary_in_downtime(&once), 0, "{once:#?}");

    let skip = index.runs(Some("catch-up-skip")).await.unwrap();
    assert!(skip.iter().all(|r| !r.catch_up), "{skip:#?}");
    assert_eq!(
        ordinary_in_downtime(&skip),
        0,
        "no run for the missed instants: {skip:#?}"
    );
    assert!(
        skip.iter().any(|r| r.scheduled_for > restarted),
        "the schedule resumed: {skip:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_cron_is_named_by_file_and_line_and_the_daemon_keeps_the_other_schedules() {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let good = format!(
        "[[schedule]]\nname = \"good\"\ncron = \"*/2 * * * * *\"\nurls = [\"http://{addr}{}\"]\n",
        site::ARTICLE_PATH
    );
    setup.write_schedule("good.toml", &good);
    setup.write_schedule("bad.toml", "# a typo in the minutes\n[[schedule]]\nname = \"bad\"\ncron = \"*/5 * * *\"\nurls = [\"https://example.org/\"]\n");

    let out = setup.work.run(&["schedule", "validate", "schedules"]);
    assert!(!out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with("schedules/bad.toml:4: invalid cron expression \"*/5 * * *\""),
        "{printed}"
    );
    assert_eq!(printed.lines().count(), 1, "{printed}");

    let mut daemon = setup.start();
    let index = setup.index().await;
    wait_for_run(
        index.as_ref(),
        "good",
        RunState::Done,
        Duration::from_secs(10),
    )
    .await;
    // Break the good file while the daemon runs: its last good version goes on.
    setup.write_schedule(
        "good.toml",
        &good.replace("*/2 * * * * *", "every two seconds"),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = index.runs(Some("good")).await.unwrap().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = index.runs(Some("good")).await.unwrap().len();
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success());
    assert!(
        after > before,
        "runs went on with the last good version ({before} then {after})"
    );
    let log = daemon.log_text();
    assert!(
        log.contains("schedules/bad.toml:4: invalid cron expression"),
        "{log}"
    );
    assert!(
        log.contains("schedules/good.toml:3: invalid cron expression"),
        "{log}"
    );
    assert!(index.runs(Some("bad")).await.unwrap().is_empty());
}

/// A cron expression that fires once, `secs` from now (UTC), today.
fn once_in(secs: i64) -> (String, DateTime<Utc>) {
    let at = Utc::now() + chrono::Duration::seconds(secs);
    let at = at - chrono::Duration::nanoseconds(at.timestamp_subsec_nanos() as i64);
    use chrono::Timelike;
    (
        format!("{} {} {} * * *", at.second(), at.minute(), at.hour()),
        at,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_mid_capture_is_taken_up_again_when_its_lease_expires() {
    let page = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{}",
        site::article_html().len(),
        site::article_html()
    );
    let addr = site::serve_hang_once(page.into_bytes()).await;
    let setup = Setup::new();
    let (cron, at) = once_in(3);
    setup.schedule_once(&cron, &format!("http://{addr}/report"));
    let mut daemon = setup.start();
    let index = setup.index().await;
    let running = wait_for_run(
        index.as_ref(),
        "once",
        RunState::Running,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(running.scheduled_for, at);
    let (_, _) = daemon.stop_with("KILL");

    let mut daemon = setup.start();
    let index = index.as_ref();
    let done = stop_after_run(
        &mut daemon,
        index,
        "once",
        RunState::Done,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done.id, running.id, "the same run, not a new one");
    assert_eq!(done.attempts, 2);
    let runs = index.runs(Some("once")).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let captures = captures_at(index, at).await;
    assert_eq!(captures.len(), 1, "captured once: {captures:?}");
    assert_eq!(captures[0].status, CaptureStatus::Ok);
    store_matches_index(&setup, index).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_with_backoff_and_every_attempt_is_a_failed_capture() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let setup = Setup::new();
    let config = std::fs::read_to_string(setup.work.path().join("custody.toml"))
        .unwrap()
        .replace("[daemon]\n", "[daemon]\nmax_attempts = 3\n");
    std::fs::write(setup.work.path().join("custody.toml"), config).unwrap();
    let (cron, at) = once_in(2);
    setup.write_schedule(
        "down.toml",
        &format!("[[schedule]]\nname = \"unreachable\"\ncron = \"{cron}\"\nurls = [\"http://{refused}/statement\"]\n"),
    );
    let mut daemon = setup.start();
    let index = setup.index().await;
    // Attempts at about +0 s, +1 s and +2 s more (retry_base_secs = 1, doubling).
    let failed = wait_for_run(
        index.as_ref(),
        "unreachable",
        RunState::Failed,
        Duration::from_secs(20),
    )
    .await;
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success());
    assert_eq!(failed.scheduled_for, at);
    assert_eq!(failed.attempts, 3);
    assert!(
        failed.error.as_deref().unwrap().contains("connection to"),
        "{failed:?}"
    );
    let attempts: Vec<_> = index.captures(None).await.unwrap();
    assert_eq!(
        attempts.len(),
        3,
        "each attempt is a recorded (failed) capture"
    );
    assert!(attempts
        .iter()
        .all(|c| c.status == CaptureStatus::Failed && c.scheduled_for == Some(at)));
    let gaps: Vec<i64> = attempts
        .windows(2)
        .map(|w| (w[1].started_at - w[0].started_at).num_milliseconds())
        .collect();
    assert!(
        gaps[0] >= 900 && gaps[1] >= 1900,
        "exponential backoff between attempts: {gaps:?} ms"
    );
    let log = daemon.log_text();
    assert_eq!(log.matches("status=\"retry\"").count(), 2, "{log}");
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_postgres_share_the_work_and_the_leader_fails_over() {
    let schema = crate::index_conformance::PgSchema::new().await;
    let index_url = schema.url();
    let addr = site::serve_http().await;
    let setup = Setup::new();
    setup.write_schedule(
        "shared.toml",
        &format!(
            "[[schedule]]\nname = \"shared\"\ncron = \"*/2 * * * * *\"\nurls = [\"http://{addr}{}\", \"http://{addr}/short-link\"]\n",
            site::ARTICLE_PATH
        ),
    );
    let env = [("CUSTODY_INDEX_URL", index_url.as_str())];
    let mut first = setup.start_with(&env);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut second = setup.start_with(&env);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        first.log_text().contains("now the scheduler leader"),
        "{}",
        first.log_text()
    );
    assert!(
        !second.log_text().contains("now the scheduler leader"),
        "one leader at a time: {}",
        second.log_text()
    );

    // The leader dies; the other daemon takes over planning.
    first.stop_with("KILL");
    let killed = Utc::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        second.log_text().contains("now the scheduler leader"),
        "{}",
        second.log_text()
    );
    let (status, _) = second.stop_with("TERM");
    assert!(status.success());

    let index = custody::index::open(&index_url).await.unwrap();
    let runs = index.runs(Some("shared")).await.unwrap();
    let after = runs
        .iter()
        .filter(|r| r.scheduled_for > killed + chrono::Duration::seconds(3))
        .count();
    assert!(
        after >= 4,
        "runs went on being planned after the failover: {runs:#?}"
    );
    let done = runs.iter().filter(|r| r.state == RunState::Done).count();
    assert!(done >= 8, "{runs:#?}");
    // Each instant of each URL was captured at most once.
    let captures = index.captures(None).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for c in captures.iter().filter(|c| c.status == CaptureStatus::Ok) {
        assert!(
            seen.insert((c.seed_url.clone(), c.scheduled_for)),
            "captured twice: {} at {:?}",
            c.seed_url,
            c.scheduled_for
        );
    }
    schema.drop().await;
}

/// Issue #8's acceptance: three daemons on one PostgreSQL and one Garage
/// bucket, 300 runs in one minute, one daemon killed with SIGKILL mid-run.
#[cfg(all(feature = "postgres", feature = "s3"))]
#[tokio::test(flavor = "multi_thread")]
async fn three_daemons_capture_300_runs_exactly_once_despite_a_sigkill() {
    use chrono::Timelike;
    let schema = crate::index_conformance::PgSchema::new().await;
    let index_url = schema.url();
    let bucket = std::env::var("CUSTODY_TEST_S3_BUCKET")
        .expect("CUSTODY_TEST_S3_BUCKET: run with scripts/test.sh");
    let store_url = format!("s3://{bucket}/scale-{}", uuid::Uuid::now_v7().simple());
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let config = std::fs::read_to_string(setup.work.path().join("custody.toml"))
        .unwrap()
        .replace("[daemon]\n", "[daemon]\nper_host = 16\nworkers = 4\n");
    std::fs::write(setup.work.path().join("custody.toml"), config).unwrap();
    // Every second of one whole minute, five URLs: 300 runs.
    let minute = (Utc::now() + chrono::Duration::seconds(65))
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let urls: Vec<String> = (1..=5)
        .map(|n| format!("\"http://{addr}/media/generated.mp4?bytes=20000&clip={n}\""))
        .collect();
    setup.write_schedule(
        "scale.toml",
        &format!(
            // Queued, not skipped, behind a run the killed daemon held:
            // every instant must end captured.
            "[[schedule]]\nname = \"scale\"\ncron = \"* {} {} * * *\"\noverlap = \"queue\"\nurls = [{}]\n",
            minute.minute(),
            minute.hour(),
            urls.join(", ")
        ),
    );
    let env = [
        ("CUSTODY_INDEX_URL", index_url.as_str()),
        ("CUSTODY_STORE_URL", store_url.as_str()),
    ];
    let mut daemons: Vec<Daemon> = (0..3).map(|_| setup.start_with(&env)).collect();
    let wait_until = |t: DateTime<Utc>| async move {
        let left = (t - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(left).await;
    };
    wait_until(minute + chrono::Duration::seconds(30)).await;
    daemons[1].stop_with("KILL");

    let index = custody::index::open(&index_url).await.unwrap();
    let deadline = minute + chrono::Duration::seconds(150);
    loop {
        let runs = index.runs(Some("scale")).await.unwrap();
        if runs.len() == 300 && runs.iter().all(|r| r.state == RunState::Done) {
            break;
        }
        assert!(
            Utc::now() < deadline,
            "{} of 300 runs planned; not finished: {:?}",
            runs.len(),
            runs.iter()
                .filter(|r| r.state != RunState::Done)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for i in [0, 2] {
        let (status, _) = daemons[i].stop_with("TERM");
        assert!(status.success(), "{}", daemons[i].log_text());
    }

    // Every scheduled instant captured exactly once.
    let captures: Vec<_> = index
        .captures(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.status == CaptureStatus::Ok)
        .collect();
    let mut per_instant = std::collections::HashMap::new();
    for c in &captures {
        *per_instant
            .entry((c.seed_url.clone(), c.scheduled_for))
            .or_insert(0) += 1;
    }
    assert_eq!(per_instant.len(), 300);
    assert!(
        per_instant.values().all(|n| *n == 1),
        "an instant was captured twice"
    );
    // Every WARC is in the bucket with the sha256 the index says, and the
    // bucket holds nothing the index does not know.
    let store = custody::store::Store::open(&store_url).unwrap();
    let mut in_bucket = store.list("warc/").await.unwrap();
    let mut known: Vec<String> = captures
        .iter()
        .map(|c| c.warc.as_ref().unwrap().key.clone())
        .collect();
    in_bucket.sort();
    known.sort();
    assert_eq!(in_bucket, known);
    for c in &captures {
        let w = c.warc.as_ref().unwrap();
        store.verify(&w.key, w.sha256, w.bytes).await.unwrap();
    }
    schema.drop().await;
}

/// Benchmark (issue #8): captures per minute with one, two and three daemons
/// on one PostgreSQL index against the same local site, printed side by side.
/// `cargo test --release --features postgres --test it -- --ignored bench_daemons --nocapture`
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run on demand"]
async fn bench_daemons() {
    let addr = site::serve_http().await;
    let window = Duration::from_secs(20);
    let mut results = Vec::new();
    for daemons in 1..=3 {
        let schema = crate::index_conformance::PgSchema::new().await;
        let index_url = schema.url();
        let setup = Setup::new();
        let config = std::fs::read_to_string(setup.work.path().join("custody.toml"))
            .unwrap()
            .replace("[daemon]\n", "[daemon]\nper_host = 64\nworkers = 4\n");
        std::fs::write(setup.work.path().join("custody.toml"), config).unwrap();
        // Ten article pages every second: more than the daemons can take, so
        // the queue never runs dry and the rate is the daemons' own.
        let urls: Vec<String> = (1..=10)
            .map(|n| format!("\"http://{addr}{}?copy={n}\"", site::ARTICLE_PATH))
            .collect();
        setup.write_schedule(
            "bench.toml",
            &format!(
                "[[schedule]]\nname = \"bench\"\ncron = \"* * * * * *\"\nurls = [{}]\n",
                urls.join(", ")
            ),
        );
        let env = [("CUSTODY_INDEX_URL", index_url.as_str())];
        let mut running: Vec<Daemon> = (0..daemons).map(|_| setup.start_with(&env)).collect();
        let index = custody::index::open(&index_url).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = index.stats(Utc::now()).await.unwrap().captures_ok;
        tokio::time::sleep(window).await;
        let after = index.stats(Utc::now()).await.unwrap().captures_ok;
        for d in &mut running {
            d.stop_with("TERM");
        }
        results.push((
            daemons,
            (after - before) as f64 * 60.0 / window.as_secs_f64(),
        ));
        schema.drop().await;
    }
    println!("\ndaemons  captures/min  vs one daemon");
    for (n, rate) in &results {
        println!("{n:>7}  {rate:>12.0}  {:>12.2}x", rate / results[0].1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_scrubs_the_store_and_quarantines_a_corrupt_object() {
    let setup = Setup::new();
    let addr = site::serve_http().await;
    let config = std::fs::read_to_string(setup.work.path().join("custody.toml")).unwrap()
        + "scrub_period_hours = 0.0005\nscrub_mb_per_sec = 100\n";
    std::fs::write(setup.work.path().join("custody.toml"), config).unwrap();
    let (capture, _) = setup
        .work
        .capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let warc = capture.warc.unwrap();
    let object = setup
        .work
        .path()
        .join("custody-data/objects")
        .join(&warc.key);
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&object, &bytes).unwrap();

    let daemon = setup.start();
    let started = Instant::now();
    loop {
        let metrics = daemon.metrics();
        if metrics.contains("custody_quarantined_objects 1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no quarantine after 30 s: {metrics}\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let index = setup.index().await;
    let events = index.fixity_events(&warc.key).await.unwrap();
    assert!(events.iter().all(|e| e.outcome == "corrupt"), "{events:?}");
    assert!(daemon.log_text().contains("fixity check failed"));
}

/// Kills the daemon (SIGKILL) at `point` of its first attempt at a run,
/// starts it again, and checks the instant ends with exactly one capture,
/// named by the run, with nothing in the store the index does not name.
/// On the workdir's SQLite index, or on `index_url`.
async fn killed_at(point: &str, index_url: Option<&str>) {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let (cron, at) = once_in(3);
    setup.schedule_once(&cron, &format!("http://{addr}{}", site::ARTICLE_PATH));
    let env: Vec<(&str, &str)> = index_url
        .map(|u| vec![("CUSTODY_INDEX_URL", u)])
        .unwrap_or_default();
    let failpoint = format!("{point}=pause");
    let mut with_failpoint = env.clone();
    with_failpoint.push(("CUSTODY_FAILPOINTS", &failpoint));
    let mut first = setup.start_with(&with_failpoint);
    first
        .wait_for_log("failpoint reached", Duration::from_secs(20))
        .await;
    first.stop_with("KILL");

    let mut second = setup.start_with(&env);
    let index = match index_url {
        Some(url) => custody::index::open(url).await.unwrap(),
        None => setup.index().await,
    };
    let done = stop_after_run(
        &mut second,
        index.as_ref(),
        "once",
        RunState::Done,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!((done.scheduled_for, done.attempts), (at, 2), "{done:?}");
    let captures = captures_at(index.as_ref(), at).await;
    assert_eq!(captures.len(), 1, "killed at {point}: {captures:#?}");
    assert_eq!(captures[0].status, CaptureStatus::Ok);
    assert_eq!(done.capture_id.as_ref(), Some(&captures[0].id));
    // The first attempt's WARC is the one kept: finished from the spool,
    // or adopted from the store.
    let log = second.log_text();
    assert!(
        log.contains("finished a capture interrupted before it was indexed")
            || log.contains("adopted a capture whose process died before indexing it"),
        "{log}"
    );
    store_matches_index(&setup, index.as_ref()).await;
    assert!(
        index.all_pending_objects().await.unwrap().is_empty(),
        "no upload left unaccounted for"
    );
    let verified = setup
        .work
        .command(&["verify", "--all"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        crate::cli::stderr_text(&verified)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_at_either_step_of_committing_leaves_exactly_one_capture() {
    for point in ["after_warc_complete", "after_store"] {
        killed_at(point, None).await;
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_at_either_step_of_committing_leaves_exactly_one_capture_on_postgres() {
    for point in ["after_warc_complete", "after_store"] {
        let schema = crate::index_conformance::PgSchema::new().await;
        killed_at(point, Some(&schema.url())).await;
        schema.drop().await;
    }
}

/// A daemon frozen (SIGSTOP) with its WARC written, past its run lease and
/// its leader lease: another daemon takes over leading and the run, and
/// captures it; the frozen one, woken, stores and records nothing.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_frozen_past_its_leases_is_replaced_and_commits_nothing_when_it_wakes() {
    let schema = crate::index_conformance::PgSchema::new().await;
    let index_url = schema.url();
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let (cron, at) = once_in(3);
    setup.schedule_once(&cron, &format!("http://{addr}{}", site::ARTICLE_PATH));
    let env = [("CUSTODY_INDEX_URL", index_url.as_str())];
    let mut frozen = setup.start_with(&[
        env[0],
        ("CUSTODY_FAILPOINTS", "after_warc_complete=sleep:3000"),
    ]);
    frozen
        .wait_for_log("failpoint reached", Duration::from_secs(20))
        .await;
    crate::cli::signal(frozen.pid(), "STOP");
    assert!(frozen.log_text().contains("now the scheduler leader"));

    let mut other = setup.start_with(&env);
    let index = custody::index::open(&index_url).await.unwrap();
    let done = wait_for_run(
        index.as_ref(),
        "once",
        RunState::Done,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!((done.scheduled_for, done.attempts), (at, 2));
    other
        .wait_for_log("now the scheduler leader", Duration::from_secs(10))
        .await;

    // Woken, the frozen daemon finds its lease gone and the instant
    // captured: it stores nothing, records nothing, and stops leading.
    crate::cli::signal(frozen.pid(), "CONT");
    frozen
        .wait_for_log("this attempt recorded nothing", Duration::from_secs(20))
        .await;
    frozen
        .wait_for_log(
            "another daemon is the scheduler leader",
            Duration::from_secs(10),
        )
        .await;
    for d in [&mut frozen, &mut other] {
        let (status, _) = d.stop_with("TERM");
        assert!(status.success(), "{}", d.log_text());
    }
    let captures = captures_at(index.as_ref(), at).await;
    assert_eq!(captures.len(), 1, "{captures:#?}");
    assert_eq!(done.capture_id.as_ref(), Some(&captures[0].id));
    let runs = index.runs(Some("once")).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        runs[0].state,
        RunState::Done,
        "the woken attempt changed nothing"
    );
    store_matches_index(&setup, index.as_ref()).await;
    let spool = setup.work.path().join("custody-data/spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("scratch-"))
        .collect();
    assert!(left.is_empty(), "spool left behind: {left:?}");
    schema.drop().await;
}

/// Daemons started at the same moment on a fresh PostgreSQL schema agree on
/// who migrates it: all of them come up, every time.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn daemons_started_together_on_a_fresh_postgres_schema_all_come_up() {
    let setup = Setup::new();
    for round in 0..3 {
        let schema = crate::index_conformance::PgSchema::new().await;
        let url = schema.url();
        let env = [("CUSTODY_INDEX_URL", url.as_str())];
        let mut daemons: Vec<Daemon> = (0..3).map(|_| setup.spawn_with(&env)).collect();
        for d in &mut daemons {
            d.wait_healthy();
        }
        for d in &mut daemons {
            let (status, _) = d.stop_with("TERM");
            assert!(status.success(), "round {round}: {}", d.log_text());
            assert!(
                !d.log_text().contains(" ERROR "),
                "round {round}: {}",
                d.log_text()
            );
        }
        schema.drop().await;
    }
}

/// A small tmpfs mounted over a directory for the length of a test: a disk
/// that fills up. Needs root, as the test machine and CI run.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let done = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount(8)");
        assert!(
            done.success(),
            "mounting a small tmpfs needs root (the test suite runs as root)"
        );
        SmallDisk { dir }
    }

    fn entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in walk(&self.dir) {
            out.push(e.strip_prefix(&self.dir).unwrap().display().to_string());
        }
        out.sort();
        out
    }
}

/// Every file and directory under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// custody's own disk filling up is never the page's fault: the capture
/// fails with one line that says so, nothing is recorded as a failed
/// capture, nothing half-written stays, and the run is retried past
/// `max_attempts` until the disk has room, then captured once.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_retried_never_recorded_as_a_failed_capture() {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let config = std::fs::read_to_string(setup.work.path().join("custody.toml"))
        .unwrap()
        .replace("[daemon]\n", "[daemon]\nmax_attempts = 2\n");
    std::fs::write(setup.work.path().join("custody.toml"), config).unwrap();
    let url = format!("http://{addr}/media/generated.mp4?bytes=3000000");
    let disk = SmallDisk::mount(setup.work.path().join("custody-data/spool"), "256k");

    // By hand: one clear line, nothing recorded.
    let out = setup.work.run(&["capture", &url, "--allow-private"]);
    let err = crate::cli::stderr_text(&out);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let index = setup.index().await;
    assert!(index.captures(None).await.unwrap().is_empty());
    assert!(
        disk.entries().iter().all(|e| !e.contains(".partial")),
        "{:?}",
        disk.entries()
    );

    // Scheduled: retried, past max_attempts, never failed.
    let (cron, at) = once_in(2);
    setup.write_schedule(
        "big.toml",
        &format!("[[schedule]]\nname = \"big\"\ncron = \"{cron}\"\nurls = [\"{url}\"]\n"),
    );
    let mut daemon = setup.start();
    let started = Instant::now();
    let run = loop {
        let runs = index.runs(Some("big")).await.unwrap();
        if let Some(r) = runs
            .iter()
            .find(|r| r.attempts >= 3 && r.state == RunState::Due)
        {
            break r.clone();
        }
        assert!(runs.iter().all(|r| r.state != RunState::Failed), "{runs:?}");
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "{runs:?}: {}",
            daemon.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run.scheduled_for, at);
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("not the page's fault") && error.contains("No space left on device"),
        "{error}"
    );
    assert!(index.captures(None).await.unwrap().is_empty());
    assert!(setup
        .work
        .objects()
        .iter()
        .all(|o| o.to_string_lossy().contains("/log/")));
    let (status, _) = daemon.stop_with("TERM");
    assert!(status.success());
    // Only the (stopped) daemon's scratch lock may be left on the disk.
    let left: Vec<_> = disk
        .entries()
        .into_iter()
        .filter(|e| !e.starts_with("scratch-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Room again: the run is captured, once.
    drop(disk);
    let mut daemon = setup.start();
    let done = stop_after_run(
        &mut daemon,
        index.as_ref(),
        "big",
        RunState::Done,
        Duration::from_secs(40),
    )
    .await;
    let captures = index.captures(None).await.unwrap();
    assert_eq!(captures.len(), 1, "{captures:?}");
    assert_eq!(captures[0].status, CaptureStatus::Ok);
    assert_eq!(done.capture_id.as_ref(), Some(&captures[0].id));

    // Verification needs no room: with the spool and the temporary
    // directory full to the last byte, healthy evidence still verifies.
    let full = SmallDisk::mount(setup.work.path().join("custody-data/spool"), "64k");
    let filler = full.dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let out = setup
        .work
        .command(&["verify", "--all"])
        .env("TMPDIR", &full.dir)
        .output()
        .unwrap();
    let err = crate::cli::stderr_text(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("FAIL"), "{err}");
}

/// Warnings where a user will trip (issue 15): a second daemon on one
/// SQLite data directory, a schedule URL on a private address the daemon
/// would refuse (`schedule validate`), `diff` of captures of two different
/// URLs, and a 401 under public reading that names the role needed.
#[tokio::test(flavor = "multi_thread")]
async fn warnings_where_a_user_will_trip() {
    let setup = Setup::new();
    let first = setup.start();
    let second = setup.start();
    second
        .wait_for_log(
            "another custody daemon is running on this data directory",
            Duration::from_secs(10),
        )
        .await;
    assert!(!first.log_text().contains("another custody daemon"));
    // It says where to look, and when the first capture is due.
    first
        .wait_for_log(
            "custody is running: the UI and API at http://",
            Duration::from_secs(10),
        )
        .await;
    drop(second);
    drop(first);

    setup.write_schedule(
        "private.toml",
        "[[schedule]]\nname = \"intranet\"\ncron = \"0 3 * * *\"\nurls = [\"http://10.1.2.3/status\"]\n",
    );
    let out = setup.work.run(&["schedule", "validate", "schedules"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("warning: ")
            && stderr_text(&out).contains(
                "schedule intranet: http://10.1.2.3/status is a private or local address"
            ),
        "{}",
        stderr_text(&out)
    );

    let addr = site::serve_http().await;
    let (a, _) = setup
        .work
        .capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let (b, _) = setup.work.capture(&format!("http://{addr}/short-link"));
    let out = setup.work.run(&["diff", a.id.as_str(), b.id.as_str()]);
    assert!(
        stderr_text(&out).contains("warning: the captures are of different URLs"),
        "{}",
        stderr_text(&out)
    );

    let server = crate::web::serve(&setup.work, &["--public-read"]);
    let denied = crate::web::request(server.addr, "POST", "/api/v1/claims", &[], Some(b"{}"));
    assert_eq!(denied.status, 401);
    assert!(
        denied
            .text()
            .contains("reading is public here, but this needs a token with the archivist role"),
        "{}",
        denied.text()
    );
}

/// Owned environment pairs as `start_with` and `spawn_with` take them.
#[cfg(feature = "postgres")]
fn as_pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Issue 16: the deploy recipes give every daemon the same provisioned
/// keys (CUSTODY_KEYS_DIR) and a data directory of its own. Two daemons so
/// set up on one PostgreSQL index and one store sign checkpoints of one
/// log, leader after leader, that `log check` accepts; a daemon with other
/// keys, or with a keys_dir that holds none, refuses to start and says why.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn daemons_with_the_recipes_provisioned_keys_sign_one_log_and_others_are_refused() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let compose = std::fs::read_to_string(root.join("compose.yaml")).unwrap();
    let k8s = std::fs::read_to_string(root.join("k8s/deployment.yaml")).unwrap();
    assert!(compose.contains("CUSTODY_KEYS_DIR: /etc/custody/keys"));
    assert!(compose.contains("custody-keys:/etc/custody/keys:ro"));
    assert!(k8s.contains("{name: CUSTODY_KEYS_DIR, value: /etc/custody/keys}"));
    assert!(k8s.contains("secretName: custody-keys"));

    let schema = crate::index_conformance::PgSchema::new().await;
    let index_url = schema.url();
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let config = setup.work.path().join("custody.toml");
    let text = std::fs::read_to_string(&config).unwrap() + "checkpoint_secs = 1\n";
    std::fs::write(&config, text).unwrap();
    setup.write_schedule(
        "shared.toml",
        &format!(
            "[[schedule]]\nname = \"shared\"\ncron = \"*/2 * * * * *\"\nurls = [\"http://{addr}{}\"]\n",
            site::ARTICLE_PATH
        ),
    );
    let keys = setup.work.path().join("keys");
    setup
        .work
        .ok(&["keys", "generate", "--dir", keys.to_str().unwrap()]);
    let shown = String::from_utf8(setup.work.ok(&[
        "keys",
        "show",
        "--dir",
        keys.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let store = format!("file://{}", setup.work.path().join("objects").display());
    let env_for = |data: &str, keys: &std::path::Path| -> Vec<(String, String)> {
        vec![
            ("CUSTODY_INDEX_URL".into(), index_url.clone()),
            ("CUSTODY_STORE_URL".into(), store.clone()),
            (
                "CUSTODY_DATA_DIR".into(),
                setup.work.path().join(data).display().to_string(),
            ),
            ("CUSTODY_KEYS_DIR".into(), keys.display().to_string()),
        ]
    };
    let index = custody::index::open(&index_url).await.unwrap();
    let signed = || async {
        index
            .checkpoints()
            .await
            .unwrap()
            .last()
            .map(|c| c.tree_size)
            .unwrap_or(0)
    };
    let wait_for_checkpoint_above = |size: u64| async move {
        let started = Instant::now();
        loop {
            let now = signed().await;
            if now > size {
                return now;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no checkpoint above {size}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };

    let mut first = setup.start_with(&as_pairs(&env_for("replica-1", &keys)));
    let size_1 = wait_for_checkpoint_above(0).await;
    let mut second = setup.start_with(&as_pairs(&env_for("replica-2", &keys)));
    first.stop_with("KILL");
    let size_2 = wait_for_checkpoint_above(size_1).await;
    assert!(
        second.log_text().contains("now the scheduler leader"),
        "{}",
        second.log_text()
    );
    let (status, _) = second.stop_with("TERM");
    assert!(status.success());
    // Neither replica made keys of its own.
    for data in ["replica-1", "replica-2"] {
        let dir = setup.work.path().join(data);
        assert!(!dir.join("log-signing.key").exists(), "{data}");
        assert!(!dir.join("wacz-signing.key").exists(), "{data}");
    }
    let mut check = setup.work.command(&["log", "check", "--json"]);
    check.envs(env_for("checker", &keys));
    let out = check.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "log check: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines().count() >= 2,
        "checkpoints {size_1} and {size_2}: {text}"
    );
    let checkpoint = index.checkpoints().await.unwrap().pop().unwrap();
    assert!(checkpoint
        .note
        .starts_with(&format!("{}\n", shown["log_origin"].as_str().unwrap())));

    // Other keys, or none where keys were to be provisioned: refused.
    let stranger = setup.work.path().join("stranger-keys");
    setup
        .work
        .ok(&["keys", "generate", "--dir", stranger.to_str().unwrap()]);
    let empty = setup.work.path().join("no-keys");
    std::fs::create_dir_all(&empty).unwrap();
    for (keys_dir, says) in [
        (&stranger, "signed by another key"),
        (&empty, "no log-signing.key in keys_dir"),
    ] {
        let mut refused = setup.spawn_with(&as_pairs(&env_for("replica-3", keys_dir)));
        let started = Instant::now();
        let status = loop {
            if let Some(s) = refused.child.as_mut().unwrap().try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{}",
                refused.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        refused.child = None;
        assert_eq!(status.code(), Some(2), "{}", refused.log_text());
        assert!(refused.log_text().contains(says), "{}", refused.log_text());
    }
    assert!(!setup.work.path().join("replica-3/log-signing.key").exists());
    // Nor does a command with other keys sign this log.
    let mut capture = setup.work.command(&[
        "capture",
        &format!("http://{addr}/short-link"),
        "--allow-private",
    ]);
    capture.envs(env_for("stranger-cli", &stranger));
    assert!(capture.output().unwrap().status.success());
    let mut sign = setup.work.command(&["log", "checkpoint"]);
    sign.envs(env_for("stranger-cli", &stranger));
    let out = sign.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signed by another key"), "{err}");
    assert_eq!(
        index.checkpoints().await.unwrap().last().unwrap().tree_size,
        checkpoint.tree_size
    );
    schema.drop().await;
}

/// Issue 18: a schedule an archivist adds in the UI (signed in by the
/// cookie, the form sent from custody's own page) is run by the daemon.
#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_added_from_the_ui_is_captured_by_the_daemon() {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let daemon = setup.start();
    let server: std::net::SocketAddr = format!("127.0.0.1:{}", daemon.port).parse().unwrap();
    let archivist = crate::web::token(&setup.work, "archivist");
    let cookie = format!("custody_token={archivist}");
    let origin = format!("http://{server}");
    let home = crate::web::request(server, "GET", "/", &[("Cookie", &cookie)], None).text();
    let at = home
        .find("name=\"csrf\" value=\"")
        .expect("the archivist's forms")
        + 19;
    let csrf = &home[at..at + 64];
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    let form = format!(
        "csrf={csrf}&name=from-the-ui&cron={}&timezone=UTC&urls={}",
        q("*/2 * * * * *"),
        q(&article)
    );
    let added = crate::web::request(
        server,
        "POST",
        "/ui/schedules",
        &[
            ("Cookie", &cookie),
            ("Origin", &origin),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(form.as_bytes()),
    );
    assert_eq!(added.status, 303, "{}", added.text());
    let index = setup.index().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let captured = index
            .captures(Some(&article))
            .await
            .unwrap()
            .into_iter()
            .any(|c| c.schedule.as_deref() == Some("from-the-ui") && c.status == CaptureStatus::Ok);
        if captured {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not run the schedule: {}",
            setup.daemon_logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Its runs, filtered and paged, on the API and the Schedules page.
    let get = |path: &str| crate::web::get(server, path, Some(&archivist));
    let done = get("/api/v1/runs?schedule=from-the-ui&state=done&limit=1").json();
    assert_eq!(done["items"].as_array().unwrap().len(), 1, "{done}");
    assert_eq!(done["items"][0]["state"], "done");
    let bad = get("/api/v1/runs?state=nope");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("not a run state"), "{}", bad.text());
    let listed = get("/ui/schedules?schedule=from-the-ui&state=done").text();
    assert!(
        listed.contains(&article) && listed.contains(">done<"),
        "{listed}"
    );

    // Paused from its row, the schedule records no runs; resumed, it runs
    // again from its next instant, without catching up the paused ones.
    let act = |action: &str| {
        let page = get("/ui/schedules").text();
        let at = page
            .find("name=\"version\" value=\"")
            .expect("the schedule's row of changes")
            + 22;
        let form = format!(
            "csrf={csrf}&name=from-the-ui&version={}&action={action}",
            &page[at..at + 64]
        );
        let sent = crate::web::request(
            server,
            "POST",
            "/ui/schedules/edit",
            &[
                ("Cookie", &cookie),
                ("Origin", &origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(form.as_bytes()),
        );
        assert_eq!(sent.status, 303, "{action}: {}", sent.text());
        chrono::Utc::now()
    };
    let paused_at = act("pause");
    let file = std::fs::read_to_string(setup.schedules().join("from-the-ui.toml")).unwrap();
    assert!(file.contains("enabled = false"), "{file}");
    assert!(get("/ui/schedules")
        .text()
        .contains("<strong>paused</strong>"));
    // Longer than the grace after which an instant counts as missed.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let resumed_at = act("resume");
    let reload = chrono::Duration::seconds(2);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let runs = index.runs(Some("from-the-ui")).await.unwrap();
        let during: Vec<_> = runs
            .iter()
            .filter(|r| {
                r.scheduled_for > paused_at + reload && r.scheduled_for < resumed_at - reload
            })
            .collect();
        assert!(during.is_empty(), "runs while paused: {during:?}");
        assert!(
            runs.iter().all(|r| !r.catch_up),
            "resuming caught up: {runs:?}"
        );
        let again = runs
            .iter()
            .any(|r| r.scheduled_for > resumed_at && r.state == RunState::Done);
        if again {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed schedule did not run: {runs:?} {}",
            setup.daemon_logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Issue 18: captures indexed before search existed are made searchable
/// when the daemon starts; one whose stored WARC cannot be read is skipped
/// (and said), and the others are indexed all the same.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_makes_earlier_captures_searchable_and_skips_one_it_cannot_read() {
    let addr = site::serve_http().await;
    let setup = Setup::new();
    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    // Two pages, so that neither is a revisit of the other.
    let (lost, _) = setup
        .work
        .capture(&format!("http://{addr}{}", site::ARABIC_PATH));
    let (kept, _) = setup.work.capture(&article);
    // As an index from before search: no text indexed.
    let pool = setup.work.index_pool().await;
    // (A contentless FTS5 table is emptied by its `delete-all` command.)
    for statement in [
        "INSERT INTO page_fts (page_fts) VALUES ('delete-all')",
        "DELETE FROM page_text",
        "DELETE FROM page_text_done",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    assert!(setup.work.ok(&["search", "Kirby", "--json"]).is_empty());
    std::fs::remove_file(setup.work.stored_warc(&lost)).unwrap();

    let daemon = setup.start();
    daemon
        .wait_for_log("could not be indexed for search", Duration::from_secs(30))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = String::from_utf8(setup.work.ok(&["search", "Kirby", "--json"])).unwrap();
        if found.contains(kept.id.as_str()) {
            let arabic = setup.work.ok(&["search", "النيرب", "--json"]);
            assert!(arabic.is_empty(), "{}", String::from_utf8_lossy(&arabic));
            let _ = &lost;
            break;
        }
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
