-- Richer messages (edit, reactions, replies, mentions, search).
--
-- Every event keeps its own fields; a message row also holds its current
-- state, which the history projector maintains: the latest edit (edited_seq,
-- cur_body), the reaction counts per emoji, and the full-text vector of its
-- body.text (the 'simple' configuration: whole words, case-insensitive, no
-- stemming, any language). A recall clears all of them.
ALTER TABLE events
    ADD COLUMN reply_to   bigint NOT NULL DEFAULT 0,
    ADD COLUMN mentions   text[],
    ADD COLUMN emoji      text NOT NULL DEFAULT '',
    ADD COLUMN react_on   boolean,
    ADD COLUMN edited_seq bigint NOT NULL DEFAULT 0,
    ADD COLUMN cur_body   bytea,
    ADD COLUMN reactions  jsonb,
    ADD COLUMN tsv        tsvector;

CREATE INDEX events_tsv ON events USING gin (tsv);
-- The events that point at a message (recalls, edits, reactions): a recall
-- finds the edits it erases, and RecallOf its recall, without a scan.
CREATE INDEX events_target ON events (conv_id, target) WHERE target > 0;

-- Who reacts with what, now: the latest reaction event of each (message,
-- user, emoji) wins, by seq, so that a redelivered older event changes
-- nothing.
CREATE TABLE reactions (
    conv_id text    NOT NULL,
    target  bigint  NOT NULL,
    user_id text    NOT NULL,
    emoji   text    NOT NULL,
    seq     bigint  NOT NULL,
    on_     boolean NOT NULL,
    PRIMARY KEY (conv_id, target, user_id, emoji)
);
