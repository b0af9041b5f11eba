-- Fixity: every check of a stored object (expected and observed digest,
-- outcome), and the quarantine of an object that failed its last check.

CREATE TABLE fixity_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    object_key TEXT NOT NULL,
    algorithm  TEXT NOT NULL,
    expected   TEXT NOT NULL,
    observed   TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'corrupt', 'missing', 'error')),
    detail     TEXT,
    at         TEXT NOT NULL
);
CREATE INDEX fixity_by_object ON fixity_event (object_key, at);

ALTER TABLE warc_file ADD COLUMN quarantined TEXT;
