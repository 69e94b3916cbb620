-- Restream destinations (issue 14): other RTMP(S) servers a channel's live is pushed to while
-- it is live, e.g. a CDN's ingest. The target key is a secret: the API shows only its end.
-- Keep in step with ../sqlite/0011_restreams.sql.

CREATE TABLE restream_destinations (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL,
    -- rtmp:// or rtmps://host[:port]/app, without the key.
    url        TEXT        NOT NULL,
    stream_key TEXT        NOT NULL,
    enabled    BOOLEAN     NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX restream_destinations_channel_id ON restream_destinations (channel_id, id);
