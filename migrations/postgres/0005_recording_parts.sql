-- Recording parts: a publisher that comes back within the republish grace continues the same
-- recording under a new live session. Each such session is a part starting `offset_ms` into
-- the replay, so its danmaku (timed from their own session's start) land at the right moment.
-- The recording's first session is `recordings.live_session_id`, at offset 0.
-- Keep in step with ../sqlite/0005_recording_parts.sql.

CREATE TABLE recording_parts (
    recording_id    BIGINT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    live_session_id BIGINT NOT NULL REFERENCES live_sessions (id) ON DELETE CASCADE,
    offset_ms       BIGINT NOT NULL CONSTRAINT recording_parts_offset_ms_check CHECK (offset_ms >= 0),
    PRIMARY KEY (recording_id, live_session_id)
);
CREATE INDEX recording_parts_live_session_id ON recording_parts (live_session_id);
