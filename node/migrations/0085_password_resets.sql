-- One-time password reset links (issued by an admin, the command line or, on request, by e-mail): nobody is locked out for good.

-- The link's token is never stored, only its SHA-256 (a database leak leaks no live link).
-- A link is live while used_at IS NULL and expires_at > now(); using one spends every
-- other live link of the account too (node/recovery.py owns this table).
CREATE TABLE password_resets (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE,
    via text NOT NULL CHECK (via IN ('admin', 'cli', 'email')),
    issued_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX password_resets_user ON password_resets (user_id) WHERE used_at IS NULL;
