-- Files attached to private messages (node/messages.py): stored sealed under random names, their names sealed too.

CREATE TABLE message_attachments (
    id bigserial PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    uuid uuid NOT NULL UNIQUE,
    -- the sealed file in storage area "message_files" (node/storage.py: random name, .bin)
    stored_name text NOT NULL,
    -- the kind decided from the content by node.uploads (pdf, png …), as shown
    kind text NOT NULL,
    size bigint NOT NULL,
    name_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_attachments_message ON message_attachments (message_id);
