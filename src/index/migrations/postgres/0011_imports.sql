-- Imported files: a capture made by another tool and brought in with
-- `custody import` carries what is known of it (the file as received, who
-- imported it, when, from where, and what checking it found) as JSON, in
-- the encoding its version 3 log leaf commits to. NULL for custody's own
-- captures. The file as received is a row of warc_file too (key
-- import/...), so audit checks its fixity like any stored object.

ALTER TABLE capture ADD COLUMN import_json TEXT;
