-- The first schema: captures, their WARC files, records (CDXJ fields and
-- where each record lives) and fetched resources with their failures.
-- Instants are TEXT in fixed-width RFC 3339 UTC with microseconds
-- (2016-11-29T10:04:00.000000Z) so that text order is time order.

CREATE TABLE warc_file (
    sha256     TEXT PRIMARY KEY,
    key        TEXT NOT NULL UNIQUE,
    bytes      BIGINT NOT NULL,
    stored_at  TEXT NOT NULL
);

CREATE TABLE capture (
    id           TEXT PRIMARY KEY,
    seed_url     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error        TEXT,
    started_at   TEXT NOT NULL,
    finished_at  TEXT NOT NULL,
    warc_sha256  TEXT REFERENCES warc_file (sha256),
    record_count BIGINT NOT NULL,
    CHECK ((status = 'ok') = (warc_sha256 IS NOT NULL))
);
CREATE INDEX capture_by_seed ON capture (seed_url, started_at);
CREATE INDEX capture_by_start ON capture (started_at);

CREATE TABLE record (
    record_id      TEXT PRIMARY KEY,
    capture_id     TEXT NOT NULL REFERENCES capture (id),
    warc_sha256    TEXT NOT NULL REFERENCES warc_file (sha256),
    warc_type      TEXT NOT NULL,
    target_uri     TEXT,
    surt           TEXT,
    date           TEXT NOT NULL,
    timestamp      TEXT NOT NULL,
    mime           TEXT,
    status         BIGINT,
    payload_digest TEXT,
    block_digest   TEXT NOT NULL,
    "offset"         BIGINT NOT NULL,
    length         BIGINT NOT NULL
);
CREATE INDEX record_by_capture ON record (capture_id, "offset");
CREATE INDEX record_by_uri ON record (target_uri, date);
CREATE INDEX record_by_surt ON record (surt, timestamp);

CREATE TABLE resource (
    capture_id     TEXT NOT NULL REFERENCES capture (id),
    seq            BIGINT NOT NULL,
    url            TEXT NOT NULL,
    status         BIGINT,
    mime           TEXT,
    payload_sha256 TEXT,
    bytes          BIGINT NOT NULL,
    truncated      TEXT,
    error          TEXT,
    PRIMARY KEY (capture_id, seq)
);
