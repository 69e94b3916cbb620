-- Chat, danmaku, likes, gifts and wallets, and chat moderation.
-- Keep in step with ../sqlite/0004_chat.sql: same tables, columns, constraint names and meaning.

-- One row per chat line or danmaku, written before it is broadcast (design decision 6).
-- Danmaku carry their offset from the start of the live session so replays draw them at the
-- same moment; deleted messages keep their row (who deleted it, when) and are no longer shown.
CREATE TABLE chat_messages (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id      BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id         BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT        NOT NULL CONSTRAINT chat_messages_kind_check CHECK (kind IN ('chat', 'danmaku')),
    text            TEXT        NOT NULL,
    color           TEXT,
    mode            TEXT        CONSTRAINT chat_messages_mode_check CHECK (mode IN ('scroll', 'top', 'bottom')),
    live_session_id BIGINT      REFERENCES live_sessions (id) ON DELETE SET NULL,
    offset_ms       BIGINT      CONSTRAINT chat_messages_offset_ms_check CHECK (offset_ms >= 0),
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ,
    deleted_by      BIGINT      REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX chat_messages_channel_id ON chat_messages (channel_id, id);
CREATE INDEX chat_messages_danmaku ON chat_messages (live_session_id, offset_ms) WHERE kind = 'danmaku';

-- Likes are a counter per channel and live session, not a row per click. live_session_id 0
-- means "while not live" (no foreign key: 0 names no session).
CREATE TABLE chat_likes (
    channel_id      BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    live_session_id BIGINT NOT NULL,
    count           BIGINT NOT NULL DEFAULT 0 CONSTRAINT chat_likes_count_check CHECK (count >= 0),
    PRIMARY KEY (channel_id, live_session_id)
);

CREATE TABLE gifts (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name   TEXT    NOT NULL CONSTRAINT gifts_name_key UNIQUE,
    price  BIGINT  NOT NULL CONSTRAINT gifts_price_check CHECK (price > 0),
    active BOOLEAN NOT NULL DEFAULT TRUE
);
INSERT INTO gifts (name, price) VALUES ('heart', 1), ('rose', 5), ('cake', 20), ('rocket', 100);

-- Coins. A missing row is a balance of 0; the CHECK is the last line of defence, the gift
-- transaction's conditional debit the first.
CREATE TABLE wallets (
    user_id    BIGINT      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    balance    BIGINT      NOT NULL DEFAULT 0 CONSTRAINT wallets_balance_check CHECK (balance >= 0),
    updated_at TIMESTAMPTZ NOT NULL
);

-- Coins an admin added, kept for audit.
CREATE TABLE wallet_credits (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    amount     BIGINT      NOT NULL CONSTRAINT wallet_credits_amount_check CHECK (amount > 0),
    admin_id   BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    reason     TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX wallet_credits_user_id ON wallet_credits (user_id);

-- One row per gift sent. (sender_id, idempotency_key) is unique: a retried send finds the
-- original row and is not charged again.
CREATE TABLE gift_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender_id       BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel_id      BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    recipient_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    gift_id         BIGINT      NOT NULL REFERENCES gifts (id),
    count           BIGINT      NOT NULL CONSTRAINT gift_events_count_check CHECK (count > 0),
    value           BIGINT      NOT NULL CONSTRAINT gift_events_value_check CHECK (value > 0),
    idempotency_key TEXT        NOT NULL,
    live_session_id BIGINT      REFERENCES live_sessions (id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT gift_events_idempotency_key UNIQUE (sender_id, idempotency_key)
);
CREATE INDEX gift_events_channel_id ON gift_events (channel_id, id);

CREATE TABLE chat_mutes (
    channel_id BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      TIMESTAMPTZ NOT NULL,
    muted_by   BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE chat_bans (
    channel_id BIGINT      NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    banned_by  BIGINT      REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
