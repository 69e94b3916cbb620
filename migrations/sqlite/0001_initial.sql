-- OnAir schema, SQLite flavour. Keep in step with ../postgres/0001_initial.sql: same tables,
-- columns, constraint names and meaning; only the types differ.
-- STRICT tables, so a value of the wrong type is refused as it would be in PostgreSQL.
-- Times are TEXT in RFC 3339 UTC as sqlx writes a chrono DateTime<Utc> (microseconds at most);
-- booleans are INTEGER 0/1; lists and documents are JSON TEXT.
-- Foreign keys are enforced per connection (`PRAGMA foreign_keys = ON`, set by the store).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CONSTRAINT users_role_check CHECK (role IN ('admin', 'streamer', 'viewer')),
    banned        INTEGER NOT NULL DEFAULT 0 CONSTRAINT users_banned_check CHECK (banned IN (0, 1)),
    created_at    TEXT    NOT NULL
) STRICT;
-- Usernames are unique regardless of case: "Alice" and "alice" are one account.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE channels (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slug       TEXT    NOT NULL CONSTRAINT channels_slug_key UNIQUE,
    title      TEXT    NOT NULL,
    owner_id   INTEGER NOT NULL REFERENCES users (id),
    category   TEXT    NOT NULL DEFAULT '',
    tags       TEXT    NOT NULL DEFAULT '[]' CONSTRAINT channels_tags_check CHECK (json_valid(tags) AND json_type(tags) = 'array'),
    created_at TEXT    NOT NULL
) STRICT;
CREATE INDEX channels_owner_id ON channels (owner_id);

CREATE TABLE stream_keys (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id   INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    jti          TEXT    NOT NULL CONSTRAINT stream_keys_jti_key UNIQUE,
    label        TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL,
    revoked_at   TEXT,
    last_used_at TEXT
) STRICT;
CREATE INDEX stream_keys_channel_id ON stream_keys (channel_id);

CREATE TABLE live_sessions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id     INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    started_at     TEXT    NOT NULL,
    ended_at       TEXT,
    publisher_addr TEXT    NOT NULL,
    video_codec    TEXT,
    audio_codec    TEXT,
    bytes_in       INTEGER NOT NULL DEFAULT 0 CONSTRAINT live_sessions_bytes_in_check CHECK (bytes_in >= 0),
    peak_viewers   INTEGER NOT NULL DEFAULT 0 CONSTRAINT live_sessions_peak_viewers_check CHECK (peak_viewers >= 0)
) STRICT;
CREATE INDEX live_sessions_channel_id ON live_sessions (channel_id, started_at);
-- Crash recovery looks for sessions that never ended.
CREATE INDEX live_sessions_open ON live_sessions (id) WHERE ended_at IS NULL;

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_id   INTEGER REFERENCES users (id),
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    detail     TEXT    NOT NULL DEFAULT 'null' CONSTRAINT audit_log_detail_check CHECK (json_valid(detail)),
    created_at TEXT    NOT NULL
) STRICT;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
