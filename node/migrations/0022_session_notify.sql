-- Tell every web process when a session ends or an account changes, so sessions can be cached in process.

CREATE FUNCTION sessions_notify_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', OLD.user_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER sessions_notify_end AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_notify_end();

CREATE FUNCTION users_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vbg_sessions', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER users_notify_change AFTER UPDATE OF username, display_name, role, status ON users
    FOR EACH ROW WHEN (OLD.username IS DISTINCT FROM NEW.username
        OR OLD.display_name IS DISTINCT FROM NEW.display_name
        OR OLD.role IS DISTINCT FROM NEW.role OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION users_notify_change();
