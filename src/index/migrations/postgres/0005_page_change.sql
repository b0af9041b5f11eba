-- Whether a capture's page changed since the previous capture of its seed:
-- the previous capture's id and 'changed' or 'unchanged' (payload digest of
-- the page's response compared). Both NULL for a seed's first capture.

ALTER TABLE capture ADD COLUMN previous_capture TEXT;
ALTER TABLE capture ADD COLUMN page_change TEXT CHECK (page_change IN ('changed', 'unchanged'));
