-- Two-factor authentication (TOTP, RFC 6238) with one-time recovery codes: optional for members, required for moderators and admins when the node sets VBG_REQUIRE_2FA.

-- The TOTP secret is sealed with a key derived from the node secret (node/two_factor.py
-- owns these columns and the table): a database dump alone does not give the codes.
ALTER TABLE users ADD COLUMN totp_secret_sealed bytea;
ALTER TABLE users ADD COLUMN totp_pending_sealed bytea;
ALTER TABLE users ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE users ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0;

CREATE TABLE totp_recovery_codes (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at timestamptz
);
CREATE INDEX totp_recovery_codes_user ON totp_recovery_codes (user_id) WHERE used_at IS NULL;

-- Cached sessions carry whether the member has a second factor: evict them when it changes.
DROP TRIGGER users_notify_change ON users;
CREATE TRIGGER users_notify_change AFTER UPDATE OF username, display_name, role, status, timezone, totp_enabled_at
    ON users
    FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username
        OR OLD.display_name IS DISTINCT FROM NEW.display_name
        OR OLD.role IS DISTINCT FROM NEW.role OR OLD.status IS DISTINCT FROM NEW.status
        OR OLD.timezone IS DISTINCT FROM NEW.timezone
        OR OLD.totp_enabled_at IS DISTINCT FROM NEW.totp_enabled_at)
    EXECUTE FUNCTION users_notify_change();
