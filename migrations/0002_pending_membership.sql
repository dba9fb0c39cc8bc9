-- A join or leave in flight: the command id (and who asked) it is sequenced
-- with, so that a retry after a failure sequences the same command, once.
-- A leaving member no longer reads or sends.
ALTER TABLE members
    ADD COLUMN pending_op text CHECK (pending_op IN ('join', 'leave')),
    ADD COLUMN pending_id text,
    ADD COLUMN pending_by text;
