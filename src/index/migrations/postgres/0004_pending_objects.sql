-- Objects being uploaded for a capture not yet indexed. A row is written
-- before the upload and deleted in the transaction that indexes the capture,
-- so a crash in between leaves a row naming the object to adopt.

CREATE TABLE pending_object (
    key           TEXT NOT NULL,
    capture_id    TEXT NOT NULL,
    seed_url      TEXT NOT NULL,
    schedule      TEXT,
    scheduled_for TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (key, capture_id)
);
CREATE INDEX pending_by_run ON pending_object (schedule, seed_url, scheduled_for);
