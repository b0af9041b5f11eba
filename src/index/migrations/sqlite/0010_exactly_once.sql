-- Exactly once: the scheduler leader holds an expiring, renewed lease (a
-- frozen leader loses it), and a run's capture of its instant is looked up
-- before the instant is captured again.

CREATE TABLE leader_lease (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX capture_by_instant ON capture (schedule, seed_url, scheduled_for);
