-- Fixity: every check of a stored object (where: the primary store or a
-- replica; expected and observed digest; outcome, including repairs from a
-- good copy), and the quarantine of an object whose primary copy failed its
-- last check and could not be repaired.

CREATE TABLE fixity_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    object_key TEXT NOT NULL,
    location   TEXT NOT NULL DEFAULT 'primary',
    algorithm  TEXT NOT NULL,
    expected   TEXT NOT NULL,
    observed   TEXT,
    outcome    TEXT NOT NULL CHECK (outcome IN ('ok', 'corrupt', 'missing', 'error', 'repaired')),
    detail     TEXT,
    at         TEXT NOT NULL
);
CREATE INDEX fixity_by_object ON fixity_event (object_key, at);

ALTER TABLE warc_file ADD COLUMN quarantined TEXT;
