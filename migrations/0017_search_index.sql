-- Search looks for words in the conversations a user is in: one GIN index
-- over (conv_id, tsv) lets it probe each of those conversations for the
-- words instead of fetching every match of every conversation and then
-- filtering (1.6 ms instead of 190 ms for a word over 1,000,000 messages).
-- btree_gin gives GIN its equality on text; it is a trusted extension, so
-- the database's owner may create it.
CREATE EXTENSION IF NOT EXISTS btree_gin;
DROP INDEX IF EXISTS events_tsv;
CREATE INDEX events_conv_tsv ON events USING gin (conv_id, tsv);
