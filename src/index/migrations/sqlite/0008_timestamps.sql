-- RFC 3161 timestamps: requests waiting for a TSA (retried with backoff, so
-- a TSA that is down never blocks anything), and the tokens received, as
-- DER (base64), after they were checked.

CREATE TABLE timestamp_request (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('checkpoint', 'capture')),
    subject_id   TEXT NOT NULL,
    imprint      TEXT NOT NULL,
    tsa_url      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TEXT NOT NULL,
    last_error   TEXT,
    UNIQUE (subject_kind, subject_id, tsa_url)
);
CREATE INDEX timestamp_request_due ON timestamp_request (next_at);

CREATE TABLE timestamp_token (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    imprint      TEXT NOT NULL,
    tsa_url      TEXT NOT NULL,
    token_der    TEXT NOT NULL,
    gen_time     TEXT,
    received_at  TEXT NOT NULL
);
CREATE INDEX timestamp_token_by_subject ON timestamp_token (subject_kind, subject_id);
