-- Browser mode: a capture made in it carries what the browser did with the
-- page (its version, window, behaviours, the outcome) and the records it
-- kept (screenshot, thumbnail, PDF, rendered DOM and text, each with its
-- digest) as JSON, in the encoding its version 5 log leaf commits to. NULL
-- for http-mode captures.

ALTER TABLE capture ADD COLUMN browser_json TEXT;
