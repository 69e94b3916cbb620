-- The VOD catalogue: one `videos` row per watchable video, whatever made it. A finished replay
-- is a video whose `recording_id` names its recording; a future upload will be a video with no
-- recording and its own files under `path`. Categories are a list admins keep; comments are
-- threaded one level; views are counted once per viewer per video per hour.
-- Keep in step with ../sqlite/0007_videos.sql.

CREATE TABLE video_categories (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug       TEXT        NOT NULL CONSTRAINT video_categories_slug_key UNIQUE,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE videos (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id   BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    -- The replay this video is; NULL for an upload. Deleting the recording deletes the video.
    recording_id BIGINT      CONSTRAINT videos_recording_id_key UNIQUE REFERENCES recordings (id) ON DELETE CASCADE,
    -- The media directory, relative to the recordings root.
    path         TEXT        NOT NULL,
    title        TEXT        NOT NULL DEFAULT '',
    description  TEXT        NOT NULL DEFAULT '',
    category_id  BIGINT      REFERENCES video_categories (id) ON DELETE SET NULL,
    tags         JSONB       NOT NULL DEFAULT '[]',
    visibility   TEXT        NOT NULL DEFAULT 'public' CONSTRAINT videos_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private')),
    duration_ms  BIGINT      NOT NULL DEFAULT 0 CONSTRAINT videos_duration_ms_check CHECK (duration_ms >= 0),
    size_bytes   BIGINT      NOT NULL DEFAULT 0 CONSTRAINT videos_size_bytes_check CHECK (size_bytes >= 0),
    video_codec  TEXT,
    audio_codec  TEXT,
    width        BIGINT,
    height       BIGINT,
    -- A JPEG relative to the recordings root; NULL: no thumbnail (ffmpeg absent or it failed).
    thumbnail    TEXT,
    view_count   BIGINT      NOT NULL DEFAULT 0 CONSTRAINT videos_view_count_check CHECK (view_count >= 0),
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX videos_channel_id ON videos (channel_id, created_at);
CREATE INDEX videos_created_at ON videos (created_at);
CREATE INDEX videos_category_id ON videos (category_id);

-- One level of threads: `parent_id` names a top-level comment of the same video, which the
-- insert checks. Deleted comments keep their row so replies still hang somewhere.
CREATE TABLE video_comments (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    video_id   BIGINT      NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id  BIGINT      REFERENCES video_comments (id) ON DELETE CASCADE,
    text       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    edited_at  TIMESTAMPTZ,
    deleted_at TIMESTAMPTZ,
    deleted_by BIGINT      REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX video_comments_video_id ON video_comments (video_id, id);
CREATE INDEX video_comments_parent_id ON video_comments (parent_id);

-- A view counts once per viewer (`u:{user id}` or `a:{hash of the client address}`) per video
-- per hour (`hour` = Unix seconds / 3600). Rows of past hours are pruned as views come in.
CREATE TABLE video_views (
    video_id BIGINT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    viewer   TEXT   NOT NULL,
    hour     BIGINT NOT NULL,
    PRIMARY KEY (video_id, viewer, hour)
);
CREATE INDEX video_views_hour ON video_views (hour);
