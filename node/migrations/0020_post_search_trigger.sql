-- Keep posts.search_vector right for every writer (forum services and federation inbox alike).

-- The opening post is searchable by its thread's title (weight A) and its body (B);
-- a reply by its body only.
CREATE FUNCTION posts_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_vector := vbg_tsvector(
        CASE WHEN NEW.is_opening THEN (SELECT title FROM threads WHERE id = NEW.thread_id) END,
        NEW.source);
    RETURN NEW;
END
$$;
CREATE TRIGGER posts_search_vector BEFORE INSERT OR UPDATE OF source, is_opening ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_search_vector();

CREATE FUNCTION threads_title_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE posts SET search_vector = vbg_tsvector(NEW.title, source)
    WHERE thread_id = NEW.id AND is_opening;
    RETURN NULL;
END
$$;
CREATE TRIGGER threads_title_search_vector AFTER UPDATE OF title ON threads
    FOR EACH ROW WHEN (OLD.title IS DISTINCT FROM NEW.title)
    EXECUTE FUNCTION threads_title_search_vector();

UPDATE posts p SET search_vector = vbg_tsvector(CASE WHEN p.is_opening THEN t.title END, p.source)
FROM threads t WHERE t.id = p.thread_id AND p.search_vector IS NULL;

