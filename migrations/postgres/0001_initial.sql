-- OnAir schema, PostgreSQL flavour. Keep in step with ../sqlite/0001_initial.sql: same tables,
-- columns, constraint names and meaning; only the types differ.
-- Times are TIMESTAMPTZ (microseconds, UTC); lists and documents are JSONB.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL CONSTRAINT users_role_check CHECK (role IN ('admin', 'streamer', 'viewer')),
    banned        BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL
);
-- Usernames are unique regardless of case: "Alice" and "alice" are one account.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE channels (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       TEXT        NOT NULL CONSTRAINT channels_slug_key UNIQUE,
    title      TEXT        NOT NULL,
    owner_id   BIGINT      NOT NULL REFERENCES users (id),
    category   TEXT        NOT NULL DEFAULT '',
    tags       JSONB       NOT NULL DEFAULT '[]' CONSTRAINT channels_tags_check CHECK (jsonb_typeof(tags) = 'array'),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX channels_owner_id ON channels (owner_id);

CREATE TABLE stream_keys (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id   BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    jti          TEXT        NOT NULL CONSTRAINT stream_keys_jti_key UNIQUE,
    label        TEXT        NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX stream_keys_channel_id ON stream_keys (channel_id);

CREATE TABLE live_sessions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id     BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    started_at     TIMESTAMPTZ NOT NULL,
    ended_at       TIMESTAMPTZ,
    publisher_addr TEXT        NOT NULL,
    video_codec    TEXT,
    audio_codec    TEXT,
    bytes_in       BIGINT      NOT NULL DEFAULT 0 CONSTRAINT live_sessions_bytes_in_check CHECK (bytes_in >= 0),
    peak_viewers   BIGINT      NOT NULL DEFAULT 0 CONSTRAINT live_sessions_peak_viewers_check CHECK (peak_viewers >= 0)
);
CREATE INDEX live_sessions_channel_id ON live_sessions (channel_id, started_at);
-- Crash recovery looks for sessions that never ended.
CREATE INDEX live_sessions_open ON live_sessions (id) WHERE ended_at IS NULL;

CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id   BIGINT      REFERENCES users (id),
    action     TEXT        NOT NULL,
    target     TEXT        NOT NULL,
    detail     JSONB       NOT NULL DEFAULT 'null',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
