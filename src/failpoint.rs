//! Named points where tests can stop the process at a chosen moment, as a
//! crash or a frozen machine would (`kill -9` right after a WARC is
//! complete, a pause longer than a lease). Off unless the environment
//! variable `CUSTODY_FAILPOINTS` names them, e.g.
//! `CUSTODY_FAILPOINTS=after_warc_complete=pause` or
//! `...=sleep:8000` (milliseconds); several are separated by commas. A
//! point that fires logs `failpoint reached` with its name first, so a
//! test can wait for that line. Never set it in production.

use std::sync::OnceLock;
use std::time::Duration;

fn configured() -> &'static Vec<(String, String)> {
    static POINTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var("CUSTODY_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(name, action)| (name.trim().to_string(), action.trim().to_string()))
            .collect()
    })
}

/// Runs the action configured for `name`, if any: `pause` stops this task
/// for good (the test kills the process), `sleep:MS` waits that long.
pub async fn hit(name: &str) {
    let Some((_, action)) = configured().iter().find(|(n, _)| n == name) else {
        return;
    };
    tracing::warn!(failpoint = name, action = %action, "failpoint reached");
    if action == "pause" {
        std::future::pending::<()>().await;
    } else if let Some(ms) = action.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
