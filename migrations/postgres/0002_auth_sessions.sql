-- Login sessions: one row per access token issued by /api/v1/auth/login or /refresh, named by
-- the token's jti, so logout, a ban or a refresh can end a token before it expires.
-- Keep in step with ../sqlite/0002_auth_sessions.sql.

CREATE TABLE auth_sessions (
    jti        TEXT        PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX auth_sessions_user_id ON auth_sessions (user_id);
-- Pruning finds expired rows by time.
CREATE INDEX auth_sessions_expires_at ON auth_sessions (expires_at);
