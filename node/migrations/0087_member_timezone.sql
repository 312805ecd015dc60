-- Each member may choose the time zone dates are shown in (Bukavu, Rabat and Brussels read different clocks); empty means the node's VBG_TIMEZONE.

ALTER TABLE users ADD COLUMN timezone text NOT NULL DEFAULT '';

-- Cached sessions carry the zone: a change must evict them like a change of name or role.
DROP TRIGGER users_notify_change ON users;
CREATE TRIGGER users_notify_change AFTER UPDATE OF username, display_name, role, status, timezone ON users
    FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username
        OR OLD.display_name IS DISTINCT FROM NEW.display_name
        OR OLD.role IS DISTINCT FROM NEW.role OR OLD.status IS DISTINCT FROM NEW.status
        OR OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION users_notify_change();
