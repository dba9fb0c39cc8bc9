-- Users the app's own backend signs in (POST /v1/server/sessions) have no
-- password: password login stays refused for them.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
