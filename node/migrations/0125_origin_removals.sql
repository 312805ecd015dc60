-- A post of a followed remote community removed by its origin (its author's Delete or the group's moderators,
-- relayed by the group): only such a removal may be undone by the origin (Undo{Delete}); a local one never.
ALTER TABLE posts ADD COLUMN removed_by_origin boolean NOT NULL DEFAULT false;
