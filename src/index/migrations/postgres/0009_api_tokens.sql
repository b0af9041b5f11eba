-- API tokens for the HTTP surface. Only the SHA-256 of each secret is kept;
-- the token itself is shown once, when it is created.

CREATE TABLE api_token (
    id            TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('reader', 'archivist', 'admin')),
    label         TEXT,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);
