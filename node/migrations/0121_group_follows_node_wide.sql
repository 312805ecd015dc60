-- An administrator's follow of a remote community for the whole node: kept when the last
-- local member leaves (no Undo{Follow} then).
ALTER TABLE group_follows ADD COLUMN node_wide boolean NOT NULL DEFAULT false;
-- 'undone': the node sent Undo{Follow} (the last local member left, or an admin dropped it).
ALTER TABLE group_follows DROP CONSTRAINT group_follows_state_check;
ALTER TABLE group_follows ADD CONSTRAINT group_follows_state_check
    CHECK (state IN ('pending', 'accepted', 'rejected', 'undone'));
