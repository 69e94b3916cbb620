-- A per-room sequence for chat messages (issue 14).
-- Keep in step with ../postgres/0010_chat_room_seq.sql, which says why.
CREATE TABLE chat_rooms (
    channel_id INTEGER NOT NULL PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CONSTRAINT chat_rooms_seq_check CHECK (seq >= 0)
) STRICT;

-- SQLite cannot add NOT NULL to an existing column; every insert sets it.
ALTER TABLE chat_messages ADD COLUMN seq INTEGER;
UPDATE chat_messages SET seq = numbered.n
    FROM (SELECT id, row_number() OVER (PARTITION BY channel_id ORDER BY id) AS n FROM chat_messages) AS numbered
    WHERE chat_messages.id = numbered.id;
CREATE UNIQUE INDEX chat_messages_channel_seq ON chat_messages (channel_id, seq);
INSERT INTO chat_rooms (channel_id, seq) SELECT channel_id, MAX(seq) FROM chat_messages GROUP BY channel_id;
