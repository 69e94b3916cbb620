-- Resumable uploads (tus 1.0.0): one row per upload from creation until it is swept. The bytes
-- received so far are in `{recordings_dir}/.uploads/{id}.part`; the row is what lets an
-- upload resume after a server restart. Once the last byte is in, the upload is imported
-- (`processing`), then `ready` with its video or `failed` with the reason; either way the row
-- stays until `expires_at` so the client can read the outcome.
-- Keep in step with ../sqlite/0009_uploads.sql.

CREATE TABLE uploads (
    -- The id in /api/v1/uploads/{id} and the name of its `.part` file; never reused, so a
    -- new upload can never meet an old one's leftover bytes.
    id             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id     BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    title          TEXT        NOT NULL,
    filename       TEXT        NOT NULL DEFAULT '',
    visibility     TEXT        NOT NULL DEFAULT 'public' CONSTRAINT uploads_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private')),
    length_bytes   BIGINT      NOT NULL CONSTRAINT uploads_length_bytes_check CHECK (length_bytes > 0),
    received_bytes BIGINT      NOT NULL DEFAULT 0 CONSTRAINT uploads_received_bytes_check CHECK (received_bytes >= 0 AND received_bytes <= length_bytes),
    state          TEXT        NOT NULL DEFAULT 'uploading' CONSTRAINT uploads_state_check CHECK (state IN ('uploading', 'processing', 'ready', 'failed')),
    -- Why it failed, for the client.
    error          TEXT,
    video_id       BIGINT      REFERENCES videos (id) ON DELETE SET NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX uploads_user_id ON uploads (user_id, state);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
CREATE INDEX uploads_state ON uploads (state);
