CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Friendship is mutual: one row each way, so "my friends" is one index scan.
CREATE TABLE friends (
    user_id    text NOT NULL REFERENCES users(id),
    friend_id  text NOT NULL REFERENCES users(id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE conversations (
    id         text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('direct', 'group')),
    title      text NOT NULL DEFAULT '',
    owner_id   text REFERENCES users(id),
    -- "<lower id>:<higher id>" for direct conversations: one per pair.
    direct_key text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    conv_id    text NOT NULL REFERENCES conversations(id),
    user_id    text NOT NULL REFERENCES users(id),
    role       text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    -- History is visible from this seq on (1 for founding members).
    joined_seq bigint NOT NULL DEFAULT 1,
    read_seq   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (conv_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

-- The history projection of TIMELINE, partitioned by conversation so that it
-- spreads as it grows. stream_seq is the event's place in TIMELINE.
CREATE TABLE events (
    conv_id    text   NOT NULL,
    seq        bigint NOT NULL,
    stream_seq bigint NOT NULL,
    kind       text   NOT NULL,
    cmd_id     text   NOT NULL,
    sender     text   NOT NULL,
    ts         bigint NOT NULL,
    body       bytea,
    target     bigint NOT NULL DEFAULT 0,
    member     text   NOT NULL DEFAULT '',
    recalled   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (conv_id, seq)
) PARTITION BY HASH (conv_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE events_p2 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE events_p3 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE events_p4 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE events_p5 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE events_p6 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE events_p7 PARTITION OF events FOR VALUES WITH (MODULUS 8, REMAINDER 7);

-- The projection's head per conversation, for conversation lists.
CREATE TABLE heads (
    conv_id  text PRIMARY KEY,
    last_seq bigint NOT NULL
);

-- Logged-out sessions; a row lives until the token would have expired.
CREATE TABLE revoked_sessions (
    session_id text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
