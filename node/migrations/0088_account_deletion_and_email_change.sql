-- A member may delete her account (kept as a « membre supprimé » tombstone so her handle is never reused) and change her e-mail address, confirmed by a link sent to the new one.

ALTER TABLE users DROP CONSTRAINT users_status_check;
ALTER TABLE users ADD CONSTRAINT users_status_check
    CHECK (status IN ('pending', 'approved', 'refused', 'suspended', 'deleted'));
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- A requested address change waits here until the link sent to the new address is
-- opened (node/email_changes.py owns this table); only the token's SHA-256 is kept.
CREATE TABLE email_changes (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email text NOT NULL,
    token_hash bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX email_changes_user ON email_changes (user_id) WHERE used_at IS NULL;
