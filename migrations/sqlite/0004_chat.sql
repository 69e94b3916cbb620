-- Chat, danmaku, likes, gifts and wallets, and chat moderation.
-- Keep in step with ../postgres/0004_chat.sql: same tables, columns, constraint names and meaning.

CREATE TABLE chat_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id      INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL CONSTRAINT chat_messages_kind_check CHECK (kind IN ('chat', 'danmaku')),
    text            TEXT    NOT NULL,
    color           TEXT,
    mode            TEXT    CONSTRAINT chat_messages_mode_check CHECK (mode IN ('scroll', 'top', 'bottom')),
    live_session_id INTEGER REFERENCES live_sessions (id) ON DELETE SET NULL,
    offset_ms       INTEGER CONSTRAINT chat_messages_offset_ms_check CHECK (offset_ms >= 0),
    created_at      TEXT    NOT NULL,
    deleted_at      TEXT,
    deleted_by      INTEGER REFERENCES users (id) ON DELETE SET NULL
) STRICT;
CREATE INDEX chat_messages_channel_id ON chat_messages (channel_id, id);
CREATE INDEX chat_messages_danmaku ON chat_messages (live_session_id, offset_ms) WHERE kind = 'danmaku';

CREATE TABLE chat_likes (
    channel_id      INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    live_session_id INTEGER NOT NULL,
    count           INTEGER NOT NULL DEFAULT 0 CONSTRAINT chat_likes_count_check CHECK (count >= 0),
    PRIMARY KEY (channel_id, live_session_id)
) STRICT;

CREATE TABLE gifts (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    name   TEXT    NOT NULL CONSTRAINT gifts_name_key UNIQUE,
    price  INTEGER NOT NULL CONSTRAINT gifts_price_check CHECK (price > 0),
    active INTEGER NOT NULL DEFAULT 1 CONSTRAINT gifts_active_check CHECK (active IN (0, 1))
) STRICT;
INSERT INTO gifts (name, price) VALUES ('heart', 1), ('rose', 5), ('cake', 20), ('rocket', 100);

CREATE TABLE wallets (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance    INTEGER NOT NULL DEFAULT 0 CONSTRAINT wallets_balance_check CHECK (balance >= 0),
    updated_at TEXT    NOT NULL
) STRICT;

CREATE TABLE wallet_credits (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount     INTEGER NOT NULL CONSTRAINT wallet_credits_amount_check CHECK (amount > 0),
    admin_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL
) STRICT;
CREATE INDEX wallet_credits_user_id ON wallet_credits (user_id);

CREATE TABLE gift_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id      INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    recipient_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    gift_id         INTEGER NOT NULL REFERENCES gifts (id),
    count           INTEGER NOT NULL CONSTRAINT gift_events_count_check CHECK (count > 0),
    value           INTEGER NOT NULL CONSTRAINT gift_events_value_check CHECK (value > 0),
    idempotency_key TEXT    NOT NULL,
    live_session_id INTEGER REFERENCES live_sessions (id) ON DELETE SET NULL,
    created_at      TEXT    NOT NULL,
    CONSTRAINT gift_events_idempotency_key UNIQUE (sender_id, idempotency_key)
) STRICT;
CREATE INDEX gift_events_channel_id ON gift_events (channel_id, id);

CREATE TABLE chat_mutes (
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      TEXT    NOT NULL,
    muted_by   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) STRICT;

CREATE TABLE chat_bans (
    channel_id INTEGER NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (channel_id, user_id)
) STRICT;
