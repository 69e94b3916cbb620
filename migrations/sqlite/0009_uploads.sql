-- Resumable uploads (tus 1.0.0): one row per upload from creation until it is swept; see
-- ../postgres/0009_uploads.sql, which this keeps in step with.

CREATE TABLE uploads (
    -- AUTOINCREMENT: an id is never reused (it names the upload's `.part` file).
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id     INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    title          TEXT    NOT NULL,
    filename       TEXT    NOT NULL DEFAULT '',
    visibility     TEXT    NOT NULL DEFAULT 'public' CONSTRAINT uploads_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private')),
    length_bytes   INTEGER NOT NULL CONSTRAINT uploads_length_bytes_check CHECK (length_bytes > 0),
    received_bytes INTEGER NOT NULL DEFAULT 0 CONSTRAINT uploads_received_bytes_check CHECK (received_bytes >= 0 AND received_bytes <= length_bytes),
    state          TEXT    NOT NULL DEFAULT 'uploading' CONSTRAINT uploads_state_check CHECK (state IN ('uploading', 'processing', 'ready', 'failed')),
    error          TEXT,
    video_id       INTEGER REFERENCES videos (id) ON DELETE SET NULL,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    expires_at     TEXT    NOT NULL
) STRICT;
CREATE INDEX uploads_user_id ON uploads (user_id, state);
CREATE INDEX uploads_expires_at ON uploads (expires_at);
CREATE INDEX uploads_state ON uploads (state);
