-- The media step: a capture that ran yt-dlp on its page carries the step's
-- outcome (yt-dlp's version, the status, the problem if any, and each file
-- it produced with its resource record and digest) as JSON, in the
-- encoding its version 4 log leaf commits to. NULL when the step did not
-- run.

ALTER TABLE capture ADD COLUMN media_json TEXT;
