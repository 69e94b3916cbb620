-- Login sessions: one row per access token issued by /api/v1/auth/login or /refresh, named by
-- the token's jti, so logout, a ban or a refresh can end a token before it expires.
-- Keep in step with ../postgres/0002_auth_sessions.sql.

CREATE TABLE auth_sessions (
    jti        TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE INDEX auth_sessions_user_id ON auth_sessions (user_id);
CREATE INDEX auth_sessions_expires_at ON auth_sessions (expires_at);
