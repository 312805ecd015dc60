-- A member's bookmarks and the member directory page by keyset, the id breaking ties: (created_at, post_id) newest first, (lower(display_name), id) by name.
DROP INDEX bookmarks_user;
CREATE INDEX bookmarks_user ON bookmarks (user_id, created_at DESC, post_id DESC);
DROP INDEX users_directory;
CREATE INDEX users_directory ON users (lower(display_name), id) WHERE in_directory AND status = 'approved';
