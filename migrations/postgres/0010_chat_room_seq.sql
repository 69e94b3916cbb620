-- A per-room sequence for chat messages, so every node of a cluster can tell whether it has
-- seen all of a room's messages and deliver them in one order (issue 14).
-- Keep in step with ../sqlite/0010_chat_room_seq.sql.
--
-- chat_rooms.seq is the last number handed out in a room. A message takes the next one in the
-- transaction that stores it; the row stays locked until that transaction ends, so the rooms'
-- numbers are dense (a rolled-back insert gives its number back) and a message with number n
-- committed means 1..n-1 are committed too. Ids are drawn after the lock, so within a room the
-- id order is the seq order.
CREATE TABLE chat_rooms (
    channel_id BIGINT NOT NULL PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL CONSTRAINT chat_rooms_seq_check CHECK (seq >= 0)
);

ALTER TABLE chat_messages ADD COLUMN seq BIGINT;
UPDATE chat_messages SET seq = numbered.n
    FROM (SELECT id, row_number() OVER (PARTITION BY channel_id ORDER BY id) AS n FROM chat_messages) AS numbered
    WHERE chat_messages.id = numbered.id;
ALTER TABLE chat_messages ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX chat_messages_channel_seq ON chat_messages (channel_id, seq);
INSERT INTO chat_rooms (channel_id, seq) SELECT channel_id, MAX(seq) FROM chat_messages GROUP BY channel_id;
