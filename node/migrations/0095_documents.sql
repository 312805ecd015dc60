-- Documents space: each community's library of files (protocols, practical sheets, training, reports, form templates), with versions, a discussion thread each, featuring and full-text search; owned by node/documents.py.

-- A document is the opening post of a thread of its own (its discussion): federated as
-- that thread's Page with a Document attachment. Local documents have author_id; those
-- that arrived from another server have the thread's remote author and no author_id.
CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    thread_id bigint UNIQUE REFERENCES threads (id) ON DELETE CASCADE,  -- NULL while a draft
    community_id bigint NOT NULL REFERENCES communities (id) ON DELETE CASCADE,
    author_id bigint REFERENCES users (id) ON DELETE SET NULL,
    remote boolean NOT NULL DEFAULT false,
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 20000),
    doc_type text NOT NULL DEFAULT 'autre'
        CHECK (doc_type IN ('protocole', 'fiche', 'formation', 'rapport', 'modele', 'autre')),
    tags text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 10),
    language text NOT NULL DEFAULT 'fr' CHECK (language ~ '^[a-z]{2,3}$'),
    origin text NOT NULL DEFAULT '' CHECK (length(origin) <= 200),  -- author or source, as written
    licence text NOT NULL DEFAULT '' CHECK (length(licence) <= 100),
    issued_on date,
    -- a local upload whose file still carries what we cannot remove waits for its
    -- uploader's confirmation (uploads.CleanFile.carried): only they see a draft
    status text NOT NULL DEFAULT 'published' CHECK (status IN ('draft', 'published')),
    featured_at timestamptz,
    featured_by bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    -- title and tags (A), description (B), the current version's extracted text (C)
    search_vector tsvector
);
CREATE INDEX documents_community_list ON documents (community_id, (featured_at IS NULL), updated_at DESC, id DESC)
    WHERE deleted_at IS NULL AND status = 'published';
CREATE INDEX documents_list ON documents (updated_at DESC, id DESC) WHERE deleted_at IS NULL AND status = 'published';
CREATE INDEX documents_search ON documents USING gin (search_vector);
CREATE INDEX documents_tags ON documents USING gin (tags);

-- Every file a document has had; the highest number is the current one. Old versions stay
-- downloadable by who may read the document.
--   stored    the file is under <data_dir>/documents/ (stored_name, random)
--   pending   a remote file waiting for the documents worker (fetch now / on first open)
--   link      a remote file shown as a link only (VBG_REMOTE_DOCUMENTS=link, or not opened yet)
--   refused / failed   a remote file the worker would not or could not keep (shown as a link)
CREATE TABLE document_versions (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    number integer NOT NULL CHECK (number >= 1),
    status text NOT NULL DEFAULT 'stored' CHECK (status IN ('stored', 'pending', 'link', 'refused', 'failed')),
    stored_name text UNIQUE,
    thumbnail_name text UNIQUE,
    media_type text NOT NULL CHECK (length(media_type) <= 100),
    size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
    file_name text NOT NULL DEFAULT '' CHECK (length(file_name) <= 200),  -- display only
    extracted_text text NOT NULL DEFAULT '',
    carried text[] NOT NULL DEFAULT '{}',
    note text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    uploaded_by bigint REFERENCES users (id) ON DELETE SET NULL,
    remote_url text CHECK (length(remote_url) <= 2048),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, number)
);
CREATE INDEX document_versions_due ON document_versions (next_attempt_at) WHERE status = 'pending';

-- File names of deleted documents and versions, removed from storage after the deleting
-- transaction commits (node.documents.empty_trash), so a rollback never loses a file.
CREATE TABLE document_trash (
    stored_name text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
