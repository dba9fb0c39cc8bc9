-- One search of docs/performance.md: a random user, a random word (the query of internal/postgres/search.go).
\set u random(0, 999)
\set w random(0, 4999)
SELECT e.conv_id, e.seq, e.kind, e.cmd_id, e.sender, e.ts, e.body, e.target, e.member, e.recalled, reply_to, mentions, emoji, react_on, edited_seq, cur_body, reactions  FROM events e JOIN members m ON m.conv_id = e.conv_id  WHERE m.user_id = 'u' || :u AND m.pending_op IS DISTINCT FROM 'leave' AND e.seq >= m.joined_seq    AND e.tsv @@ plainto_tsquery('simple', 'w' || :w) AND e.kind = 'message' AND NOT e.recalled    AND ('' = '' OR false)  ORDER BY e.ts DESC, e.conv_id, e.seq DESC  LIMIT 20
;
