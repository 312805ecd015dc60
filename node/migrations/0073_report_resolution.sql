-- Reports handled by moderators: the note they leave with a decision, and the list of handled reports newest first.

ALTER TABLE reports ADD COLUMN resolution_note text NOT NULL DEFAULT '';
CREATE INDEX reports_handled ON reports (state, resolved_at DESC, id DESC) WHERE state <> 'open';
