-- Full-text search: the readable text of every page and frame a capture
-- holds (its rendered text in browser mode), as read back from the stored
-- WARC after the capture is indexed. `page_text_done` marks a capture whose
-- documents are in (some captures hold none), so the daemon and `reindex`
-- can fill in the captures made before this migration.
--
-- `folded` is the searchable form (Unicode compatibility decomposition,
-- combining marks dropped, lower case; see `search::fold`), indexed with the
-- `simple` configuration: no stemming and no stop words, the same words in
-- every language, as SQLite's FTS5 side matches them.

CREATE TABLE page_text (
    id         BIGSERIAL PRIMARY KEY,
    capture_id TEXT NOT NULL REFERENCES capture (id),
    url        TEXT NOT NULL,
    host       TEXT NOT NULL,
    title      TEXT,
    body       TEXT NOT NULL,
    folded     TSVECTOR NOT NULL,
    UNIQUE (capture_id, url)
);
CREATE INDEX page_text_by_host ON page_text (host);
CREATE INDEX page_text_search ON page_text USING GIN (folded);

CREATE TABLE page_text_done (
    capture_id TEXT PRIMARY KEY REFERENCES capture (id),
    documents  BIGINT NOT NULL,
    indexed_at TEXT NOT NULL
);
