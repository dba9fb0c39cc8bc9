-- The search figure of docs/performance.md: a throwaway database with the
-- migrations applied, then this script, then pgbench with search_one.sql.
-- 1,000 users, 1,000 conversations of 10 members each (each user in 10),
-- 1,000,000 messages (1,000 per conversation), 8 words each from 5,000.
INSERT INTO users (id, username, password_hash) SELECT 'u'||i, 'user'||i, '' FROM generate_series(0, 999) i;
INSERT INTO conversations (id, kind, title) SELECT 'c'||i, 'group', 'g'||i FROM generate_series(0, 999) i;
INSERT INTO members (conv_id, user_id, joined_seq) SELECT 'c'||c, 'u'||((c*10 + k*101) % 1000), 1
  FROM generate_series(0, 999) c, generate_series(0, 9) k ON CONFLICT DO NOTHING;
INSERT INTO events (conv_id, seq, stream_seq, kind, cmd_id, sender, ts, body, tsv)
SELECT 'c'||(n % 1000), n / 1000 + 1, n + 1, 'message', 'm'||n, 'u'||(n % 1000), 1700000000000 + n,
       convert_to(json_build_object('text', t)::text, 'UTF8'), to_tsvector('simple', t)
FROM (SELECT n, (SELECT string_agg('w' || (floor(random() * 5000))::int, ' ') FROM generate_series(1, 8) WHERE n >= 0) AS t
      FROM generate_series(0, 999999) n) s;
ANALYZE;
