-- Views count once per viewer per video per rolling hour, not per clock hour: one row per
-- (video, viewer) holds when its last counted view was.
-- Keep in step with ../postgres/0008_video_views_rolling.sql.

DROP TABLE video_views;

CREATE TABLE video_views (
    video_id INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    viewer   TEXT    NOT NULL,
    seen_at  INTEGER NOT NULL,
    PRIMARY KEY (video_id, viewer)
) STRICT;
CREATE INDEX video_views_seen_at ON video_views (seen_at);
