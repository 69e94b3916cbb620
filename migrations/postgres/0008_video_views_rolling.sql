-- A view counts once per viewer per video per rolling hour, not per clock hour: with one row
-- per clock hour a viewer at 10:59 and again at 11:00 counted twice in a minute. One row per
-- (video, viewer) now holds when its last counted view was; a view an hour or more later
-- counts and moves it. The old rows only deduplicated the current hour, so none are kept.
-- Keep in step with ../sqlite/0008_video_views_rolling.sql.

DROP TABLE video_views;

CREATE TABLE video_views (
    video_id BIGINT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    -- `u:{user id}` or `a:{keyed hash of the client address}`.
    viewer   TEXT   NOT NULL,
    -- Unix seconds of the last view that counted.
    seen_at  BIGINT NOT NULL,
    PRIMARY KEY (video_id, viewer)
);
CREATE INDEX video_views_seen_at ON video_views (seen_at);
