-- Claims (versioned, append-only), evidence links with their selectors,
-- passage checks in later captures, and each object's custody events.

CREATE TABLE claim (
    id          TEXT NOT NULL,
    version     BIGINT NOT NULL,
    text        TEXT NOT NULL,
    event_start TEXT,
    event_end   TEXT,
    place       TEXT,
    latitude    DOUBLE PRECISION,
    longitude   DOUBLE PRECISION,
    tags        TEXT NOT NULL,
    language    TEXT,
    author      TEXT,
    origin      TEXT,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX claim_by_origin ON claim (origin);

CREATE TABLE evidence_link (
    id             TEXT PRIMARY KEY,
    claim_id       TEXT NOT NULL,
    claim_version  BIGINT NOT NULL,
    capture_id     TEXT NOT NULL REFERENCES capture (id),
    record_id      TEXT NOT NULL REFERENCES record (record_id),
    target_uri     TEXT NOT NULL,
    payload_digest TEXT NOT NULL,
    relation       TEXT NOT NULL,
    selectors      TEXT NOT NULL,
    quote_given    TEXT,
    rationale      TEXT,
    author         TEXT,
    created_at     TEXT NOT NULL,
    FOREIGN KEY (claim_id, claim_version) REFERENCES claim (id, version)
);
CREATE INDEX link_by_claim ON evidence_link (claim_id);
CREATE INDEX link_by_capture ON evidence_link (capture_id);
CREATE INDEX link_by_target ON evidence_link (target_uri);

CREATE TABLE passage_check (
    link_id     TEXT NOT NULL REFERENCES evidence_link (id),
    capture_id  TEXT NOT NULL REFERENCES capture (id),
    captured_at TEXT NOT NULL,
    present     BOOLEAN NOT NULL,
    PRIMARY KEY (link_id, capture_id)
);

CREATE TABLE custody_event (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    object_kind TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    event       TEXT NOT NULL,
    actor       TEXT,
    at          TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX event_by_object ON custody_event (object_kind, object_id, seq);
