-- Recordings: one row per recorded live (a replay). The files live under the recordings root
-- in `path` (relative to it); the row says how far the recording got.
-- Keep in step with ../sqlite/0003_recordings.sql.

CREATE TABLE recordings (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id      BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    live_session_id BIGINT      REFERENCES live_sessions (id) ON DELETE SET NULL,
    title           TEXT        NOT NULL DEFAULT '',
    path            TEXT        NOT NULL CONSTRAINT recordings_path_key UNIQUE,
    state           TEXT        NOT NULL CONSTRAINT recordings_state_check CHECK (state IN ('recording', 'finished', 'failed')),
    started_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ,
    duration_ms     BIGINT      NOT NULL DEFAULT 0 CONSTRAINT recordings_duration_ms_check CHECK (duration_ms >= 0),
    size_bytes      BIGINT      NOT NULL DEFAULT 0 CONSTRAINT recordings_size_bytes_check CHECK (size_bytes >= 0),
    thumbnail       TEXT
);
CREATE INDEX recordings_channel_id ON recordings (channel_id, started_at);
-- Start-up finds recordings a crash left unfinished.
CREATE INDEX recordings_unfinished ON recordings (id) WHERE state = 'recording';
