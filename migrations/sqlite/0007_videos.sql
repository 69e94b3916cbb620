-- The VOD catalogue: videos (finished replays now, uploads later), admin-kept categories,
-- comments threaded one level, and views counted once per viewer per video per hour.
-- Keep in step with ../postgres/0007_videos.sql.

CREATE TABLE video_categories (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    slug       TEXT    NOT NULL CONSTRAINT video_categories_slug_key UNIQUE,
    name       TEXT    NOT NULL,
    created_at TEXT    NOT NULL
) STRICT;

CREATE TABLE videos (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id   INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    recording_id INTEGER CONSTRAINT videos_recording_id_key UNIQUE REFERENCES recordings (id) ON DELETE CASCADE,
    path         TEXT    NOT NULL,
    title        TEXT    NOT NULL DEFAULT '',
    description  TEXT    NOT NULL DEFAULT '',
    category_id  INTEGER REFERENCES video_categories (id) ON DELETE SET NULL,
    tags         TEXT    NOT NULL DEFAULT '[]' CONSTRAINT videos_tags_check CHECK (json_valid(tags)),
    visibility   TEXT    NOT NULL DEFAULT 'public' CONSTRAINT videos_visibility_check CHECK (visibility IN ('public', 'unlisted', 'private')),
    duration_ms  INTEGER NOT NULL DEFAULT 0 CONSTRAINT videos_duration_ms_check CHECK (duration_ms >= 0),
    size_bytes   INTEGER NOT NULL DEFAULT 0 CONSTRAINT videos_size_bytes_check CHECK (size_bytes >= 0),
    video_codec  TEXT,
    audio_codec  TEXT,
    width        INTEGER,
    height       INTEGER,
    thumbnail    TEXT,
    view_count   INTEGER NOT NULL DEFAULT 0 CONSTRAINT videos_view_count_check CHECK (view_count >= 0),
    created_at   TEXT    NOT NULL
) STRICT;
CREATE INDEX videos_channel_id ON videos (channel_id, created_at);
CREATE INDEX videos_created_at ON videos (created_at);
CREATE INDEX videos_category_id ON videos (category_id);

CREATE TABLE video_comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id   INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id  INTEGER REFERENCES video_comments (id) ON DELETE CASCADE,
    text       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    edited_at  TEXT,
    deleted_at TEXT,
    deleted_by INTEGER REFERENCES users (id) ON DELETE SET NULL
) STRICT;
CREATE INDEX video_comments_video_id ON video_comments (video_id, id);
CREATE INDEX video_comments_parent_id ON video_comments (parent_id);

CREATE TABLE video_views (
    video_id INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    viewer   TEXT    NOT NULL,
    hour     INTEGER NOT NULL,
    PRIMARY KEY (video_id, viewer, hour)
) STRICT;
CREATE INDEX video_views_hour ON video_views (hour);
