-- Scheduled runs: recorded before they start, unique per schedule, URL and
-- instant, claimed with leases. Captures remember the run that made them.

ALTER TABLE capture ADD COLUMN schedule TEXT;
ALTER TABLE capture ADD COLUMN scheduled_for TEXT;

CREATE TABLE run (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule      TEXT NOT NULL,
    url           TEXT NOT NULL,
    host          TEXT NOT NULL,
    scheduled_for TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('due', 'running', 'done', 'failed', 'skipped', 'interrupted')),
    not_before    TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    catch_up      BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner   TEXT,
    lease_expires TEXT,
    capture_id    TEXT REFERENCES capture (id),
    error         TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (schedule, url, scheduled_for)
);
CREATE INDEX run_by_state ON run (state, not_before);
CREATE INDEX run_by_schedule ON run (schedule, url, state);

-- Every attempt at a run, with how it ended.
CREATE TABLE run_attempt (
    run_id      BIGINT NOT NULL REFERENCES run (id),
    attempt     BIGINT NOT NULL,
    owner       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT NOT NULL,
    capture_id  TEXT,
    error       TEXT,
    PRIMARY KEY (run_id, attempt)
);

-- How far each schedule's URLs have been planned.
CREATE TABLE schedule_state (
    schedule      TEXT NOT NULL,
    url           TEXT NOT NULL,
    planned_until TEXT NOT NULL,
    PRIMARY KEY (schedule, url)
);
