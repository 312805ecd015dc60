-- Texts of the node the admins edit in the browser (legal and privacy information first): no dead end for a member asking who holds her data.

-- One row per page; source is what the admin typed (the forum's formatting), html its
-- sanitised rendering (node/site_pages.py owns this table). A missing row means the
-- default text of the page is shown.
CREATE TABLE site_pages (
    slug text PRIMARY KEY CHECK (slug IN ('legal')),
    source text NOT NULL,
    html text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint REFERENCES users (id) ON DELETE SET NULL
);
