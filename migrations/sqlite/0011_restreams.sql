-- Restream destinations (issue 14); see ../postgres/0011_restreams.sql, which this keeps in
-- step with.

CREATE TABLE restream_destinations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    url        TEXT    NOT NULL,
    stream_key TEXT    NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1 CONSTRAINT restream_destinations_enabled_check CHECK (enabled IN (0, 1)),
    created_at TEXT    NOT NULL
) STRICT;
CREATE INDEX restream_destinations_channel_id ON restream_destinations (channel_id, id);
