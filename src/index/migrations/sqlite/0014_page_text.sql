-- Full-text search: the readable text of every page and frame a capture
-- holds (its rendered text in browser mode), as read back from the stored
-- WARC after the capture is indexed. `page_text_done` marks a capture whose
-- documents are in (some captures hold none), so the daemon and `reindex`
-- can fill in the captures made before this migration.
--
-- `page_fts` is a contentless FTS5 table over the folded text (Unicode
-- compatibility decomposition, combining marks dropped, lower case; see
-- `search::fold`), its rowid the `page_text` id. `unicode61` with
-- `remove_diacritics 2` tokenizes every script's letters and digits.

CREATE TABLE page_text (
    id         INTEGER PRIMARY KEY,
    capture_id TEXT NOT NULL REFERENCES capture (id),
    url        TEXT NOT NULL,
    host       TEXT NOT NULL,
    title      TEXT,
    body       TEXT NOT NULL,
    UNIQUE (capture_id, url)
);
CREATE INDEX page_text_by_host ON page_text (host);

CREATE TABLE page_text_done (
    capture_id TEXT PRIMARY KEY REFERENCES capture (id),
    documents  INTEGER NOT NULL,
    indexed_at TEXT NOT NULL
);

CREATE VIRTUAL TABLE page_fts USING fts5(
    folded,
    content='',
    tokenize='unicode61 remove_diacritics 2'
);
